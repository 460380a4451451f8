"""Windowed aggregates inside a topology worker: per micro-batch, per source partition.

After the derived values of a micro-batch are computed, :meth:`StreamingAggregates.apply`
builds one row per selected call and trial (:mod:`weave_stream.aggregates.rows`), groups
them by the source partition of ``<prefix>.calls.valid`` they came from, and folds each
group into that partition's :class:`~weave_stream.windows.WindowState` at once: each
(window pane, group) is touched once per batch, and the per-row work is a few
dictionary operations. No repartition by group key: queries merge the per-partition
partials (:mod:`weave_stream.aggregates.source`).

**State and its partitions.** Each partition's state lives in the changelog-backed
``aggregates`` table under its own key namespace (``<partition>/``), and each key must
sit in the changelog partition of the same number: that partition's changelog is what
the worker that takes the source partition over restores. Faust picks a key's
changelog partition (and the RocksDB store its per-partition database) from the
*current event*, a context variable that ``take_events`` batches leave unset in the
agent's task. So :meth:`_writing_to` sets it, around each partition's writes, to a
stand-in event of that partition -- the one contained use of Faust internals here.

**Rebalances.** A partition's state is dropped when the partition is revoked and
rebuilt from the table (restored from the changelog) the first time it is needed once
assigned. Rows of a partition revoked in the middle of a batch are left to its new
owner: Faust discards the commit of a revoked partition, so they come again there.

**Closing on the wall clock.** Windows close on event time as calls arrive. A timer
also closes them on the wall clock for a partition that received nothing for
:data:`IDLE_SECONDS` (an idle stream still gets its last windows), but never for a
busy one: a worker catching up on a backlog keeps event time, and does not count the
backlog late. Closed windows update the latest-closed-window gauges.
"""

from __future__ import annotations

import contextlib
import logging
import math
import time
import weakref
from collections.abc import Iterator, Sequence
from typing import Any, NamedTuple, cast

import faust
import orjson
from faust.streams import _current_event
from faust.types import TP, EventT

from weave_stream.aggregates.gauges import WindowGauges
from weave_stream.aggregates.rows import RowBuilder
from weave_stream.aggregates.source import aggregate_plans, partition_namespace
from weave_stream.columns.derive import DerivedValue
from weave_stream.config import Settings
from weave_stream.metrics import TOPOLOGY_BATCH_SECONDS, TOPOLOGY_CALLS, UNREADABLE_RECORDS
from weave_stream.runners.streaming.health import HEALTH, watched_agent
from weave_stream.runners.streaming.hot_path import lighten_hot_path
from weave_stream.topics import AGGREGATES_TABLE
from weave_stream.topology.spec import Topology
from weave_stream.windows.rows import AggregateRow
from weave_stream.windows.state import ClosedWindow, WindowState

__all__ = [
    "AGGREGATE_BATCH_SIZE",
    "CLOSE_CHECK_SECONDS",
    "IDLE_SECONDS",
    "StreamingAggregates",
    "attach_aggregates",
]

log = logging.getLogger(__name__)

# Events per batch of an aggregate-only topology (bench/aggregate.py: at 100 events per
# batch the changelog writes double the per-event cost; at 2000 it is near Faust's own).
AGGREGATE_BATCH_SIZE = 2000
IDLE_SECONDS = 5.0  # a partition with no calls for this long closes windows on the wall clock
CLOSE_CHECK_SECONDS = 1.0


class _Message(NamedTuple):
    topic: str
    partition: int


class _PartitionEvent:
    """Stands in for an event of one source partition while the aggregates table is written.

    Faust reads ``message.topic`` and ``message.partition`` of the current event to
    choose the changelog partition (and the RocksDB database) of a table key.
    """

    __slots__ = ("__weakref__", "message")

    def __init__(self, topic: str, partition: int) -> None:
        self.message = _Message(topic, partition)


def attach_aggregates(
    app: faust.App, settings: Settings, topology: Topology
) -> StreamingAggregates | None:
    """The aggregates of ``topology`` on ``app``, or ``None`` when it declares none."""
    plans = aggregate_plans(topology)
    return StreamingAggregates(app, settings, topology) if plans else None


class StreamingAggregates:
    """The windowed aggregates of one topology in its worker (see the module docstring)."""

    def __init__(self, app: faust.App, settings: Settings, topology: Topology) -> None:
        self.app = app
        self.topology = topology
        self.plans = aggregate_plans(topology)
        self.builder = RowBuilder(topology, [plan.spec for plan in self.plans])
        self.source_topic = settings.topics.valid
        # The types, not a Schema, set the changelog's codecs in Faust (the recovery reads
        # with them): keys are JSON strings, values the raw bytes WindowState writes.
        self.table = app.Table(
            AGGREGATES_TABLE,
            default=None,
            partitions=settings.partitions,
            key_type=str,
            value_type=bytes,
        )
        self.gauges = WindowGauges(topology.name, self.plans, settings.aggregate_metric_max_groups)
        self._states: dict[int, WindowState] = {}
        self._events: dict[int, _PartitionEvent] = {}
        self._assigned: set[int] = set()
        self._last_rows: dict[int, float] = {}
        app.on_partitions_assigned.connect(lambda *args, **_: self.on_assigned(args[1]))
        app.on_partitions_revoked.connect(lambda *args, **_: self.on_revoked(args[1]))

        @app.timer(interval=CLOSE_CHECK_SECONDS)
        async def close_idle_windows() -> None:
            """Close due windows of idle partitions on the wall clock."""
            self.close_idle(time.time())

    # -- an aggregate-only topology's own agent ------------------------------------

    def consume(self, source: faust.TopicT, settings: Settings) -> None:
        """Read ``source`` with a light agent of our own (a topology with no columns).

        With no op to batch for, ``take_events`` buys nothing and costs its buffering
        machinery; this agent takes events one by one without acking them, folds each
        :data:`AGGREGATE_BATCH_SIZE` (or ``batch_size`` if larger, or what waited
        ``batch_max_wait_seconds``) in at once, then acks them: Faust commits an offset
        only once its event is acked, so a crash repeats a batch (deduplicated), never
        loses one. Large batches matter: each batch writes its dirty buckets, the
        dedupe segment and the meta record of every partition to the changelog once.
        """
        batch_size = max(settings.batch_size, AGGREGATE_BATCH_SIZE)
        max_wait = settings.batch_max_wait_seconds
        calls_read = TOPOLOGY_CALLS.labels(self.topology.name)
        batch_seconds = TOPOLOGY_BATCH_SECONDS.labels(self.topology.name)
        held: list[EventT] = []
        held_since = [0.0]
        component = f"topology/{self.topology.name}/aggregate"

        def flush() -> None:
            started = time.perf_counter()
            events = list(held)
            held.clear()
            self.apply(events, (), count_unreadable=True)
            for event in events:
                event.ack()
            calls_read.inc(len(events))
            batch_seconds.observe(time.perf_counter() - started)
            HEALTH.ok(component)

        @self.app.agent(source, name=watched_agent(f"{self.topology.name}-aggregate", component))
        async def aggregate(stream: faust.StreamT[bytes]) -> None:
            HEALTH.running(component)
            async for event in stream.noack().events():  # type: ignore[attr-defined]
                if not held:
                    held_since[0] = time.monotonic()
                held.append(event)
                if len(held) >= batch_size:
                    flush()

        lighten_hot_path(self.app)  # measured: bench/aggregate.py

        @self.app.timer(interval=max_wait)
        async def flush_waiting() -> None:
            """Fold in the events that waited ``batch_max_wait_seconds`` (a quiet stream)."""
            if held and time.monotonic() - held_since[0] >= max_wait:
                flush()

    # -- the batch --------------------------------------------------------------

    def apply(
        self,
        events: Sequence[EventT],
        values: Sequence[DerivedValue],
        *,
        count_unreadable: bool = False,
    ) -> int:
        """Fold a micro-batch (its events and derived values) in; returns the rows built.

        A record that is not a call is skipped; ``count_unreadable`` counts it in
        ``weave_stream_unreadable_records_total`` (the derive agent already does).
        """
        by_call = self.builder.values_by_call(values) if values else {}
        builder = self.builder
        by_partition: dict[int, list[AggregateRow]] = {}
        for event in events:
            message = event.message
            partition = message.partition
            if partition not in self._assigned:
                continue  # revoked mid-batch: its new owner counts these calls
            try:
                call = orjson.loads(message.value or b"")
            except orjson.JSONDecodeError:
                call = None
            if not isinstance(call, dict) or "id" not in call:
                if count_unreadable:
                    log.error(
                        "skipping a record of %s that is not a call: %r",
                        message.topic,
                        message.value,
                    )
                    UNREADABLE_RECORDS.labels("calls.valid").inc()
                continue
            if not builder.selects(call):
                continue
            rows = builder.call_rows(call, by_call.get(call["id"], {}))
            held = by_partition.get(partition)
            if held is None:
                by_partition[partition] = rows
            else:
                held.extend(rows)
        built = 0
        now = time.monotonic()
        for partition, rows in by_partition.items():
            state = self._state(partition)
            with self._writing_to(partition):
                report = state.apply(rows)
            self._last_rows[partition] = now
            built += len(rows)
            self._closed(report.closed)
        return built

    # -- the wall clock -----------------------------------------------------------

    def close_idle(self, now: float) -> int:
        """Close the due windows of partitions idle for :data:`IDLE_SECONDS`; returns how many."""
        if self.app.rebalancing or not self.app.tables.recovery.completed.is_set():  # type: ignore[attr-defined]
            return 0  # tables may be half restored: wait for the rebalance to finish
        closed = 0
        idle_since = time.monotonic() - IDLE_SECONDS
        for partition in sorted(self._assigned):
            if self._last_rows.get(partition, -math.inf) > idle_since:
                continue
            state = self._state(partition)
            if state.bucket_count() == 0 or now < self._next_close(state):
                continue
            with self._writing_to(partition):
                report = state.close_due(now)
            closed += len(report.closed)
            self._closed(report.closed)
        return closed

    def _next_close(self, state: WindowState) -> float:
        """When the next window of ``state`` closes on the clock (windows end on steps)."""
        clock = state.clock
        if clock == -math.inf:
            return -math.inf
        due = math.inf
        for plan in self.plans:
            step, grace = plan.geometry.step, plan.geometry.grace
            due = min(due, (math.floor((clock - grace) / step) + 1) * step + grace)
        return due

    def _closed(self, closed: list[ClosedWindow]) -> None:
        if closed:
            self.gauges.observe(closed)

    # -- partitions -----------------------------------------------------------------

    def _state(self, partition: int) -> WindowState:
        state = self._states.get(partition)
        if state is None:
            started = time.perf_counter()
            state = WindowState(
                self.plans,
                self.table,
                namespace=partition_namespace(partition),
                topology=self.topology.name,
            )
            self._states[partition] = state
            log.info(
                "aggregates of %s[%d]: %d buckets restored in %.3fs",
                self.source_topic,
                partition,
                state.bucket_count(),
                time.perf_counter() - started,
            )
        return state

    @contextlib.contextmanager
    def _writing_to(self, partition: int) -> Iterator[None]:
        event = self._events.get(partition)
        if event is None:
            event = self._events[partition] = _PartitionEvent(self.source_topic, partition)
        token = _current_event.set(cast(Any, weakref.ref(event)))
        try:
            yield
        finally:
            _current_event.reset(token)

    def on_assigned(self, assigned: set[TP]) -> None:
        """Take the worker's whole new assignment (Faust rebalances eagerly)."""
        self._assigned = {tp.partition for tp in assigned if tp.topic == self.source_topic}
        for partition in set(self._states) - self._assigned:
            del self._states[partition]
        # A partition just taken over may hold a backlog: give it time to flow before
        # the wall clock may close its windows (and count that backlog late).
        now = time.monotonic()
        for partition in self._assigned:
            self._last_rows[partition] = max(self._last_rows.get(partition, now), now)

    def on_revoked(self, revoked: set[TP]) -> None:
        """Forget the state of revoked partitions (their next owner restores it)."""
        for tp in revoked:
            if tp.topic == self.source_topic:
                self._assigned.discard(tp.partition)
                self._states.pop(tp.partition, None)
