"""The VectorIndex contract, checked for every FAISS kind (exact, HNSW, IVF)."""

from __future__ import annotations

import numpy as np
import pytest

from weave_stream.drift.faiss_index import FaissVectorIndex
from weave_stream.drift.index import VectorIndex, choose_kind
from weave_stream.errors import VectorIndexError
from weave_stream.topology.monitors import IndexSpec

KINDS = ["exact", "hnsw", "ivf"]
DIM = 32


def clustered(count: int, seed: int, centers: int = 40, noise: float = 0.1) -> np.ndarray:
    """Unit vectors scattered around the same few directions (topics), drawn with ``seed``."""
    middles = np.random.default_rng(0).normal(size=(centers, DIM))
    middles /= np.linalg.norm(middles, axis=1, keepdims=True)
    rng = np.random.default_rng(seed)
    vectors = middles[rng.integers(0, centers, count)] + rng.normal(size=(count, DIM)) * noise
    return (vectors / np.linalg.norm(vectors, axis=1, keepdims=True)).astype(np.float32)


def build(kind: str, count: int = 3000, **options: object) -> tuple[FaissVectorIndex, list[str]]:
    ids = [f"call-{i}" for i in range(count)]
    index = FaissVectorIndex.build(ids, clustered(count, seed=1), IndexSpec(kind=kind), **options)  # type: ignore[arg-type]
    return index, ids


@pytest.mark.parametrize("kind", KINDS)
def test_each_kind_is_a_vector_index_of_that_kind(kind: str) -> None:
    index, ids = build(kind)

    assert isinstance(index, VectorIndex)
    assert index.kind == kind and index.dim == DIM and len(index) == len(ids)
    assert "call-7" in index and "call-x" not in index


@pytest.mark.parametrize("kind", KINDS)
def test_a_stored_vector_is_its_own_nearest_neighbour(kind: str) -> None:
    index, ids = build(kind)
    stored = clustered(3000, seed=1)

    distances, found = index.search(stored[:200])

    assert [row[0] for row in found] == ids[:200]
    assert np.allclose(distances[:, 0], 0.0, atol=1e-3)


@pytest.mark.parametrize("kind", KINDS)
def test_distances_are_exact_l2_to_the_returned_neighbour(kind: str) -> None:
    index, _ = build(kind)
    queries = clustered(100, seed=2)

    distances, found = index.search(queries, k=3)

    for query, row, ids in zip(queries, distances, found, strict=True):
        expected = np.linalg.norm(index.vectors_of([i for i in ids if i]) - query, axis=1)
        assert np.allclose(row, expected, atol=1e-4)
        assert list(row) == sorted(row)


@pytest.mark.parametrize("kind", ["hnsw", "ivf"])
def test_approximate_kinds_agree_with_exact_search(kind: str) -> None:
    exact, _ = build("exact")
    approximate, _ = build(kind)
    queries = clustered(300, seed=3)

    _, truth = exact.search(queries)
    _, found = approximate.search(queries)

    recall = np.mean([a[0] == b[0] for a, b in zip(truth, found, strict=True)])
    assert recall >= 0.95


@pytest.mark.parametrize("kind", KINDS)
def test_adding_a_known_id_replaces_its_vector(kind: str) -> None:
    index, _ = build(kind)
    moved = clustered(1, seed=9)

    result = index.add(["call-5"], moved)

    assert result.added == ["call-5"] and len(index) == 3000
    distances, found = index.search(moved)
    assert found[0][0] == "call-5" and distances[0, 0] < 1e-3


@pytest.mark.parametrize("kind", KINDS)
def test_removed_ids_are_never_found_even_after_compaction(kind: str) -> None:
    index, ids = build(kind)
    stored = clustered(3000, seed=1)

    assert index.remove([*ids[:1500], "never-known"]) == 1500

    _, found = index.search(stored[:1500], k=2)
    returned = {cid for row in found for cid in row}
    assert len(index) == 1500 and not returned & set(ids[:1500])
    _, kept = index.search(stored[1500:1600])
    assert [row[0] for row in kept] == ids[1500:1600]


@pytest.mark.parametrize("kind", KINDS)
def test_capacity_evicts_the_oldest_learned_example_never_a_pinned_one(kind: str) -> None:
    index, ids = build(kind, count=1000, pinned=True, capacity=1003)
    learned = clustered(5, seed=4)

    first = index.add(["l0", "l1", "l2"], learned[:3])
    second = index.add(["l3", "l4"], learned[3:])

    assert first.evicted == [] and second.evicted == ["l0", "l1"]
    assert len(index) == 1003 and all(cid in index for cid in ids)
    assert "l0" not in index and "l4" in index


@pytest.mark.parametrize("kind", KINDS)
def test_a_full_index_of_pinned_vectors_rejects_what_does_not_fit(kind: str) -> None:
    index, _ = build(kind, count=1000, pinned=True, capacity=1001)

    result = index.add(["l0", "l1", "l2"], clustered(3, seed=5))

    assert result.added == ["l0"] and result.rejected == ["l1", "l2"] and len(index) == 1001


def test_least_recently_matched_eviction_keeps_the_examples_still_matched() -> None:
    index, _ = build(
        "exact", count=500, pinned=True, capacity=503, eviction="least_recently_matched"
    )
    learned = clustered(3, seed=6)
    index.add(["a", "b", "c"], learned)

    index.search(learned[[0, 2]])  # "a" and "c" are still matched; "b" is not
    result = index.add(["d"], clustered(1, seed=7))

    assert result.evicted == ["b"] and "a" in index and "c" in index


@pytest.mark.parametrize("kind", KINDS)
def test_state_round_trip_searches_the_same(kind: str) -> None:
    index, _ = build(kind)
    index.remove([f"call-{i}" for i in range(10)])
    queries = clustered(50, seed=8)

    copy = FaissVectorIndex.from_state(index.state())

    assert copy.kind == kind and len(copy) == len(index)
    assert copy.search(queries, k=2)[1] == index.search(queries, k=2)[1]


def test_an_empty_index_finds_nothing() -> None:
    index, ids = build("exact", count=10)
    index.remove(ids)

    distances, found = index.search(clustered(2, seed=1), k=2)

    assert np.isinf(distances).all() and found == [[None, None], [None, None]]


@pytest.mark.parametrize(
    ("vectors", "ids", "message"),
    [
        (np.ones((2, DIM + 1), np.float32), ["a", "b"], "expected \\(n, 32\\)"),
        (np.full((2, DIM), np.nan, np.float32), ["a", "b"], "NaN or infinity"),
        (np.ones((2, DIM), np.float32), ["a"], "1 ids for 2 vectors"),
    ],
)
def test_bad_vectors_are_refused_with_the_reason(
    vectors: np.ndarray, ids: list[str], message: str
) -> None:
    index, _ = build("exact", count=100)

    with pytest.raises(VectorIndexError, match=message):
        index.add(ids, vectors)


def test_building_with_repeated_ids_is_refused() -> None:
    with pytest.raises(VectorIndexError, match="1 repeated"):
        FaissVectorIndex.build(["a", "a"], clustered(2, seed=1))


def test_auto_kind_is_exact_for_small_references_and_ivf_above() -> None:
    spec = IndexSpec(exact_max=1000)

    assert choose_kind(1000, spec) == "exact" and choose_kind(1001, spec) == "ivf"
    assert (
        FaissVectorIndex.build([f"c{i}" for i in range(1500)], clustered(1500, 1), spec).kind
        == "ivf"
    )
    assert (
        FaissVectorIndex.build(["a", "b"], clustered(2, 1), IndexSpec(kind="ivf")).kind == "exact"
    )
