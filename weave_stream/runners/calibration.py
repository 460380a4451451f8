"""``calibration: {first_n: N}`` resolved from the call store, kept once resolved.

The streaming worker (and a backfill) cannot take "the first N calls" from the
batches it happens to see: a value must not depend on which worker computed it. So
the sample comes from the call store, where every worker's store sink writes every
valid call: the calls of the topology's source in call order (``started_at``, then id;
the op-name glob is matched first on the few distinct names, then only the earliest
calls are read in full, a chunk at a time) until N of them have a text for the
column (:func:`weave_stream.topology.calibrate.first_n_sample`, the rule the local
runner applies to its input). The resolved sample is kept
(:class:`~weave_stream.store.calibrations.CalibrationFiles`): the first worker to
resolve it writes it, every later look-up reads it, so a restarted worker uses the
same texts and the op keeps its ref.

Until the store holds N such calls the column stays uncalibrated and
:attr:`Calibrated.found` says how many it holds. A call stored after the sample was
taken is not in it even when it started earlier (a lagging partition): the sample
is whatever the store held, in call order, when it first held N.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator

import pyarrow as pa
import pyarrow.compute as pc

from weave_stream.errors import TopologyError
from weave_stream.ingest.call import Call
from weave_stream.store.calibrations import CalibrationFiles, Sample
from weave_stream.store.rows import call_from_row
from weave_stream.store.tables import Store
from weave_stream.topology.calibrate import Calibrated, first_n_sample, with_samples
from weave_stream.topology.calibration import CalibrationRequest
from weave_stream.topology.selection import op_name_matches
from weave_stream.topology.spec import Topology

__all__ = ["SCAN_LIMIT", "calibrate_from_store", "stored_calls_in_order"]

SCAN_LIMIT = 20  # x N: the stored calls read, at most, looking for N with a text


def calibrate_from_store(
    store: Store,
    topology: Topology,
    *,
    chunk: int = 1000,
    settled: Callable[[str, tuple[str, ...]], bool] | None = None,
) -> Calibrated:
    """``topology`` with each ``{first_n}`` column calibrated on its kept sample, or on one
    taken now from ``store`` when it holds enough calls (and then kept).

    ``settled(column, call_ids)`` may hold a sample back (it stays pending) until the
    caller has seen the same one twice: the store sinks of several workers commit at
    their own pace, so the first N calls stored are not yet the first N made.
    """
    files = CalibrationFiles(store)
    samples: dict[str, tuple[str, ...]] = {}
    call_ids: dict[str, tuple[str, ...]] = {}
    pending: list[CalibrationRequest] = []
    found: dict[str, int] = {}
    for request in topology.calibrations:
        kept = files.load(topology.name, request.column, request.n, request.key)
        if kept is None:
            sample = _first_n_stored(store, topology, request, chunk)
            found[request.column] = len(sample)
            if len(sample) < request.n:
                pending.append(request)
                continue
            ids, texts = zip(*sample, strict=True)
            if settled is not None and not settled(request.column, ids):
                pending.append(request)
                continue
            taken = Sample(topology.name, request.column, request.n, request.key, ids, texts)
            kept = files.save(taken)  # another worker may have kept one first: use that one
        found[request.column] = len(kept.texts)
        samples[request.column], call_ids[request.column] = kept.texts, kept.call_ids
    resolved = with_samples(topology, samples) if samples else topology
    return Calibrated(resolved, samples, call_ids, tuple(pending), found)


def _first_n_stored(
    store: Store, topology: Topology, request: CalibrationRequest, chunk: int
) -> list[tuple[str, str]]:
    """The first ``request.n`` (call id, text) of the stored calls, read a chunk at a time
    in call order (each chunk is later than the one before: the sample only grows).

    Raises :class:`TopologyError` when ``SCAN_LIMIT`` x N calls of the source held too few
    texts: the column's text path or filter is most likely wrong, and reading on would
    read the whole store again on every look."""
    sample: list[tuple[str, str]] = []
    seen: set[str] = set()
    scanned, limit = 0, SCAN_LIMIT * request.n
    for batch in stored_calls_in_order(store, topology.source.op_name, max(chunk, request.n)):
        fresh = [call for call in batch if call.id not in seen]
        seen.update(call.id for call in fresh)
        scanned += len(fresh)
        sample += first_n_sample(topology, request, fresh)[: request.n - len(sample)]
        if len(sample) >= request.n:
            break
        if scanned >= limit:
            raise TopologyError(
                f"topology {topology.name!r}, column {request.column!r}: calibration "
                f"{{first_n: {request.n}}} found {len(sample)} calls with a text at "
                f"{request.text.text} among the first {scanned} calls of the source; check "
                "the column's args.text and filter (or lower first_n)"
            )
    return sample


def stored_calls_in_order(
    store: Store, op_name: str | None, chunk: int = 1000
) -> Iterator[list[Call]]:
    """The store's calls (of ``op_name``, a glob) in call order, ``chunk`` at a time."""
    if not store.has("calls"):
        return  # nothing stored yet (any other store error is raised: it is no "0 stored")
    dataset = store.dataset("calls")
    index = dataset.to_table(columns=["id", "op_name", "started_at", "ended_at"])
    if op_name is not None:
        names = [n for n in pc.unique(index["op_name"]).to_pylist() if op_name_matches(op_name, n)]
        index = index.filter(pc.is_in(index["op_name"], pa.array(names, index["op_name"].type)))
    moment = pc.coalesce(index["started_at"], index["ended_at"])
    ordered = index.append_column("moment", moment).sort_by([("moment", "ascending"),
                                                              ("id", "ascending")])  # fmt: skip
    ids = ordered["id"].to_pylist()
    for start in range(0, len(ids), chunk):
        wanted = ids[start : start + chunk]
        rows = dataset.to_table(filter=pc.field("id").isin(wanted)).to_pylist()
        by_id = {row["id"]: call_from_row(row) for row in rows}
        yield [by_id[call_id] for call_id in wanted if call_id in by_id]
