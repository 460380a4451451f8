"""The batch updater: the windowed aggregates of one topology over one source partition.

:class:`WindowState` keeps, in a ``MutableMapping[str, bytes]`` (a dict, or a Faust
changelog-backed table, so it survives a restart), one bucket per (aggregate, pane,
group) plus the dedupe segments and a small meta record. :meth:`WindowState.apply`
takes a micro-batch of rows and

1. drops identities already counted (:mod:`weave_stream.windows.dedupe`);
2. walks the rows once, in order: each row goes to its pane and group of every
   aggregate, or is counted late if that pane closed (clock >= pane end + grace);
   the clock is the largest event time so far, or the wall clock ``now`` when later;
3. folds each (pane, group) of the batch into its bucket once, writes it once;
4. returns the windows the batch closed, with their final partials, and forgets the
   panes past retention.

Call :meth:`close_due` on a timer with the wall clock so an idle stream still closes
(and emits) its last windows. Event times more than ``max_future_skew`` seconds
ahead of ``now`` count in their pane but do not move the clock.

>>> from weave_stream.topology.aggregates import parse_aggregates
>>> from weave_stream.windows.rows import AggregateRow
>>> specs = parse_aggregates([{"name": "q", "window": "1m", "grace": "0s", "retention": "2m",
...                           "metrics": {"s": ["mean"]}}], "demo")
>>> table: dict = {}
>>> state = WindowState(specs, table)
>>> report = state.apply([AggregateRow("a", 10.0, values={"s": 1.0}),
...                       AggregateRow("b", 70.0, values={"s": 3.0}),
...                       AggregateRow("c", 20.0, values={"s": 5.0}),    # its pane closed at 60
...                       AggregateRow("a", 10.0, values={"s": 1.0})])   # redelivered
>>> report.fresh, report.duplicates, report.late, [w.window_start for w in report.closed]
(3, 1, {'q': 1}, [0])
>>> WindowState(specs, table).snapshot("q").late_rows    # restored from the table
1
"""

from __future__ import annotations

import math
import time
from collections.abc import Callable, Mapping, MutableMapping, Sequence
from dataclasses import dataclass, field
from operator import itemgetter
from typing import Any

import orjson

from weave_stream.errors import QueryError, TopologyError
from weave_stream.metrics import (
    AGGREGATE_BATCH_SECONDS,
    AGGREGATE_BUCKETS,
    AGGREGATE_LATE_ROWS,
    AGGREGATE_ROWS,
)
from weave_stream.topology.aggregates import Aggregate
from weave_stream.windows.bucket import AggregatePlan, Bucket
from weave_stream.windows.dedupe import DEFAULT_CAPACITY, SeenIdentities
from weave_stream.windows.rows import AggregateRow
from weave_stream.windows.snapshot import AggregatePartials, PaneKey

__all__ = ["BatchReport", "ClosedWindow", "WindowState"]

KeyFunction = Callable[[Mapping[str, Any]], tuple[Any, ...]]


@dataclass(frozen=True)
class ClosedWindow:
    """A window whose result is final (in this partition): its partials, merged over its panes."""

    aggregate: str
    window_start: int
    window_end: int
    group: tuple[Any, ...]
    bucket: Bucket


@dataclass
class BatchReport:
    """What one :meth:`WindowState.apply` did."""

    rows: int
    fresh: int
    duplicates: int
    late: dict[str, int]
    closed: list[ClosedWindow] = field(default_factory=list)
    clock: float = -math.inf


class WindowState:
    """Windowed aggregates of a topology over one partition, in a changelog-able mapping."""

    def __init__(
        self,
        specs: Sequence[Aggregate | AggregatePlan],
        table: MutableMapping[str, bytes] | None = None,
        *,
        namespace: str = "",
        topology: str = "",
        dedupe_capacity: int = DEFAULT_CAPACITY,
        max_future_skew: float = 600.0,
        emit_closed: bool = True,
        expire: bool = True,
    ) -> None:
        plans = [s if isinstance(s, AggregatePlan) else AggregatePlan(s) for s in specs]
        self.plans = {plan.name: plan for plan in plans}
        if len(self.plans) != len(plans):
            raise TopologyError(
                f"topology {topology!r}: aggregate names repeat: {[p.name for p in plans]}"
            )
        self.table: MutableMapping[str, bytes] = {} if table is None else table
        self.namespace = namespace
        self.max_future_skew = max_future_skew
        self.emit_closed = emit_closed
        self.expire = expire
        self.seen = SeenIdentities(dedupe_capacity)
        self._buckets: dict[str, dict[PaneKey, Bucket]] = {name: {} for name in self.plans}
        self._keys = {name: _key_function(plan.group_by) for name, plan in self.plans.items()}
        self._canonical: dict[tuple[Any, ...], tuple[Any, ...]] = {}
        self._clock = -math.inf
        self._late = dict.fromkeys(self.plans, 0)
        self._closed_until = dict.fromkeys(self.plans, -math.inf)
        self._oldest_pane = dict.fromkeys(self.plans, math.inf)
        self._duplicates = 0
        self._metric_rows = AGGREGATE_ROWS.labels(topology, "applied")
        self._metric_duplicates = AGGREGATE_ROWS.labels(topology, "duplicate")
        self._metric_late = {n: AGGREGATE_LATE_ROWS.labels(topology, n) for n in self.plans}
        self._metric_buckets = AGGREGATE_BUCKETS.labels(topology)
        self._held = 0
        self._restore()

    # -- reading --------------------------------------------------------------

    @property
    def clock(self) -> float:
        """The event-time watermark, or the latest wall clock passed in when later."""
        return self._clock

    def bucket_count(self) -> int:
        """Buckets held (bounded by retention x groups)."""
        return sum(len(buckets) for buckets in self._buckets.values())

    def snapshot(self, aggregate: str) -> AggregatePartials:
        """This partition's partials of ``aggregate`` (shares buckets: use before next apply)."""
        if aggregate not in self.plans:
            raise QueryError(f"no aggregate {aggregate!r}; this topology has {sorted(self.plans)}")
        clock = None if self._clock == -math.inf else self._clock
        return AggregatePartials(
            aggregate,
            dict(self._buckets[aggregate]),
            self._late[aggregate],
            clock,
            duplicates=self._duplicates,
        )

    # -- the batch updater ----------------------------------------------------

    def close_due(self, now: float) -> BatchReport:
        """Advance the clock to the wall clock ``now``: close, emit and expire what is due."""
        return self.apply((), now=now)

    def apply(self, rows: Sequence[AggregateRow], now: float | None = None) -> BatchReport:
        """Fold a micro-batch of rows in, in order; see the module docstring."""
        started = time.perf_counter()
        fresh, duplicates = self._dedupe(rows)
        clock = self._clock if now is None else max(self._clock, now)
        ceiling = math.inf if now is None else now + self.max_future_skew
        lanes: list[tuple[int, int, KeyFunction, dict[PaneKey, list[AggregateRow]]]] = [
            (plan.geometry.step, plan.geometry.step + plan.geometry.grace, self._keys[name], {})
            for name, plan in self.plans.items()
        ]
        late = [0] * len(lanes)
        for row in fresh:
            event_time = row.event_time
            fields = row.fields
            for index, (step, closes, key_of, groups) in enumerate(lanes):
                pane = int(event_time // step) * step
                if pane + closes <= clock:
                    late[index] += 1
                    continue
                key = (pane, key_of(fields))
                members = groups.get(key)
                if members is None:
                    groups[key] = [row]
                else:
                    members.append(row)
            if clock < event_time <= ceiling:
                clock = event_time
        self._clock = clock
        dirty: list[tuple[str, PaneKey]] = []
        for (name, plan), (_, _, _, groups) in zip(self.plans.items(), lanes, strict=True):
            buckets = self._buckets[name]
            for (pane, raw_group), members in groups.items():
                group = self._canonical_group(raw_group)
                bucket = buckets.get((pane, group))
                if bucket is None:
                    bucket = buckets[(pane, group)] = plan.new_bucket()
                    self._oldest_pane[name] = min(self._oldest_pane[name], pane)
                plan.update(bucket, members, group)
                dirty.append((name, (pane, group)))
        late_by_name = dict(zip(self.plans, late, strict=True))
        report = BatchReport(len(rows), len(fresh), duplicates, late_by_name, clock=clock)
        for name, plan in self.plans.items():
            self._late[name] += late_by_name[name]
            if self.emit_closed:
                report.closed.extend(self._close(plan, clock))
            else:
                self._closed_until[name] = clock - plan.geometry.grace
        removed = self._expire(clock) if self.expire else []
        self._flush(dirty, removed)
        self._count(report, time.perf_counter() - started)
        return report

    def _dedupe(self, rows: Sequence[AggregateRow]) -> tuple[list[AggregateRow], int]:
        fresh, duplicates = self.seen.fresh_rows(rows)
        self._duplicates += duplicates
        return fresh, duplicates

    def _canonical_group(self, raw: tuple[Any, ...]) -> tuple[Any, ...]:
        group = self._canonical.get(raw)
        if group is None:
            group = tuple(v if v is None or v.__class__ is str else _text(v) for v in raw)
            if len(self._canonical) > 100_000:
                self._canonical.clear()
            self._canonical[raw] = group
        return group

    def _close(self, plan: AggregatePlan, clock: float) -> list[ClosedWindow]:
        geometry = plan.geometry
        before, until = self._closed_until[plan.name], clock - geometry.grace
        self._closed_until[plan.name] = max(before, until)
        if until <= before or (
            before > -math.inf and until // geometry.step == before // geometry.step
        ):
            return []
        buckets = self._buckets[plan.name]
        due = sorted(
            {
                (start, group)
                for pane, group in buckets
                if before < pane + geometry.size and pane + geometry.step <= until
                for start in geometry.windows_of_pane(pane)
                if before < start + geometry.size <= until
            },
            key=lambda item: (item[0], _sort_key(item[1])),
        )
        closed = []
        for start, group in due:
            merged = plan.new_bucket()
            for pane in geometry.panes_of_window(start):
                part = buckets.get((pane, group))
                if part is not None:
                    plan.merge(merged, part)
            closed.append(ClosedWindow(plan.name, start, start + geometry.size, group, merged))
        return closed

    def _expire(self, clock: float) -> list[tuple[str, PaneKey]]:
        removed = []
        for name, plan in self.plans.items():
            horizon = clock - plan.geometry.size - plan.geometry.retention
            if self._oldest_pane[name] > horizon:
                continue  # the common case: nothing to forget, no scan
            buckets = self._buckets[name]
            for key in [key for key in buckets if key[0] <= horizon]:
                del buckets[key]
                removed.append((name, key))
            self._oldest_pane[name] = min((pane for pane, _ in buckets), default=math.inf)
        return removed

    # -- persistence ----------------------------------------------------------

    def _bucket_key(self, name: str, key: PaneKey) -> str:
        return f"{self.namespace}b/{name}/{key[0]}/{orjson.dumps(list(key[1])).decode()}"

    def _flush(self, dirty: list[tuple[str, PaneKey]], removed: list[tuple[str, PaneKey]]) -> None:
        # Buckets first, dedupe segment next, meta last: a crash in between can only
        # make a replayed batch count twice, never vanish.
        table = self.table
        for name, key in dirty:
            bucket = self._buckets[name].get(key)
            if bucket is not None:
                table[self._bucket_key(name, key)] = orjson.dumps(self.plans[name].encode(bucket))
        for name, key in removed:
            table.pop(self._bucket_key(name, key), None)
        segment, evicted = self.seen.seal()
        if segment is not None:
            table[f"{self.namespace}s/{segment[0]:012d}"] = segment[1]
        for sequence in evicted:
            table.pop(f"{self.namespace}s/{sequence:012d}", None)
        table[f"{self.namespace}m"] = orjson.dumps(
            {
                "clock": None if self._clock == -math.inf else self._clock,
                "late": self._late,
                "duplicates": self._duplicates,
                "closed_until": {
                    n: None if v == -math.inf else v for n, v in self._closed_until.items()
                },
            }
        )

    def _restore(self) -> None:
        prefix = self.namespace
        segments = []
        for key, value in list(self.table.items()):
            if not key.startswith(prefix):
                continue
            kind, _, rest = key[len(prefix) :].partition("/")
            if kind == "b":
                name, pane, group = rest.split("/", 2)
                if name in self.plans:
                    pane_key = (int(pane), tuple(orjson.loads(group)))
                    self._buckets[name][pane_key] = self.plans[name].decode(orjson.loads(value))
                    self._oldest_pane[name] = min(self._oldest_pane[name], pane_key[0])
            elif kind == "s":
                segments.append((int(rest), bytes(value)))
            elif kind == "m" and not rest:
                meta = orjson.loads(value)
                self._clock = -math.inf if meta["clock"] is None else float(meta["clock"])
                self._duplicates = int(meta.get("duplicates", 0))
                for name in self.plans:
                    self._late[name] = int(meta["late"].get(name, 0))
                    until = meta["closed_until"].get(name)
                    self._closed_until[name] = -math.inf if until is None else float(until)
        self.seen.restore(segments)

    def _count(self, report: BatchReport, seconds: float) -> None:
        if report.fresh:
            self._metric_rows.inc(report.fresh)
        if report.duplicates:
            self._metric_duplicates.inc(report.duplicates)
        for name, count in report.late.items():
            if count:
                self._metric_late[name].inc(count)
        held = self.bucket_count()
        self._metric_buckets.inc(held - self._held)
        self._held = held
        AGGREGATE_BATCH_SECONDS.observe(seconds)


def _key_function(keys: Sequence[str]) -> KeyFunction:
    if not keys:
        return lambda fields: ()
    if len(keys) == 1:
        only = keys[0]
        return lambda fields: (fields.get(only),)
    getter = itemgetter(*keys)

    def key_of(fields: Mapping[str, Any]) -> tuple[Any, ...]:
        try:
            return tuple(getter(fields))
        except KeyError:
            return tuple(map(fields.get, keys))

    return key_of


def _text(value: Any) -> str:
    if value is True or value is False:
        return "true" if value else "false"
    return str(value)


def _sort_key(group: tuple[Any, ...]) -> tuple[str, ...]:
    return tuple("" if v is None else str(v) for v in group)
