"""Topic maps from Python: the topic table, the calls behind a topic, and the plots.

>>> from weave_stream.store.topic_map import Topic, TopicMap
>>> t = Topic(0, "billing", "Money matters.", (1.0, 0.0), 0.3, 4, 1.0,
...           scores={"quality": {"mean": 0.5, "low": 0.4, "high": 0.6, "count": 4.0}})
>>> table = topic_table(TopicMap("s", "c", "embed:1", "topicmap:1", (t,)))
>>> list(table.columns), float(table.loc[0, "quality_high"])
(['id', 'name', 'size', 'share', 'quality', 'quality_low', 'quality_high', 'description'], 0.6)
"""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from weave_stream.durations import parse_duration
from weave_stream.errors import TopicError
from weave_stream.query.calls import Query, calls
from weave_stream.store.topic_map import TopicMap
from weave_stream.store.topic_map_files import MapStore
from weave_stream.topic_maps.cluster import unit_rows

if TYPE_CHECKING:
    import pandas as pd

__all__ = ["current_map", "plot_map", "topic_calls", "topic_table"]


def current_map(topology: str, column: str, *, store: Any = None, settings: Any = None) -> TopicMap:
    """The current topic map of ``topology.column`` in ``store`` (default: the settings')."""
    if store is None:
        from weave_stream.config import load_settings

        store = (settings or load_settings()).store_location
    return MapStore(store).current(topology, column)


def topic_table(topic_map: TopicMap) -> pd.DataFrame:
    """One row per topic: id, name, size, share, each score's mean and 95 % interval."""
    import pandas as pd

    rows = []
    for topic in topic_map.topics:
        row: dict[str, Any] = {
            "id": topic.id,
            "name": topic.name,
            "size": topic.size,
            "share": topic.share,
        }
        for name, score in topic.scores.items():
            row[name] = score["mean"]
            row[f"{name}_low"] = score["low"]
            row[f"{name}_high"] = score["high"]
        row["description"] = topic.description
        rows.append(row)
    return pd.DataFrame(rows)


def topic_calls(
    topic_map: TopicMap, topic: int | str, *, store: Any = None, columns: Any = None
) -> Query:
    """A lazy ``calls()`` query of the calls behind ``topic`` (its id or name)."""
    chosen = topic_map.topic_named(str(topic))
    ids = [c for c, t in topic_map.assignments.items() if t == chosen.id]
    return calls(store=store, call_ids=ids, columns=columns, sort="started_at")


def plot_map(topic_map: TopicMap, out: Path, *, store: Any = None, every: str = "1h") -> Path:
    """Two panels, one colour per topic in both: the fitted calls' embeddings in 2-D (PCA),
    and each topic's share (``outlier`` in grey) of every stored call with an embedding —
    those fitted and those assigned since — per ``every`` bucket of ``started_at`` (a
    duration: 10m, 1h, 1d); written to ``out``."""
    step = parse_duration(every)
    if step <= 0:
        raise TopicError(f"the shares' time bucket (--every) is {every!r}: write 10m, 1h or 1d")
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    import pandas as pd

    vector_path = f"{topic_map.topology}.{topic_map.column}"
    frame = calls(
        store=store,
        call_ids=list(topic_map.assignments),
        columns={"started_at": "started_at", "vector": vector_path},
    ).to_pandas()
    frame["topic"] = frame["id"].map(topic_map.assignments)
    names = {t.id: t.name for t in topic_map.topics}
    palette = plt.get_cmap("tab20")
    colours = {topic_id: palette(i % 20) for i, topic_id in enumerate(names)}
    colours[-1] = (0.75, 0.75, 0.75, 1.0)  # outlier
    vectors = unit_rows(frame["vector"].tolist())
    centred = vectors - vectors.mean(axis=0)
    _, _, axes_t = np.linalg.svd(centred, full_matrices=False)  # PCA by SVD
    points = centred @ axes_t[:2].T
    figure, (left, right) = plt.subplots(1, 2, figsize=(15, 6))
    labels = frame["topic"].to_numpy()
    for topic_id, name in names.items():
        rows = np.flatnonzero(labels == topic_id)
        left.scatter(
            points[rows, 0], points[rows, 1], s=8, color=colours[topic_id], label=name[:30]
        )
    left.set_title(f"{topic_map.topology}.{topic_map.column}: the {len(frame)} calls fitted (PCA)")
    left.legend(fontsize=7, markerscale=2, loc="best")
    # Every stored call with an embedding: its topic in this map (fitted, or nearest).
    every_call = (
        calls(store=store, columns={"started_at": "started_at"})
        .topics(topic_map.topology, topic_map.column, ref=topic_map.ref)
        .to_pandas()
    )
    every_call = every_call[every_call["topic_id"].notna()]
    bucket = pd.to_datetime(every_call["started_at"], utc=True).dt.floor(pd.Timedelta(seconds=step))
    shares = pd.crosstab(bucket, every_call["topic_id"].astype(int), normalize="index")
    order = [t for t in [*names, -1] if t in shares.columns]
    shares = shares[order]
    # Bars, not areas: a few buckets far apart must not read as a trend between them.
    shares.index = pd.DatetimeIndex(shares.index).strftime("%Y-%m-%d %H:%M")
    shares.columns = [names.get(t, "outlier")[:30] for t in order]
    shares.plot.bar(
        ax=right, stacked=True, width=0.9, color=[colours[t] for t in order], legend=False
    )
    right.set_title(f"topic shares of all {len(every_call)} calls per {every}")
    right.set_ylabel("share of calls")
    if -1 in order:
        right.legend([plt.Rectangle((0, 0), 1, 1, color=colours[-1])], ["outlier"], fontsize=7)
    figure.tight_layout()
    out.parent.mkdir(parents=True, exist_ok=True)
    figure.savefig(out, dpi=100)
    plt.close(figure)
    return out
