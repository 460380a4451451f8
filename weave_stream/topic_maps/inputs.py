"""What a fit reads from the call store: embeddings, their documents and derived scores.

The embedding column names the text it embedded (its argument's call field, e.g.
``inputs.document``): that text is what the namer reads. Every other column of the
topology whose values are numbers, or objects with a numeric ``score``, becomes a
per-topic mean with its confidence interval.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import numpy as np

from weave_stream.errors import TopicError
from weave_stream.query.calls import calls
from weave_stream.topic_maps.fit import TopicInputs
from weave_stream.topology.spec import Topology

__all__ = ["embedding_column", "load_inputs"]


def embedding_column(topology: Topology, column: str) -> tuple[str, str]:
    """The op ref of ``column`` and the call field its text comes from."""
    by_name = {c.name: c for c in topology.compiled}
    if column not in by_name:
        known = ", ".join(sorted(by_name)) or "none"
        raise TopicError(
            f"topology {topology.name!r} has no column {column!r} to fit topics on; "
            f"its columns: {known}"
        )
    raw = next(c for c in topology.columns if c.name == column)
    texts = [path for path in raw.args.values() if not str(path).startswith("columns.")]
    if not texts:
        raise TopicError(
            f"column {topology.name}.{column} embeds no call field (its arguments: "
            f"{dict(raw.args)}); topics need the text behind each embedding"
        )
    return by_name[column].op.ref, str(texts[0])


def load_inputs(
    topology: Topology,
    column: str,
    *,
    store: Any = None,
    since: Any = None,
    until: Any = None,
    where: Mapping[str, Any] | None = None,
    settings: Any = None,
) -> tuple[TopicInputs, str]:
    """The calls of ``topology`` with a ``column`` embedding, and the column's op ref."""
    embedding_ref, text_path = embedding_column(topology, column)
    others = [c.name for c in topology.compiled if c.name != column]
    columns = {
        "vector": f"{topology.name}.{column}",
        "text": text_path,
        **{f"score:{name}": f"{topology.name}.{name}" for name in others},
    }
    frame = calls(
        store=store,
        since=since,
        until=until,
        where=where,
        columns=columns,
        sort="id",
        settings=settings,
    ).to_pandas()
    frame = frame[frame["vector"].map(lambda v: isinstance(v, list) and len(v) > 0)]
    if frame.empty:
        raise TopicError(
            f"the store has no {topology.name}.{column} embeddings in this range: run the "
            "topology over some calls (weave-stream run ... / the workers) or widen --since"
        )
    vectors = np.asarray(frame["vector"].tolist(), dtype=np.float32).reshape(len(frame), -1)
    scores = {
        name.removeprefix("score:"): [_number(v) for v in frame[name].tolist()]
        for name in frame.columns
        if name.startswith("score:")
    }
    scores = {k: v for k, v in scores.items() if any(x is not None for x in v)}
    texts = ["" if t is None else str(t) for t in frame["text"].tolist()]
    inputs = TopicInputs(frame["id"].astype(str).tolist(), vectors, texts, scores)
    return inputs, embedding_ref


def _number(value: Any) -> float | None:
    if isinstance(value, dict):
        value = value.get("score")
    if isinstance(value, bool) or not isinstance(value, int | float | np.number):
        return None
    return float(value)
