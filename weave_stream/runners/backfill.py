"""Backfills: compute a registered topology over past calls, only what is missing.

The calls come from ``<prefix>.calls`` (validated and merged in-process, exactly as
the ingest agent does) and are selected by event time (``started_at``; an end-only
call by ``ended_at``). What is already computed is read from the topology's derived
topics: every value there is a cache entry (op ref, input digest, trial), so the
backfill's plan shows real cache hits and its run computes only the rest, writing
the new values where the stream writes them.

On a real Kafka cluster the read starts at the offsets for ``since`` minus an hour
of slack (``offsets_for_times``); the embedded broker answers those by write time,
not record time (shared/BROKER.md), so there it reads from the beginning. Either
way calls are then filtered by their own timestamps.
"""

from __future__ import annotations

import asyncio
import warnings
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import datetime, timedelta

from weave_stream.broker.kafka import offsets_at, produce, read_topic
from weave_stream.columns.cache import CachedValue, CacheKey, MemoryCache
from weave_stream.columns.derive import DerivedValue, DeriveStats, derive_batch
from weave_stream.columns.plan import Plan, plan_topology
from weave_stream.columns.tree import tree_records
from weave_stream.columns.values import ValueIdentity, derived_key, identity, read_derived
from weave_stream.config import Settings
from weave_stream.errors import BudgetExceededError, WeaveStreamWarning
from weave_stream.ingest.call import Call, call_order
from weave_stream.ingest.outcomes import expire_pending, ingest_record
from weave_stream.runners.calibration import calibrate_from_store
from weave_stream.runners.local import batches
from weave_stream.store.tables import open_store
from weave_stream.topology.spec import Topology

__all__ = [
    "WRITER_HEADER",
    "Backfill",
    "TimeRange",
    "calls_in_range",
    "known_results",
    "run_backfill",
    "write_missing",
]

_SEEK_SLACK = timedelta(hours=1)

WRITER_HEADER = "weave-stream-writer"
"""Header naming who wrote a derived value other than the stream: ``backfill`` or
``reconciler`` (a value the stream should have written and did not)."""


@dataclass(frozen=True)
class TimeRange:
    """Event times from ``start`` (inclusive) to ``end`` (exclusive; None: no end)."""

    start: datetime
    end: datetime | None = None

    def contains(self, call: Call) -> bool:
        moment = call.started_at or call.ended_at
        return (
            moment is not None and self.start <= moment and (self.end is None or moment < self.end)
        )


@dataclass
class Backfill:
    """What a backfill found and did."""

    plan: Plan
    calls: list[Call]
    written: int = 0
    stats: DeriveStats = field(default_factory=DeriveStats)


async def calls_in_range(settings: Settings, window: TimeRange) -> list[Call]:
    """Valid calls of ``<prefix>.calls`` whose event time is in ``window``, merged, by id."""
    pending: dict[str, dict[str, object]] = {}
    calls: dict[str, Call] = {}
    start_offsets = None
    if not settings.embedded_broker_quirks:
        moment = (window.start - _SEEK_SLACK).timestamp()
        start_offsets = await offsets_at(settings, settings.topics.calls, moment)
    async for record in read_topic(settings, settings.topics.calls, start_offsets=start_offsets):
        result = ingest_record(record.value or b"", pending, now=0.0, key=record.key)
        if result.call is not None:
            calls[result.call.id] = result.call
    # Halves whose partner never came are calls too (as the ingest agent forwards them).
    for call in expire_pending(pending, now=float("inf"), timeout=0.0):
        calls.setdefault(call.id, call)
    return sorted((call for call in calls.values() if window.contains(call)), key=call_order)


async def known_results(
    settings: Settings, topology: Topology
) -> tuple[MemoryCache, set[ValueIdentity]]:
    """The topology's derived values on Kafka: as a cache keyed like the runners' caches,
    and as the set of value identities already written (errors included)."""
    columns = [column.name for column in topology.compiled]
    cache = MemoryCache(max_entries=10_000_000)
    entries: dict[CacheKey, CachedValue] = {}
    written: set[ValueIdentity] = set()
    for value in await read_derived(settings, topology.name, columns):
        if value.error is None:
            written.add(identity(value))
        if (entry := value.cache_entry()) is not None:
            entries[entry[0]] = entry[1]
    await cache.put_many(entries)
    return cache, written


async def run_backfill(
    settings: Settings,
    topology: Topology,
    window: TimeRange,
    *,
    budget_usd: float | None = None,
    dry_run: bool = False,
    on_plan: Callable[[Plan], None] | None = None,
    on_progress: Callable[[int], None] | None = None,
) -> Backfill:
    """Plan, check the budget, then compute what is missing and write it to derived topics.

    Raises :class:`BudgetExceededError` when the plan exceeds ``budget_usd``.
    """
    calls = await calls_in_range(settings, window)
    if topology.calibrations:  # calibration {first_n}: the stream's sample, from the store
        resolved = await asyncio.to_thread(
            calibrate_from_store, open_store(None, settings), topology
        )
        for note in resolved.notes:
            warnings.warn(f"topology {topology.name!r}, {note}", WeaveStreamWarning, stacklevel=2)
        topology = resolved.topology
    cache, written = await known_results(settings, topology)
    plan = await plan_topology(topology, batches(calls, settings.batch_size), cache)
    if on_plan is not None:
        on_plan(plan)
    backfill = Backfill(plan, calls)
    if budget_usd is not None and (reason := plan.over_budget(budget_usd)) is not None:
        raise BudgetExceededError(f"not starting: {reason}")
    if dry_run or plan.to_compute == 0:
        return backfill
    new = await write_missing(
        settings, topology, calls, cache, written, stats=backfill.stats, on_progress=on_progress
    )
    backfill.written = len(new)
    return backfill


async def write_missing(
    settings: Settings,
    topology: Topology,
    calls: list[Call],
    cache: MemoryCache,
    written: set[ValueIdentity],
    *,
    writer: str = "backfill",
    stats: DeriveStats | None = None,
    on_progress: Callable[[int], None] | None = None,
) -> list[DerivedValue]:
    """Derive ``calls`` through ``cache`` (computing only its misses) and write every value
    whose identity is not in ``written``, marked with ``writer`` in a header. Returns
    the values written."""
    new: list[DerivedValue] = []
    for batch in batches(calls, settings.batch_size):
        sub_calls: list[DerivedValue] = []
        values = await derive_batch(topology, batch, cache, stats=stats, sub_calls=sub_calls)
        # A call's value may come from the cache (another call had the same input) and
        # still be missing from the topic: write every identity not written yet.
        missing = [value for value in values if identity(value) not in written]
        if sub_calls:  # the trees of what was computed, before the values (as the stream)
            await _write_trees(settings, topology.name, sub_calls, writer)
        await _write(settings, missing, writer)
        new.extend(missing)
        if on_progress is not None:
            on_progress(len(batch))
    return new


async def _write_trees(
    settings: Settings, topology: str, sub_calls: list[DerivedValue], writer: str
) -> int:
    headers = ((WRITER_HEADER, writer.encode()),)
    records = [(key, raw, headers) for key, raw in tree_records(sub_calls)]
    return await produce(settings, settings.topics.subcalls(topology), records)


async def _write(settings: Settings, values: list[DerivedValue], writer: str) -> int:
    written = 0
    headers = ((WRITER_HEADER, writer.encode()),)
    by_topic: dict[str, list[tuple[bytes, bytes, tuple[tuple[str, bytes], ...]]]] = {}
    for value in values:
        topic = settings.topics.derived(value.topology, value.column)
        by_topic.setdefault(topic, []).append(
            (derived_key(value.call_id, value.trial), value.to_json(), headers)
        )
    for topic, records in by_topic.items():
        written += await produce(settings, topic, records)
    return written
