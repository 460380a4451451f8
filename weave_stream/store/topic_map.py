"""The topic map: topics with names, centres and radii, as a versioned, serialisable object.

A map's ``ref`` is ``topicmap:<digest>``, the digest of what decides it: the input
calls (their ids, sorted), the fit parameters and the op refs (embedding, namer). So
the same calls and parameters give the same ref, and a new name or a new model gives
a new one. A map is stored as one JSON document (see
:mod:`weave_stream.store.topic_map_files`); it lives in the store layer so that
``calls(...).topics()`` can read it (fitting one is :mod:`weave_stream.topic_maps`).

>>> topic = Topic(id=0, name="billing", description="", centre=(1.0, 0.0), radius=0.3,
...               size=4, share=1.0, example_call_ids=("c1",))
>>> m = TopicMap(topology="support", column="doc_embedding", embedding_ref="embed:ab",
...              ref=map_ref(["c1"], {"seed": 0}, {"embed": "embed:ab"}), topics=(topic,))
>>> TopicMap.from_json(m.to_json()) == m, m.ref.startswith("topicmap:")
(True, True)
>>> m.topic(0).name, m.topic_named("billing").id
('billing', 0)
>>> nearest_topics(m, [[0.9, 0.1], [0.0, 1.0]])[0].tolist()
[0, -1]
"""

from __future__ import annotations

import hashlib
from collections.abc import Iterable, Mapping
from dataclasses import asdict, dataclass, field, fields, replace
from typing import Any

import faiss
import numpy as np
import orjson

from weave_stream.errors import TopicError

__all__ = [
    "OUTLIER",
    "Naming",
    "Refit",
    "Topic",
    "TopicIndex",
    "TopicMap",
    "map_ref",
    "nearest_topics",
]

OUTLIER = "outlier"  # what the assignment column says beyond every topic's radius
FORMAT_VERSION = 1


def map_ref(call_ids: Iterable[str], params: Mapping[str, Any], op_refs: Mapping[str, str]) -> str:
    """``topicmap:<24 hex>``: the digest of the sorted call ids, parameters and op refs."""
    hasher = hashlib.sha256()
    for call_id in sorted(call_ids):
        hasher.update(call_id.encode() + b"\0")
    hasher.update(orjson.dumps({"params": params, "ops": op_refs}, option=orjson.OPT_SORT_KEYS))
    return f"topicmap:{hasher.hexdigest()[:24]}"


@dataclass(frozen=True)
class Naming:
    """How a topic got its name: the namer's ref, whether the cache had it, cost, error."""

    op_ref: str | None = None
    cached: bool = False
    cost: float | None = None
    tokens: int | None = None
    error: str | None = None  # the name is a generated ``topic-N`` when this is set
    prompt_sha256: str | None = None


@dataclass(frozen=True)
class Topic:
    """One topic: its id (kept across refits), name, centre (unit vector) and radius.

    ``radius`` is a cosine distance: calls farther than it from the centre are outliers.
    ``scores`` holds, per derived column, ``{"mean", "low", "high", "count"}`` (95 % CI).
    """

    id: int
    name: str
    description: str
    centre: tuple[float, ...]
    radius: float
    size: int
    share: float
    example_call_ids: tuple[str, ...] = ()
    scores: Mapping[str, Mapping[str, float]] = field(default_factory=dict)
    naming: Naming = field(default_factory=Naming)


@dataclass(frozen=True)
class Refit:
    """How a map relates to the map it refitted: matches and stability."""

    previous_ref: str
    stability: float  # share of this fit's calls whose topic id is the one the old map gives
    adjusted_rand: float
    carried: Mapping[int, int] = field(default_factory=dict)  # new id -> old id (same id)
    born: tuple[int, ...] = ()
    gone: tuple[int, ...] = ()
    merged: Mapping[int, tuple[int, ...]] = field(default_factory=dict)  # new id <- old ids
    split: Mapping[int, tuple[int, ...]] = field(default_factory=dict)  # old id -> new ids


@dataclass(frozen=True)
class TopicMap:
    """Topics of one embedding column of one topology; ``frozen`` maps are never refitted."""

    topology: str
    column: str
    embedding_ref: str
    ref: str
    topics: tuple[Topic, ...]
    params: Mapping[str, Any] = field(default_factory=dict)
    namer_ref: str | None = None
    call_count: int = 0
    outliers: int = 0
    created_at: float = 0.0
    frozen: bool = False
    assignments: Mapping[str, int] = field(default_factory=dict)  # call id -> topic id
    silhouette_by_k: Mapping[int, float] = field(default_factory=dict)
    refit: Refit | None = None

    def topic(self, topic_id: int) -> Topic:
        """The topic with id ``topic_id`` (:class:`TopicError` if the map has none)."""
        for topic in self.topics:
            if topic.id == topic_id:
                return topic
        known = ", ".join(str(t.id) for t in self.topics)
        raise TopicError(f"topic map {self.ref} has no topic {topic_id}; its topics: {known}")

    def topic_named(self, name: str) -> Topic:
        """The topic called ``name`` (or whose id is ``name``), else :class:`TopicError`."""
        for topic in self.topics:
            if topic.name == name or str(topic.id) == name:
                return topic
        known = ", ".join(repr(t.name) for t in self.topics)
        raise TopicError(f"topic map {self.ref} has no topic {name!r}; its topics: {known}")

    def with_frozen(self, frozen: bool = True) -> TopicMap:
        """The same map, frozen (new calls are assigned, never refitted) or thawed."""
        return replace(self, frozen=frozen)

    def to_json(self) -> bytes:
        """The map as JSON (the stored form)."""
        data = asdict(self)
        data["format"] = FORMAT_VERSION
        return orjson.dumps(data, option=orjson.OPT_NON_STR_KEYS | orjson.OPT_SERIALIZE_NUMPY)

    @classmethod
    def from_json(cls, raw: bytes | str) -> TopicMap:
        """Inverse of :meth:`to_json`; :class:`TopicError` for another format version."""
        data = orjson.loads(raw)
        if data.pop("format", None) != FORMAT_VERSION:
            raise TopicError(
                f"a stored topic map has format {data.get('format')!r}, this version reads "
                f"format {FORMAT_VERSION}: refit it with `weave-stream topics fit`"
            )
        topics = tuple(
            Topic(
                **{
                    **t,
                    "centre": tuple(t["centre"]),
                    "example_call_ids": tuple(t["example_call_ids"]),
                    "naming": Naming(**t["naming"]),
                }
            )
            for t in data.pop("topics")
        )
        refit = data.pop("refit")
        if refit is not None:
            refit = Refit(
                **{
                    **refit,
                    "carried": {int(k): v for k, v in refit["carried"].items()},
                    "born": tuple(refit["born"]),
                    "gone": tuple(refit["gone"]),
                    "merged": {int(k): tuple(v) for k, v in refit["merged"].items()},
                    "split": {int(k): tuple(v) for k, v in refit["split"].items()},
                }
            )
        data["silhouette_by_k"] = {int(k): v for k, v in data["silhouette_by_k"].items()}
        known = {f.name for f in fields(cls)}
        return cls(**{k: v for k, v in data.items() if k in known}, topics=topics, refit=refit)


class TopicIndex:
    """Nearest-centre search over one map's topics: a FAISS inner-product index over its
    unit centres (a few dozen vectors: one exact search per micro-batch costs
    microseconds beside the model that made the embeddings). The topic column, the
    CLI and ``calls(...).topics()`` all assign through it."""

    def __init__(self, topic_map: TopicMap) -> None:
        if not topic_map.topics:
            raise TopicError(f"topic map {topic_map.ref} has no topics to assign calls to")
        centres = _unit(np.asarray([t.centre for t in topic_map.topics], dtype=np.float32))
        self.map = topic_map
        self.dimensions = centres.shape[1]
        self._index = faiss.IndexFlatIP(self.dimensions)
        self._index.add(centres)
        self._radii = np.asarray([t.radius for t in topic_map.topics], dtype=np.float32)
        self._ids = np.asarray([t.id for t in topic_map.topics], dtype=np.int64)
        self._names = {t.id: t.name for t in topic_map.topics}

    def nearest(self, vectors: Any) -> tuple[np.ndarray, np.ndarray]:
        """Each vector's topic id (-1: an outlier, beyond its nearest topic's radius) and
        its cosine distance to that topic's centre."""
        data = _unit(np.asarray(vectors, dtype=np.float32))
        if data.ndim != 2 or data.shape[1] != self.dimensions:
            raise TopicError(
                f"topic map {self.map.ref} was fitted on {self.dimensions}-d embeddings of "
                f"{self.map.embedding_ref}; got vectors of shape {data.shape}: the embedding "
                f"column changed, so refit the map (weave-stream topics fit "
                f"{self.map.topology} --column {self.map.column})"
            )
        similarity, index = self._index.search(data, 1)
        nearest = index[:, 0]
        distance = np.maximum(0.0, 1.0 - similarity[:, 0])
        return np.where(distance > self._radii[nearest], -1, self._ids[nearest]), distance

    def assign(self, vectors: Any) -> list[dict[str, Any]]:
        """One ``{"topic", "topic_id", "distance"}`` per vector (n x d): the topic column's
        value (``topic_id`` -1 and :data:`OUTLIER` beyond the radius)."""
        ids, distances = self.nearest(vectors)
        out = []
        for topic_id, distance in zip(ids.tolist(), distances.tolist(), strict=True):
            name = OUTLIER if topic_id < 0 else self._names[topic_id]
            out.append({"topic": name, "topic_id": topic_id, "distance": round(distance, 6)})
        return out


def nearest_topics(topic_map: TopicMap, vectors: Any) -> tuple[np.ndarray, np.ndarray]:
    """Each vector's nearest topic id (-1: an outlier, beyond that topic's radius) and its
    cosine distance to that topic's centre: what the topic column gives a new call (all
    -1 for a map with no topics)."""
    data = np.asarray(vectors, dtype=np.float32)
    if not topic_map.topics or data.size == 0:
        return np.full(len(data), -1, dtype=np.int64), np.full(len(data), np.nan)
    return TopicIndex(topic_map).nearest(data)


def _unit(rows: np.ndarray) -> np.ndarray:
    norms = np.linalg.norm(rows, axis=1, keepdims=True)
    return np.divide(rows, norms, out=np.zeros_like(rows), where=norms > 0)
