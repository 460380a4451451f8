"""The FAISS implementation of :class:`~weave_stream.drift.index.VectorIndex`.

One class, :class:`FaissVectorIndex`, holds an ``exact``, ``hnsw`` or ``ivf`` index
(see :mod:`~weave_stream.drift.faiss_kinds`). Rows are appended, never reused: the
FAISS label of a vector is its row. Removal marks a row dead and searches skip dead
rows through an ID selector; once a quarter of the rows are dead the index is
compacted (IVF keeps its trained quantizer; HNSW is rebuilt). The index keeps its
own copy of the vectors, for exact distances, compaction and snapshots (so memory
is about twice the vectors'). Not thread-safe: serialize calls (one agent owns it).

>>> import numpy as np
>>> index = FaissVectorIndex.build(["a", "b"], np.eye(2, 4, dtype=np.float32), pinned=True)
>>> index.kind, len(index)
('exact', 2)
>>> distances, ids = index.search(np.array([[0.9, 0.1, 0, 0]], dtype=np.float32))
>>> ids, round(float(distances[0, 0]), 3)
([['a']], 0.141)
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from typing import Any

import numpy as np

from weave_stream.drift.faiss_kinds import (
    IVF_POINTS_PER_LIST,
    empty_faiss_index,
    faiss,
    ivf_lists,
    search_parameters,
    tune_faiss,
)
from weave_stream.drift.index import AddResult, ConcreteKind, Eviction, IndexState, choose_kind
from weave_stream.errors import VectorIndexError
from weave_stream.topology.monitors import IndexSpec

__all__ = ["FaissVectorIndex"]

_COMPACT_MIN_DEAD = 1024


def _as_matrix(vectors: np.ndarray, dim: int | None, what: str) -> np.ndarray:
    matrix = np.ascontiguousarray(vectors, dtype=np.float32)
    if matrix.ndim != 2 or (dim is not None and matrix.shape[1] != dim):
        want = f"(n, {dim})" if dim is not None else "(n, dim)"
        raise VectorIndexError(
            f"{what}: vectors have shape {matrix.shape}, expected {want}; pass one "
            "embedding per row, of the monitor's dimension"
        )
    if not np.isfinite(matrix).all():
        raise VectorIndexError(f"{what}: vectors hold NaN or infinity; check the embedding op")
    return matrix


class FaissVectorIndex:
    """A :class:`VectorIndex` over FAISS (see the module docstring)."""

    def __init__(self, state: IndexState, faiss_index: Any) -> None:
        tune_faiss()
        self._state = state
        self._faiss = faiss_index
        self._dim = int(state.vectors.shape[1])
        self._rows = len(state.ids)
        self._row_of = {cid: row for row, cid in enumerate(state.ids) if state.alive[row]}
        self._dead = int(self._rows - state.alive[: self._rows].sum())
        self._clock = int(state.last_matched.max(initial=0))
        self._selector: tuple[Any, np.ndarray] | None = None

    # -- construction -------------------------------------------------------------

    @classmethod
    def build(
        cls,
        ids: Sequence[str],
        vectors: np.ndarray,
        spec: IndexSpec | None = None,
        *,
        pinned: bool = False,
        capacity: int | None = None,
        eviction: Eviction = "oldest",
        seed: int = 0,
    ) -> FaissVectorIndex:
        """Build an index over ``vectors`` (one row per id); IVF is trained on a sample."""
        tune_faiss()
        spec = spec or IndexSpec()
        matrix = _as_matrix(vectors, None, "building an index")
        if len(ids) != len(matrix) or len(set(ids)) != len(ids):
            raise VectorIndexError(
                f"building an index: {len(ids)} ids for {len(matrix)} vectors, "
                f"{len(ids) - len(set(ids))} repeated; pass one unique id per vector"
            )
        kind = choose_kind(len(matrix), spec)
        if kind == "ivf" and len(matrix) < IVF_POINTS_PER_LIST:
            kind = "exact"  # too few vectors to train even one list
        empty = cls._empty_state(kind, matrix.shape[1], spec, capacity, eviction)
        faiss_index = empty_faiss_index(kind, matrix.shape[1], spec, ivf_lists(len(matrix), spec))
        if kind == "ivf":
            rng = np.random.default_rng(seed)
            sample_size = min(len(matrix), 40 * faiss_index.nlist)
            sample = matrix[np.sort(rng.choice(len(matrix), sample_size, replace=False))]
            faiss_index.train(sample)
        index = cls(empty, faiss_index)
        index.add(list(ids), matrix, pinned=pinned)
        return index

    @staticmethod
    def _empty_state(
        kind: ConcreteKind, dim: int, spec: IndexSpec, capacity: int | None, eviction: Eviction
    ) -> IndexState:
        return IndexState(
            kind=kind,
            spec=spec,
            capacity=capacity,
            eviction=eviction,
            ids=[],
            vectors=np.empty((0, dim), dtype=np.float32),
            alive=np.empty(0, dtype=bool),
            pinned=np.empty(0, dtype=bool),
            last_matched=np.empty(0, dtype=np.int64),
            faiss_bytes=np.empty(0, dtype=np.uint8),
        )

    def state(self) -> IndexState:
        """A copy-free view of the index's state, with the FAISS index serialized."""
        rows, held = self._rows, self._state
        return IndexState(
            kind=held.kind,
            spec=held.spec,
            capacity=held.capacity,
            eviction=held.eviction,
            ids=held.ids[:rows],
            vectors=held.vectors[:rows],
            alive=held.alive[:rows],
            pinned=held.pinned[:rows],
            last_matched=held.last_matched[:rows],
            faiss_bytes=faiss.serialize_index(self._faiss),
        )

    @classmethod
    def from_state(cls, state: IndexState) -> FaissVectorIndex:
        """Rebuild the object from :meth:`state` (raises :class:`VectorIndexError` if unusable)."""
        try:
            faiss_index = faiss.deserialize_index(state.faiss_bytes)
        except RuntimeError as exc:
            raise VectorIndexError(f"the serialized FAISS index is unreadable: {exc}") from None
        rows, dim = state.vectors.shape
        if faiss_index.ntotal != rows or faiss_index.d != dim:
            raise VectorIndexError(
                f"the FAISS index holds {faiss_index.ntotal} vectors of dimension "
                f"{faiss_index.d}, but the stored rows are {rows} of dimension {dim}"
            )
        return cls(state, faiss_index)

    # -- reading ------------------------------------------------------------------

    @property
    def kind(self) -> ConcreteKind:
        """``exact``, ``hnsw`` or ``ivf``."""
        return self._state.kind

    @property
    def dim(self) -> int:
        """The dimension of the vectors."""
        return self._dim

    @property
    def capacity(self) -> int | None:
        """Most vectors kept (``None``: unbounded)."""
        return self._state.capacity

    def __len__(self) -> int:
        return len(self._row_of)

    def __contains__(self, call_id: object) -> bool:
        return call_id in self._row_of

    def ids(self) -> list[str]:
        """The known ids, oldest first."""
        return [self._state.ids[row] for row in sorted(self._row_of.values())]

    def vectors_of(self, ids: Sequence[str]) -> np.ndarray:
        """The stored vectors of known ids (raises :class:`VectorIndexError` for unknown ones)."""
        missing = [cid for cid in ids if cid not in self._row_of]
        if missing:
            raise VectorIndexError(f"ids not in the index: {missing[:5]}")
        return self._state.vectors[[self._row_of[cid] for cid in ids]]

    def search(self, vectors: np.ndarray, k: int = 1) -> tuple[np.ndarray, list[list[str | None]]]:
        """Batched k-nearest search; distances ``(n, k)`` float32, ``inf`` where none."""
        queries = _as_matrix(vectors, self._dim, f"searching a {self.kind} index")
        n = len(queries)
        if n == 0 or not self._row_of:
            return np.full((n, k), np.inf, dtype=np.float32), [[None] * k for _ in range(n)]
        fetch = max(k, self._state.spec.ivf_rerank) if self.kind == "ivf" else k
        _, labels = self._faiss.search(queries, fetch, params=self._search_params())
        distances, labels = self._exact_distances(queries, labels, k)
        ids = self._state.ids
        found = [[ids[label] if label >= 0 else None for label in row] for row in labels.tolist()]
        nearest = labels[:, 0][labels[:, 0] >= 0]
        self._clock += 1
        self._state.last_matched[nearest] = self._clock
        return distances, found

    def _exact_distances(
        self, queries: np.ndarray, labels: np.ndarray, k: int
    ) -> tuple[np.ndarray, np.ndarray]:
        # Distances from the stored float32 vectors, so every kind reports the same
        # exact value for the same pair (IVF's are quantized; this also re-ranks).
        valid = labels >= 0
        candidates = self._state.vectors[np.where(valid, labels, 0)]
        differences = candidates - queries[:, None, :]
        squared = np.einsum("nkd,nkd->nk", differences, differences)
        squared = np.where(valid, squared, np.inf)
        order = np.argsort(squared, axis=1, kind="stable")[:, :k]
        distances = np.sqrt(np.take_along_axis(squared, order, axis=1)).astype(np.float32)
        return distances, np.take_along_axis(np.where(valid, labels, -1), order, axis=1)

    def _search_params(self) -> Any:
        spec = self._state.spec
        selector = None
        if self._dead:
            if self._selector is None:
                bitmap = np.packbits(self._state.alive[: self._rows], bitorder="little")
                # The selector reads the bitmap in place: keep the array alive with it.
                selector_object = faiss.IDSelectorBitmap(len(bitmap), faiss.swig_ptr(bitmap))
                self._selector = (selector_object, bitmap)
            selector = self._selector[0]
        return search_parameters(self.kind, spec, selector)

    # -- writing ------------------------------------------------------------------

    def add(self, ids: Sequence[str], vectors: np.ndarray, *, pinned: bool = False) -> AddResult:
        """Add vectors (an id already known is replaced); evict or refuse beyond capacity.

        Pinned vectors (the reference) are never evicted. When the index is full,
        unpinned vectors are evicted by the eviction policy; when too few can be,
        the newest of ``ids`` are refused (``AddResult.rejected``).
        """
        matrix = _as_matrix(vectors, self._dim, f"adding to a {self.kind} index")
        if len(ids) != len(matrix):
            raise VectorIndexError(
                f"adding to a {self.kind} index: {len(ids)} ids for {len(matrix)} vectors"
            )
        latest = {cid: position for position, cid in enumerate(ids)}  # last one wins
        positions = sorted(latest.values())
        replaced = [ids[p] for p in positions if ids[p] in self._row_of]
        self._forget(replaced)
        evicted, rejected = self._make_room(len(positions))
        if rejected:
            positions, refused = positions[: len(positions) - rejected], positions[-rejected:]
        else:
            refused = []
        if positions:
            self._append([ids[p] for p in positions], matrix[positions], pinned)
        self._maybe_compact()
        return AddResult(
            added=[ids[p] for p in positions],
            evicted=evicted,
            rejected=[ids[p] for p in refused],
        )

    def remove(self, ids: Iterable[str]) -> int:
        """Forget these ids (pinned or not); return how many were known."""
        known = [cid for cid in dict.fromkeys(ids) if cid in self._row_of]
        self._forget(known)
        self._maybe_compact()
        return len(known)

    def _forget(self, ids: Sequence[str]) -> None:
        if not ids:
            return
        rows = [self._row_of.pop(cid) for cid in ids]
        self._state.alive[rows] = False
        self._dead += len(rows)
        self._selector = None

    def _make_room(self, incoming: int) -> tuple[list[str], int]:
        capacity = self._state.capacity
        overflow = 0 if capacity is None else len(self._row_of) + incoming - capacity
        if overflow <= 0:
            return [], 0
        state = self._state
        live = np.flatnonzero(state.alive[: self._rows] & ~state.pinned[: self._rows])
        if state.eviction == "least_recently_matched":
            live = live[np.argsort(state.last_matched[live], kind="stable")]
        victims = [state.ids[row] for row in live[:overflow]]
        self._forget(victims)
        return victims, overflow - len(victims)

    def _append(self, ids: list[str], matrix: np.ndarray, pinned: bool | np.ndarray) -> None:
        state, start, count = self._state, self._rows, len(ids)
        if start + count > len(state.vectors):
            grown = max(start + count, 2 * len(state.vectors), 1024)
            state.vectors = _grow(state.vectors, grown, start)
            state.alive = _grow(state.alive, grown, start)
            state.pinned = _grow(state.pinned, grown, start)
            state.last_matched = _grow(state.last_matched, grown, start)
        end = start + count
        state.vectors[start:end] = matrix
        state.alive[start:end] = True
        state.pinned[start:end] = pinned
        state.last_matched[start:end] = self._clock
        state.ids.extend(ids)
        self._faiss.add(matrix)
        self._row_of.update(zip(ids, range(start, end), strict=True))
        self._rows = end
        self._selector = None

    def _maybe_compact(self) -> None:
        if self._dead <= max(_COMPACT_MIN_DEAD, self._rows // 4):
            return
        state, rows = self._state, self._rows
        keep = np.flatnonzero(state.alive[:rows])
        if self.kind == "ivf":
            fresh = faiss.clone_index(self._faiss)
            fresh.reset()  # keeps the trained quantizer
        else:
            fresh = empty_faiss_index(self.kind, self._dim, state.spec, 1)
        self._state = IndexState(
            kind=state.kind,
            spec=state.spec,
            capacity=state.capacity,
            eviction=state.eviction,
            ids=[],
            vectors=np.empty((0, self._dim), dtype=np.float32),
            alive=np.empty(0, dtype=bool),
            pinned=np.empty(0, dtype=bool),
            last_matched=np.empty(0, dtype=np.int64),
            faiss_bytes=np.empty(0, dtype=np.uint8),
        )
        self._faiss, self._rows, self._dead, self._row_of = fresh, 0, 0, {}
        self._append([state.ids[row] for row in keep], state.vectors[keep], state.pinned[keep])
        self._state.last_matched[: self._rows] = state.last_matched[keep]


def _grow(array: np.ndarray, size: int, used: int) -> np.ndarray:
    grown = np.zeros((size, *array.shape[1:]), dtype=array.dtype)
    grown[:used] = array[:used]
    return grown
