"""The known embeddings of a monitor: the VectorIndex seam.

A :class:`VectorIndex` holds known embeddings under call ids, searches them in
batches, and keeps a capacity: *pinned* vectors (the reference) are never evicted,
the others (learned examples) are, by the eviction policy, when the index is full.
:class:`~weave_stream.drift.faiss_index.FaissVectorIndex` implements it over FAISS
(``exact``, ``hnsw`` or ``ivf``); :func:`choose_kind` picks the kind by size unless
the spec overrides it. Distances are Euclidean (L2) between the vectors as given;
for normalized embeddings ``cosine distance = distance**2 / 2``.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from typing import Literal, Protocol, runtime_checkable

import numpy as np

from weave_stream.topology.monitors import IndexSpec

__all__ = [
    "AddResult",
    "ConcreteKind",
    "Eviction",
    "IndexState",
    "VectorIndex",
    "choose_kind",
]

ConcreteKind = Literal["exact", "hnsw", "ivf"]
Eviction = Literal["oldest", "least_recently_matched"]


@dataclass(frozen=True)
class AddResult:
    """What an :meth:`VectorIndex.add` did: ids added, ids evicted to make room, ids refused."""

    added: list[str] = field(default_factory=list)
    evicted: list[str] = field(default_factory=list)
    rejected: list[str] = field(default_factory=list)


@runtime_checkable
class VectorIndex(Protocol):
    """Known embeddings, searchable in batches, with a capacity and an eviction policy."""

    @property
    def kind(self) -> ConcreteKind: ...

    @property
    def dim(self) -> int: ...

    def __len__(self) -> int: ...

    def __contains__(self, call_id: object) -> bool: ...

    def search(self, vectors: np.ndarray, k: int = 1) -> tuple[np.ndarray, list[list[str | None]]]:
        """Distances ``(n, k)`` (``inf`` where no neighbour) and the neighbours' ids."""
        ...

    def add(self, ids: Sequence[str], vectors: np.ndarray, *, pinned: bool = False) -> AddResult:
        """Add (or replace) vectors; pinned vectors are never evicted."""
        ...

    def remove(self, ids: Iterable[str]) -> int:
        """Forget these ids; return how many were known."""
        ...

    def vectors_of(self, ids: Sequence[str]) -> np.ndarray:
        """The stored vectors of known ids, in order."""
        ...


@dataclass
class IndexState:
    """Everything a FAISS-backed index is made of, for snapshots."""

    kind: ConcreteKind
    spec: IndexSpec
    capacity: int | None
    eviction: Eviction
    ids: list[str]
    vectors: np.ndarray  # (rows, dim) float32, dead rows included
    alive: np.ndarray  # (rows,) bool
    pinned: np.ndarray  # (rows,) bool
    last_matched: np.ndarray  # (rows,) int64, a search counter
    faiss_bytes: np.ndarray  # faiss.serialize_index of the index over all rows


def choose_kind(size: int, spec: IndexSpec) -> ConcreteKind:
    """The index kind for ``size`` reference vectors: the spec's, or by size when ``auto``.

    >>> choose_kind(5_000, IndexSpec()), choose_kind(1_000_000, IndexSpec())
    ('exact', 'ivf')
    >>> choose_kind(1_000_000, IndexSpec(kind="hnsw"))
    'hnsw'
    """
    if spec.kind != "auto":
        return spec.kind
    return "exact" if size <= spec.exact_max else "ivf"
