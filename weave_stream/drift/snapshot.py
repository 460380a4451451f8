"""Index snapshots in a worker's data dir: written atomically, checked before use.

A snapshot is a directory holding ``index.npz`` (the stored vectors, row flags, ids
and the serialized FAISS index) and ``meta.json`` (format version, kind, dimension,
the index settings, the SHA-256 and size of ``index.npz``, the caller's
*fingerprint* of the reference it was built from, and the caller's ``extra`` data,
such as the novelty calibration). Each file is written to a temporary name, synced
and renamed; ``meta.json`` goes last, so a crash mid-write leaves a checksum
mismatch, never a half-read index.

:func:`load_snapshot` raises :class:`VectorIndexError` for a missing, truncated,
corrupt or stale snapshot; the bytes reach FAISS only after the checksum matched.
:func:`load_or_rebuild` turns that error into a rebuild from the reference vectors
and a fresh snapshot: a bad file costs a rebuild, never the worker.
"""

from __future__ import annotations

import hashlib
import json
import logging
import os
import zipfile
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal

import numpy as np
from pydantic import ValidationError

from weave_stream.drift.faiss_index import FaissVectorIndex
from weave_stream.drift.index import IndexState
from weave_stream.errors import VectorIndexError
from weave_stream.metrics import INDEX_REBUILDS
from weave_stream.topology.monitors import IndexSpec

__all__ = ["IndexSnapshot", "load_or_rebuild", "load_snapshot", "save_snapshot"]

FORMAT_VERSION = 1
DATA_FILE = "index.npz"
META_FILE = "meta.json"
_ARRAYS = ("vectors", "alive", "pinned", "last_matched", "faiss_bytes", "ids_json")
log = logging.getLogger(__name__)

RebuildReason = Literal["missing", "corrupt", "stale"]


@dataclass
class IndexSnapshot:
    """A loaded (or freshly built) index with what was stored beside it."""

    index: FaissVectorIndex
    fingerprint: str
    extra: dict[str, Any]
    rebuilt: RebuildReason | None = None


def save_snapshot(
    index: FaissVectorIndex,
    directory: Path,
    *,
    fingerprint: str,
    extra: Mapping[str, Any] | None = None,
) -> None:
    """Write ``index`` to ``directory`` (created if needed), replacing any older snapshot."""
    directory.mkdir(parents=True, exist_ok=True)
    state = index.state()
    data_path = directory / DATA_FILE
    temporary = directory / f".{DATA_FILE}.{os.getpid()}.tmp"
    with temporary.open("wb") as handle:
        np.savez(
            handle,
            vectors=state.vectors,
            alive=state.alive,
            pinned=state.pinned,
            last_matched=state.last_matched,
            faiss_bytes=state.faiss_bytes,
            ids_json=np.frombuffer(json.dumps(state.ids).encode(), dtype=np.uint8),
        )
        handle.flush()
        os.fsync(handle.fileno())
    digest, size = _digest(temporary)
    os.replace(temporary, data_path)
    meta = {
        "version": FORMAT_VERSION,
        "kind": state.kind,
        "dim": index.dim,
        "spec": state.spec.model_dump(),
        "capacity": state.capacity,
        "eviction": state.eviction,
        "sha256": digest,
        "size": size,
        "fingerprint": fingerprint,
        "extra": dict(extra or {}),
    }
    _write_atomically(directory / META_FILE, json.dumps(meta, indent=1).encode())


def load_snapshot(directory: Path, *, fingerprint: str | None = None) -> IndexSnapshot:
    """Load and verify a snapshot; raise :class:`VectorIndexError` saying what is wrong.

    With ``fingerprint``, a snapshot built from another reference is *stale* and
    refused as well.
    """
    meta_path, data_path = directory / META_FILE, directory / DATA_FILE
    if not meta_path.exists() or not data_path.exists():
        raise VectorIndexError(f"no index snapshot in {directory}")
    meta = _read_meta(meta_path)
    if fingerprint is not None and meta["fingerprint"] != fingerprint:
        raise VectorIndexError(
            f"index snapshot {directory} is stale: built from reference "
            f"{meta['fingerprint']!r}, the reference is now {fingerprint!r}"
        )
    digest, size = _digest(data_path)
    if (digest, size) != (meta["sha256"], meta["size"]):
        raise VectorIndexError(
            f"index snapshot {data_path} is corrupt or truncated: {size} bytes with "
            f"SHA-256 {digest[:12]}..., {meta_path.name} expects {meta['size']} bytes with "
            f"{str(meta['sha256'])[:12]}...; it will be rebuilt from the reference"
        )
    try:
        with np.load(data_path, allow_pickle=False) as arrays:
            loaded = {name: arrays[name] for name in _ARRAYS}
        ids = json.loads(loaded["ids_json"].tobytes())
        state = IndexState(
            kind=meta["kind"],
            spec=IndexSpec.model_validate(meta["spec"]),
            capacity=meta["capacity"],
            eviction=meta["eviction"],
            ids=list(ids),
            vectors=loaded["vectors"],
            alive=loaded["alive"],
            pinned=loaded["pinned"],
            last_matched=loaded["last_matched"],
            faiss_bytes=loaded["faiss_bytes"],
        )
    except (OSError, ValueError, KeyError, TypeError, zipfile.BadZipFile, ValidationError) as exc:
        raise VectorIndexError(f"index snapshot {data_path} is unreadable: {exc}") from None
    _check_shapes(state, meta, data_path)
    index = FaissVectorIndex.from_state(state)
    return IndexSnapshot(index, str(meta["fingerprint"]), dict(meta["extra"]))


def load_or_rebuild(
    directory: Path,
    *,
    fingerprint: str,
    rebuild: Callable[[], tuple[FaissVectorIndex, Mapping[str, Any]]],
    where: str = "",
) -> IndexSnapshot:
    """Load the snapshot in ``directory``, or rebuild it with ``rebuild()`` and save it.

    ``rebuild`` returns the index built from the reference and the ``extra`` data to
    store with it. Every rebuild is logged with its reason and counted in
    ``weave_stream_index_rebuilds_total``. ``where`` names the monitor in messages.
    """
    reason: RebuildReason
    if not (directory / META_FILE).exists():
        reason, detail = "missing", f"no snapshot in {directory}"
    else:
        try:
            snapshot = load_snapshot(directory)
        except VectorIndexError as exc:
            reason, detail = "corrupt", str(exc)
        else:
            if snapshot.fingerprint == fingerprint:
                return snapshot
            reason = "stale"
            detail = f"built from reference {snapshot.fingerprint!r}, now {fingerprint!r}"
    log.warning("%s: rebuilding the index (%s): %s", where or directory, reason, detail)
    INDEX_REBUILDS.labels(reason=reason).inc()
    index, extra = rebuild()
    save_snapshot(index, directory, fingerprint=fingerprint, extra=extra)
    return IndexSnapshot(index, fingerprint, dict(extra), rebuilt=reason)


def _read_meta(path: Path) -> dict[str, Any]:
    try:
        meta = json.loads(path.read_bytes())
    except (OSError, ValueError) as exc:
        raise VectorIndexError(f"index snapshot metadata {path} is unreadable: {exc}") from None
    required = {"version", "kind", "dim", "spec", "capacity", "eviction", "sha256", "size"}
    if not isinstance(meta, dict) or not required <= meta.keys():
        raise VectorIndexError(f"index snapshot metadata {path} lacks fields {sorted(required)}")
    if meta["version"] != FORMAT_VERSION:
        raise VectorIndexError(
            f"index snapshot {path} has format {meta['version']!r}; this version reads "
            f"{FORMAT_VERSION}"
        )
    meta.setdefault("fingerprint", "")
    meta.setdefault("extra", {})
    return meta


def _check_shapes(state: IndexState, meta: Mapping[str, Any], path: Path) -> None:
    rows = len(state.ids)
    vectors = state.vectors
    consistent = (
        state.kind in ("exact", "hnsw", "ivf")
        and vectors.ndim == 2
        and vectors.shape == (rows, meta["dim"])
        and vectors.dtype == np.float32
        and all(len(a) == rows for a in (state.alive, state.pinned, state.last_matched))
        and state.alive.dtype == bool
        and state.faiss_bytes.dtype == np.uint8
    )
    if not consistent:
        raise VectorIndexError(
            f"index snapshot {path} is inconsistent: {rows} ids, vectors {vectors.shape} "
            f"{vectors.dtype}, dimension {meta['dim']}"
        )


def _digest(path: Path) -> tuple[str, int]:
    sha, size = hashlib.sha256(), 0
    with path.open("rb") as handle:
        while chunk := handle.read(1 << 20):
            sha.update(chunk)
            size += len(chunk)
    return sha.hexdigest(), size


def _write_atomically(path: Path, data: bytes) -> None:
    temporary = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    with temporary.open("wb") as handle:
        handle.write(data)
        handle.flush()
        os.fsync(handle.fileno())
    os.replace(temporary, path)
    directory = os.open(path.parent, os.O_RDONLY)
    try:
        os.fsync(directory)
    finally:
        os.close(directory)
