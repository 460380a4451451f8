"""Index snapshots: a round trip searches the same; a bad snapshot is refused, then rebuilt."""

from __future__ import annotations

import hashlib
import io
import json
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from weave_stream.drift.faiss_index import FaissVectorIndex
from weave_stream.drift.snapshot import (
    DATA_FILE,
    META_FILE,
    load_or_rebuild,
    load_snapshot,
    save_snapshot,
)
from weave_stream.errors import VectorIndexError
from weave_stream.metrics import INDEX_REBUILDS
from weave_stream.topology.monitors import IndexSpec

DIM = 16


def vectors(count: int, seed: int = 0) -> np.ndarray:
    middles = np.random.default_rng(0).normal(size=(20, DIM))
    rng = np.random.default_rng(seed)
    points = middles[rng.integers(0, 20, count)] + rng.normal(size=(count, DIM)) * 0.1
    return (points / np.linalg.norm(points, axis=1, keepdims=True)).astype(np.float32)


def make_index(kind: str = "exact", count: int = 2000) -> FaissVectorIndex:
    ids = [f"ref-{i}" for i in range(count)]
    return FaissVectorIndex.build(ids, vectors(count), IndexSpec(kind=kind), pinned=True)  # type: ignore[arg-type]


def rewrite_checksum(directory: Path) -> None:
    """Make meta.json agree with whatever index.npz now holds (a corruption the checksum misses)."""
    data = (directory / DATA_FILE).read_bytes()
    meta = json.loads((directory / META_FILE).read_text())
    meta.update(sha256=hashlib.sha256(data).hexdigest(), size=len(data))
    (directory / META_FILE).write_text(json.dumps(meta))


def rebuilds(reason: str) -> float:
    return INDEX_REBUILDS.labels(reason=reason)._value.get()


@pytest.mark.parametrize("kind", ["exact", "hnsw", "ivf"])
def test_a_snapshot_loads_back_searching_the_same(tmp_path: Path, kind: str) -> None:
    index = make_index(kind)
    index.add(["learned"], vectors(1, seed=5))
    index.remove(["ref-3"])
    save_snapshot(index, tmp_path, fingerprint="ref-v1", extra={"calibration": {"threshold": 0.4}})

    snapshot = load_snapshot(tmp_path, fingerprint="ref-v1")

    queries = vectors(30, seed=9)
    assert snapshot.index.kind == kind and len(snapshot.index) == len(index)
    assert snapshot.index.search(queries, k=2)[1] == index.search(queries, k=2)[1]
    assert snapshot.extra == {"calibration": {"threshold": 0.4}} and snapshot.rebuilt is None
    assert "learned" in snapshot.index and "ref-3" not in snapshot.index


def flip_a_byte(directory: Path) -> None:
    path = directory / DATA_FILE
    data = bytearray(path.read_bytes())
    data[len(data) // 2] ^= 0xFF
    path.write_bytes(bytes(data))


def truncate(directory: Path) -> None:
    path = directory / DATA_FILE
    path.write_bytes(path.read_bytes()[:4096])


def garble_meta(directory: Path) -> None:
    (directory / META_FILE).write_text('{"version": 1, "kind": ')


def strip_meta(directory: Path) -> None:
    (directory / META_FILE).write_text('{"version": 1}')


def garbage_with_matching_checksum(directory: Path) -> None:
    (directory / DATA_FILE).write_bytes(np.random.default_rng(0).bytes(50_000))
    rewrite_checksum(directory)


def broken_faiss_bytes_with_matching_checksum(directory: Path) -> None:
    with np.load(directory / DATA_FILE) as stored:
        arrays = {name: stored[name] for name in stored.files}
    arrays["faiss_bytes"] = arrays["faiss_bytes"][:100]
    buffer = io.BytesIO()
    np.savez(buffer, **arrays)
    (directory / DATA_FILE).write_bytes(buffer.getvalue())
    rewrite_checksum(directory)


def wrong_shapes_with_matching_checksum(directory: Path) -> None:
    with np.load(directory / DATA_FILE) as stored:
        arrays = {name: stored[name] for name in stored.files}
    arrays["alive"] = arrays["alive"][:10]
    buffer = io.BytesIO()
    np.savez(buffer, **arrays)
    (directory / DATA_FILE).write_bytes(buffer.getvalue())
    rewrite_checksum(directory)


@pytest.mark.parametrize(
    ("damage", "message"),
    [
        (flip_a_byte, "corrupt or truncated"),
        (truncate, "corrupt or truncated"),
        (garble_meta, "metadata .* is unreadable"),
        (strip_meta, "lacks fields"),
        (garbage_with_matching_checksum, "is unreadable"),
        (broken_faiss_bytes_with_matching_checksum, "FAISS index is unreadable"),
        (wrong_shapes_with_matching_checksum, "is inconsistent"),
    ],
)
def test_a_damaged_snapshot_raises_vector_index_error_saying_what_is_wrong(
    tmp_path: Path, damage: Callable[[Path], None], message: str
) -> None:
    save_snapshot(make_index(), tmp_path, fingerprint="ref-v1")
    damage(tmp_path)

    with pytest.raises(VectorIndexError, match=message):
        load_snapshot(tmp_path)


def test_no_snapshot_and_a_stale_one_are_refused(tmp_path: Path) -> None:
    with pytest.raises(VectorIndexError, match="no index snapshot"):
        load_snapshot(tmp_path / "absent")
    save_snapshot(make_index(), tmp_path, fingerprint="ref-v1")

    with pytest.raises(VectorIndexError, match="stale"):
        load_snapshot(tmp_path, fingerprint="ref-v2")


def counting_rebuild(calls: list[int]) -> Callable[[], tuple[FaissVectorIndex, dict[str, Any]]]:
    def rebuild() -> tuple[FaissVectorIndex, dict[str, Any]]:
        calls.append(1)
        return make_index(count=500), {"rebuilt": True}

    return rebuild


def nothing(directory: Path) -> None:
    del directory


def saved_then(
    damage: Callable[[Path], None] | None, fingerprint: str = "ref-v1"
) -> Callable[[Path], None]:
    def prepare(directory: Path) -> None:
        save_snapshot(make_index(), directory, fingerprint=fingerprint)
        if damage is not None:
            damage(directory)

    return prepare


@pytest.mark.parametrize(
    ("prepare", "reason"),
    [
        (nothing, "missing"),
        (saved_then(flip_a_byte), "corrupt"),
        (saved_then(truncate), "corrupt"),
        (saved_then(None, fingerprint="ref-v0"), "stale"),
    ],
)
def test_a_missing_corrupt_or_stale_snapshot_is_rebuilt_and_rewritten(
    tmp_path: Path, prepare: Callable[[Path], None], reason: str
) -> None:
    prepare(tmp_path)
    before, calls = rebuilds(reason), list[int]()

    snapshot = load_or_rebuild(tmp_path, fingerprint="ref-v1", rebuild=counting_rebuild(calls))

    assert calls == [1] and snapshot.rebuilt == reason and len(snapshot.index) == 500
    assert rebuilds(reason) == before + 1
    again = load_snapshot(tmp_path, fingerprint="ref-v1")
    assert len(again.index) == 500 and again.extra == {"rebuilt": True}


def test_a_good_snapshot_is_loaded_without_rebuilding(tmp_path: Path) -> None:
    save_snapshot(make_index(), tmp_path, fingerprint="ref-v1")
    calls: list[int] = []

    snapshot = load_or_rebuild(tmp_path, fingerprint="ref-v1", rebuild=counting_rebuild(calls))

    assert calls == [] and snapshot.rebuilt is None and len(snapshot.index) == 2000


def test_saving_again_replaces_the_snapshot_and_leaves_no_temporary_files(tmp_path: Path) -> None:
    save_snapshot(make_index(count=2000), tmp_path, fingerprint="a")
    save_snapshot(make_index(count=300), tmp_path, fingerprint="b")

    assert sorted(p.name for p in tmp_path.iterdir()) == [DATA_FILE, META_FILE]
    assert len(load_snapshot(tmp_path, fingerprint="b").index) == 300
