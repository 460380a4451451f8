"""The topic column: each call's nearest topic of the stored map, or ``outlier``.

:class:`~weave_stream.store.topic_map.TopicIndex` is a FAISS inner-product index over
the map's unit centres (a few dozen vectors: one exact search per micro-batch costs
microseconds beside the model that made the embeddings). A call farther (cosine
distance) than its nearest topic's radius is an ``outlier``.

:data:`AssignTopic` is the op a topology uses; its value is
``{"topic": name, "topic_id": id, "distance": d}`` (``topic_id`` -1 for outliers), so
aggregates can group calls by ``<topology>.<column>.topic``. It reads the map from
the store (``CURRENT``, or the ``ref`` it is pinned to) once, when first used: a
restarted worker reads the same stored map, nothing is refitted. The map's ref is
part of the op's version, so values of two maps are never mixed in the cache.

With ``follow=True`` (the column a topology's ``topics:`` entry adds) it follows
``CURRENT`` instead: it looks at the pointer before every batch and switches to the
new map when a refit replaced it; while no map was fitted yet, or the current one is
refused (another embedding model), each call's value is an error saying so (not
fatal: assignment starts with the first usable map).

>>> import numpy as np
>>> from weave_stream.store.topic_map import Topic, TopicMap
>>> t = [Topic(i, n, "", tuple(np.eye(3)[i]), 0.2, 1, 0.5) for i, n in enumerate(["a", "b"])]
>>> index = TopicIndex(TopicMap("t", "c", "embed:1", "topicmap:1", tuple(t)))
>>> [v["topic"] for v in index.assign(np.array([[0.9, 0.1, 0], [0, 0, 1]]))]
['a', 'outlier']
"""

from __future__ import annotations

import math
import time
from collections.abc import Mapping
from typing import Any

import numpy as np

from weave_stream.errors import TopicError
from weave_stream.ops.base import OpResult
from weave_stream.ops.decorator import op
from weave_stream.store.topic_map import TopicIndex, TopicMap
from weave_stream.store.topic_map_files import MapStore

__all__ = ["FOLLOW_CHECK_SECONDS", "AssignTopic", "TopicIndex", "check_map"]

FOLLOW_CHECK_SECONDS = 1.0  # following CURRENT: a refit's map is used within this


def check_map(topic_map: TopicMap, column: str, embedding_ref: str | None) -> None:
    """Refuse a map fitted on another column or embedding model (:class:`TopicError`)."""
    if topic_map.column != column:
        raise TopicError(
            f"topic map {topic_map.ref} was fitted on column {topic_map.column!r}, not "
            f"{column!r}: fit a map for {column!r} first"
        )
    if embedding_ref is not None and topic_map.embedding_ref != embedding_ref:
        raise TopicError(
            f"topic map {topic_map.ref} of {topic_map.topology}.{column} was fitted on "
            f"embeddings of {topic_map.embedding_ref}, but the column is now computed by "
            f"{embedding_ref}: its centres mean nothing in the new space; refit it with "
            f"`weave-stream topics fit {topic_map.topology} --column {column}`"
        )


class AssignTopicOp:
    """Assign each embedding to a topic of the map of ``topology.column`` (see module)."""

    def __init__(
        self,
        topology: str,
        column: str,
        ref: str | None = None,
        embedding_ref: str | None = None,
        store: Any = None,
        settings: Any = None,
        follow: bool = False,
    ) -> None:
        self.topology, self.column, self.ref = topology, column, ref
        self.embedding_ref = embedding_ref
        self._store, self._settings = store, settings
        self.follow = follow and ref is None
        self._index: TopicIndex | None = None
        self._pointer: str | None = None  # follow: the CURRENT ref the index was loaded for
        self._checked_at = -math.inf  # follow: when CURRENT was last read (monotonic)
        self._refused: str | None = None  # follow: why the current map cannot be used

    def _maps(self) -> MapStore:
        store = self._store
        if store is None:
            from weave_stream.config import load_settings

            settings = self._settings or load_settings()
            store = settings.store_location
        return MapStore(store)

    @property
    def index(self) -> TopicIndex:
        """The map's index, loaded from the store on first use and kept."""
        if self.follow:
            found = self._followed()
            if found is None:
                raise TopicError(self._refused or self._no_map())
            return found
        if self._index is None:
            maps = self._maps()
            if self.ref is not None:
                topic_map = maps.load(self.topology, self.column, self.ref)
            else:
                topic_map = maps.current(self.topology, self.column)
            check_map(topic_map, self.column, self.embedding_ref)
            self._index = TopicIndex(topic_map)
        return self._index

    def _followed(self) -> TopicIndex | None:
        """The index of the current map (reloaded when CURRENT moved), None while none."""
        now = time.monotonic()
        if self._pointer is not None and now - self._checked_at < FOLLOW_CHECK_SECONDS:
            # The version is asked for per value: one read a second while a map is in use.
            # Without one, every look reads the pointer (a missing file: a failed open),
            # so the first map is used by the first batch after it is saved.
            return self._index
        self._checked_at = now
        maps = self._maps()
        pointer = maps.current_ref(self.topology, self.column)
        if pointer is None:
            self._index = self._pointer = self._refused = None
        elif pointer != self._pointer:
            self._index, self._pointer, self._refused = None, pointer, None
            topic_map = maps.load(self.topology, self.column, pointer)
            try:
                check_map(topic_map, self.column, self.embedding_ref)
            except TopicError as exc:  # each value says so; the stream goes on
                self._refused = str(exc)
            else:
                self._index = TopicIndex(topic_map)
        return self._index

    def _no_map(self) -> str:
        return (
            f"no topic map for {self.topology}.{self.column} yet: calls are assigned once "
            f"one is fitted (`weave-stream topics fit {self.topology} --column {self.column}`, "
            "or the topology's refit schedule)"
        )

    def preflight(self) -> None:
        """Load the map now: no map, or one of another model, fails before anything runs
        (following ``CURRENT``, no map yet is not a failure: calls wait for one)."""
        if self.follow:
            if self._followed() is None and self._refused:
                raise TopicError(self._refused)
        else:
            _ = self.index

    def version_state(self) -> Mapping[str, str]:
        """The map's ref: values of two maps never share a cache entry."""
        if self.follow and self._followed() is None:
            return {"map": f"refused:{self._pointer}" if self._refused else "none"}
        return {"map": self.index.map.ref}

    def __call__(self, embedding: list[Any]) -> list[OpResult]:
        present = [i for i, v in enumerate(embedding) if v is not None and len(v) > 0]
        results = [OpResult.failure("no embedding to assign") for _ in embedding]
        if present and self.follow and self._followed() is None:
            return [OpResult.failure(self._refused or self._no_map()) for _ in embedding]
        if present:
            values = self.index.assign(np.asarray([embedding[i] for i in present]))
            for i, value in zip(present, values, strict=True):
                results[i] = OpResult(value=value)
        return results


AssignTopic = op(
    name="topic",
    batched=True,
    unversioned=("store", "settings", "follow"),
)(AssignTopicOp)
