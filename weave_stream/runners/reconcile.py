"""Reconciliation: every call a topology selected and processed has its values, or gets them.

The stream writes a call's values before it acknowledges the call, and commits
only acknowledged offsets (:mod:`~weave_stream.runners.streaming.commit_guard`), so
a processed call always has its values. This module checks that, independently, so
that a loss can never be silent: per partition of ``<prefix>.calls.valid``, the
calls the topology's group has committed (processed) for at least
``reconcile_settle_seconds`` are read from the reconciler's own cursor (the
committed offsets of ``weave-stream.<prefix>.reconcile.<topology>``, a group that
never joins), and compared with the values written for them since:

* what a call should have is what :func:`~weave_stream.columns.derive.expected_values`
  says (the topology's source selection, column filters, samples and trials, with
  no op run); a value is present when any value of that (call, column, trial) was
  written, under any op ref (a call processed before an op changed keeps its old
  values) and error values included (a failure is an outcome, not a loss);
* what is missing is recomputed through the backfill path
  (:func:`~weave_stream.runners.backfill.write_missing`: the values present serve
  as the cache, only misses run) and written with the header
  ``weave-stream-writer: reconciler``, then the cursor moves on.

Values are looked for from a minute before the oldest call checked (they are
written after their call, on hosts whose clocks agree within that minute).
"""

from __future__ import annotations

import time
from collections import Counter
from dataclasses import dataclass, field

from weave_stream.broker.kafka import commit_group_offsets, group_offsets, read_topic
from weave_stream.columns.cache import CachedValue, CacheKey, MemoryCache
from weave_stream.columns.derive import DerivedValue, expected_values
from weave_stream.columns.values import ValueIdentity, read_derived
from weave_stream.config import Settings
from weave_stream.ingest.call import Call, call_from_json
from weave_stream.runners.backfill import write_missing
from weave_stream.topology.spec import Topology

__all__ = ["CLOCK_SLACK_SECONDS", "Reconciliation", "reconcile_calls", "reconcile_partitions"]

CLOCK_SLACK_SECONDS = 60.0

Slot = tuple[str, str, int]  # (call id, column, trial): a value under any op ref fills it


@dataclass
class Reconciliation:
    """What one pass found and did."""

    checked: int = 0  # calls checked
    missing: Counter[str] = field(default_factory=Counter)  # per column: values not written
    repaired: Counter[str] = field(default_factory=Counter)  # per column: values written now
    missing_calls: list[str] = field(default_factory=list)  # ids of calls missing a value
    checked_until: float | None = None  # Unix time of the newest call checked
    cursors: dict[int, int] = field(default_factory=dict)  # partition: next offset to check


async def reconcile_calls(
    settings: Settings, topology: Topology, calls: list[Call], values: list[DerivedValue]
) -> Reconciliation:
    """Compare ``calls`` with the ``values`` written for them; write what is missing."""
    result = Reconciliation(checked=len(calls))
    if not calls or not topology.compiled:
        return result
    wanted = {call.id for call in calls}
    present: set[Slot] = set()
    entries: dict[CacheKey, CachedValue] = {}
    for value in values:
        if value.call_id not in wanted:
            continue
        present.add((value.call_id, value.column, value.trial))
        if (entry := value.cache_entry()) is not None:
            entries[entry[0]] = entry[1]
    cache = MemoryCache(max_entries=max(1024, 2 * len(entries)))
    await cache.put_many(entries)
    expected = await expected_values(topology, calls, cache)
    missing = [v for v in expected if (v.call_id, v.column, v.trial) not in present]
    if not missing:
        return result
    result.missing.update(value.column for value in missing)
    result.missing_calls = sorted({value.call_id for value in missing})
    broken = [call for call in calls if call.id in set(result.missing_calls)]
    refs = {column.name: column.op.ref for column in topology.compiled}
    # Written, for the backfill path: every slot present, under the current op ref.
    written: set[ValueIdentity] = {
        (call_id, column, refs[column], trial)
        for call_id, column, trial in present
        if column in refs
    }
    new = await write_missing(settings, topology, broken, cache, written, writer="reconciler")
    result.repaired.update(value.column for value in new)
    return result


async def reconcile_partitions(
    settings: Settings, topology: Topology, partitions: list[int], *, now: float | None = None
) -> Reconciliation:
    """One pass over ``partitions`` of the valid calls: check the calls processed at least
    the settle time before ``now``, repair what is missing, move the cursor on."""
    now = time.time() if now is None else now
    topics = settings.topics
    cursor_group = topics.reconcile_group(topology.name)
    cursors = await group_offsets(settings, cursor_group, topics.valid, partitions)
    processed = await group_offsets(
        settings, topics.topology_group(topology.name), topics.valid, partitions
    )
    # A partition the reconciler never checked starts where the topology stands: calls
    # before it were processed before reconciliation existed for this topology.
    fresh = {p: o for p, o in processed.items() if cursors[p] is None and o is not None}
    await commit_group_offsets(settings, cursor_group, topics.valid, fresh)
    ranges = {
        p: (start, end)
        for p, start in {**cursors, **fresh}.items()
        if start is not None and (end := processed[p]) is not None and start < end
    }
    result = Reconciliation()
    if not ranges:
        return result
    limit_ms = int((now - settings.reconcile_settle_seconds) * 1000)
    calls: dict[str, Call] = {}
    cursor = {p: start for p, (start, _) in ranges.items()}
    stopped: set[int] = set()
    oldest_ms: int | None = None
    newest_ms: int | None = None
    async for record in read_topic(
        settings,
        topics.valid,
        start_offsets={p: start for p, (start, _) in ranges.items()},
        end_offsets={p: end for p, (_, end) in ranges.items()},
    ):
        if record.partition in stopped or record.timestamp_ms > limit_ms:
            stopped.add(record.partition)  # not settled yet: the next pass takes it
            continue
        cursor[record.partition] = record.offset + 1
        oldest_ms = (
            record.timestamp_ms if oldest_ms is None else min(oldest_ms, record.timestamp_ms)
        )
        newest_ms = max(newest_ms or 0, record.timestamp_ms)
        try:
            call = call_from_json(record.value or b"")
        except ValueError:
            continue  # not a call: the topology counted it as unreadable already
        calls.setdefault(call.id, call)
    if oldest_ms is not None:
        columns = [column.name for column in topology.compiled]
        values = await read_derived(
            settings,
            topology.name,
            columns,
            deduplicate=False,
            since=oldest_ms / 1000 - CLOCK_SLACK_SECONDS,
        )
        result = await reconcile_calls(settings, topology, list(calls.values()), values)
        result.checked_until = (newest_ms or oldest_ms) / 1000
    moved = {p: o for p, o in cursor.items() if o > ranges[p][0]}
    await commit_group_offsets(settings, cursor_group, topics.valid, moved)
    result.cursors = {**cursor}
    return result
