"""``calls(...).topics(topology, column)``: each call's topic of a stored topic map.

A call the map was fitted on keeps the topic the fit gave it (``topic_from`` = ``fit``);
any other call with an embedding in ``topology.column`` gets its nearest topic, or
``outlier`` (id -1) beyond that topic's radius (``nearest``) — the answer the topic
column gives on the stream. A call with no embedding has no topic (None).

The map is the column's current one (or ``ref``), read from the store's folder, where
``weave-stream topics fit`` wrote it. Lazy like the query: nothing is read until
``to_pandas()`` or ``summary()``.

>>> from weave_stream.query.calls import calls
>>> q = calls(store="/nonexistent", op="predict", columns=["inputs.document"])
>>> topics = q.topics("support", "doc_embedding")
>>> topics.topology, topics.column, topics.ref
('support', 'doc_embedding', None)
"""

from __future__ import annotations

from typing import TYPE_CHECKING

import numpy as np

from weave_stream.query.paths import parse_path
from weave_stream.store.topic_map import OUTLIER, TopicMap, nearest_topics
from weave_stream.store.topic_map_files import MapStore

if TYPE_CHECKING:
    import pandas as pd

    from weave_stream.query.calls import Query

__all__ = ["CallTopics"]

_VECTOR = "__topic_vector__"  # the embedding travels beside the query's own columns


class CallTopics:
    """These calls with their topic (see module); ``.to_pandas()``, ``.summary()``."""

    def __init__(self, query: Query, topology: str, column: str, ref: str | None = None):
        self.query, self.topology, self.column, self.ref = query, topology, column, ref
        self._map: TopicMap | None = None

    @property
    def map(self) -> TopicMap:
        """The topic map (read from the store on first use, then kept)."""
        if self._map is None:
            maps = MapStore(self.query.store)
            if self.ref is None:
                self._map = maps.current(self.topology, self.column)
            else:
                self._map = maps.load(self.topology, self.column, self.ref)
        return self._map

    def to_pandas(self) -> pd.DataFrame:
        """Run the query: its columns, then ``topic_id``, ``topic`` (the name),
        ``topic_distance`` (cosine, to the topic's centre) and ``topic_from``."""
        import pandas as pd

        topic_map = self.map
        vector = (_VECTOR, parse_path(f"{self.topology}.{self.column}"))
        query = self.query._with(columns=(*self.query.spec.columns, vector))
        frame = query.to_pandas()
        vectors = frame.pop(_VECTOR).tolist() if _VECTOR in frame else [None] * len(frame)
        present = [i for i, v in enumerate(vectors) if isinstance(v, list) and len(v) > 0]
        ids: list[int | None] = [None] * len(frame)
        distances = np.full(len(frame), np.nan)
        source: list[str | None] = [None] * len(frame)
        if present:
            found, found_distance = nearest_topics(topic_map, [vectors[i] for i in present])
            for row, topic_id, distance in zip(present, found, found_distance, strict=True):
                ids[row], distances[row], source[row] = int(topic_id), distance, "nearest"
        fitted = topic_map.assignments
        for row, call_id in enumerate(frame["id"].astype(str).tolist()):
            if call_id in fitted:
                ids[row], source[row] = int(fitted[call_id]), "fit"
        names = {t.id: t.name for t in topic_map.topics} | {-1: OUTLIER}
        frame["topic_id"] = pd.array(ids, dtype="Int64")
        frame["topic"] = [None if i is None else names.get(i, OUTLIER) for i in ids]
        frame["topic_distance"] = distances
        frame["topic_from"] = source
        return frame

    def summary(self) -> pd.DataFrame:
        """Run the query: one row per topic of the map (and ``outlier`` when any): the
        calls here, their share of the calls with a topic, the mean distance, and the
        map's own size, share and description."""
        import pandas as pd

        frame = self.to_pandas()
        topic_map = self.map
        known = frame[frame["topic_id"].notna()]
        rows = []
        for topic_id, name, description, size, share in [
            *((t.id, t.name, t.description, t.size, t.share) for t in topic_map.topics),
            (-1, OUTLIER, "beyond every topic's radius", 0, 0.0),
        ]:
            members = known[known["topic_id"] == topic_id]
            if topic_id == -1 and members.empty:
                continue
            rows.append(
                {
                    "topic_id": topic_id,
                    "topic": name,
                    "calls": len(members),
                    "share": len(members) / len(known) if len(known) else 0.0,
                    "mean_distance": float(members["topic_distance"].mean())
                    if len(members)
                    else float("nan"),
                    "fit_size": size,
                    "fit_share": share,
                    "description": description,
                }
            )
        return pd.DataFrame(rows).sort_values(["calls", "topic_id"], ascending=[False, True])

    def __repr__(self) -> str:
        return f"<topics of {self.topology}.{self.column} for {self.query!r}>"
