"""Aggregates in-process: a topology's aggregates over its calls and values, in one go.

It runs the same :class:`~weave_stream.windows.state.WindowState` the streaming
runner runs per partition, over an in-memory table, and returns the same snapshots
and tables the query API returns. Two differences suit a backfill over a file:

* rows are sorted by event time first (``sort=True``), so no row is late however the
  file is ordered; with ``sort=False`` they are taken in file order and a row older
  than the clock minus the grace period counts as late, as on a stream;
* no window is forgotten (``expire=False``): a file's old windows are what was asked for.

:func:`streamed_aggregate_rows` answers as the stream does instead: rows in arrival
(file) order, split by the source partition the call's key lands on, each partition
with its own clock, moved by the event times it saw and by the wall clock when each
call arrived (a call is sent when it ends: ``ended_at``), so a call older than its
partition's clock minus the grace period is late and left out, as on a stream.

>>> from weave_stream.windows.rows import AggregateRow
>>> from weave_stream.topology.aggregates import parse_aggregates
>>> specs = parse_aggregates([{"name": "q", "window": "1m", "metrics": {"s": ["sum"]}}], "t")
>>> tables = compute_aggregates(specs, [AggregateRow("a", 5.0, values={"s": 2}),
...                                     AggregateRow("b", 65.0, values={"s": 3})])
>>> tables["q"].frame["s.sum"].tolist()
[2.0, 3.0]
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from typing import Any

from aiokafka.partitioner import murmur2

from weave_stream.aggregates.compose import aggregate_table
from weave_stream.aggregates.rows import RowBuilder
from weave_stream.aggregates.source import aggregate_plans
from weave_stream.aggregates.table import AggregateTable
from weave_stream.columns.derive import DerivedValue
from weave_stream.ingest.call import Call, parse_timestamp
from weave_stream.topology.aggregates import Aggregate
from weave_stream.topology.spec import Topology
from weave_stream.windows.bucket import AggregatePlan
from weave_stream.windows.rows import AggregateRow
from weave_stream.windows.snapshot import AggregatePartials
from weave_stream.windows.state import WindowState

__all__ = [
    "aggregate_rows",
    "compute_aggregates",
    "source_partition",
    "streamed_aggregate_rows",
    "topology_aggregates",
]


def aggregate_rows(
    specs: Sequence[Aggregate | AggregatePlan],
    rows: Iterable[AggregateRow],
    *,
    sort: bool = True,
    expire: bool = False,
    batch_size: int = 10_000,
    topology: str = "local",
) -> dict[str, AggregatePartials]:
    """A snapshot per aggregate of ``specs`` over ``rows`` (feed them to the query functions)."""
    ordered = sorted(rows, key=lambda row: row.event_time) if sort else list(rows)
    state = WindowState(specs, {}, topology=topology, emit_closed=False, expire=expire)
    for start in range(0, len(ordered), batch_size):
        state.apply(ordered[start : start + batch_size])
    return {name: state.snapshot(name) for name in state.plans}


def source_partition(call_id: str, partitions: int) -> int:
    """The partition a call keyed by its id lands on: Kafka's default partitioner (murmur2),
    which producers use and ingest keeps (a call is forwarded to the partition it came on).

    >>> source_partition("c1", 4), source_partition("c2", 4)
    (3, 1)
    """
    return (murmur2(call_id.encode()) & 0x7FFFFFFF) % partitions


def streamed_aggregate_rows(
    specs: Sequence[Aggregate | AggregatePlan],
    rows: Iterable[AggregateRow],
    *,
    partitions: int,
    arrivals: Mapping[str, float] | None = None,
    topology: str = "local",
) -> dict[str, list[AggregatePartials]]:
    """Per aggregate of ``specs``, a snapshot per source partition of ``rows`` taken in
    order, as the stream takes them (see the module docstring); ``arrivals`` gives the
    wall clock at which each call id arrived (none: event times alone move the clocks).

    >>> from weave_stream.topology.aggregates import parse_aggregates
    >>> specs = parse_aggregates([{"name": "q", "window": "1m", "grace": "0s",
    ...                            "metrics": {"s": ["sum"]}}], "t")
    >>> rows = [AggregateRow("a", 70.0, values={"s": 1}), AggregateRow("a2", 75.0, values={"s": 1}),
    ...         AggregateRow("b", 10.0, values={"s": 2})]   # arrives after its pane closed
    >>> [s.late_rows for s in streamed_aggregate_rows(specs, rows, partitions=1)["q"]]
    [1]
    >>> aggregate_rows(specs, rows)["q"].late_rows   # sorted by event time: never late
    0
    """
    states: dict[int, WindowState] = {}
    for row in rows:
        partition = source_partition(row.call_id, partitions)
        state = states.get(partition)
        if state is None:
            state = states[partition] = WindowState(
                specs, {}, topology=topology, emit_closed=False, expire=False
            )
        state.apply([row], now=(arrivals or {}).get(row.call_id))
    names = [spec.name for spec in specs]
    return {name: [state.snapshot(name) for state in states.values()] for name in names}


def topology_aggregates(
    topology: Topology,
    calls: Iterable[Call | Mapping[str, Any]],
    values: Iterable[DerivedValue],
    *,
    as_streamed: int | None = None,
) -> tuple[list[AggregatePlan], dict[str, AggregatePartials | list[AggregatePartials]]]:
    """The plans of ``topology``'s aggregates and a snapshot of each over ``calls`` and ``values``.

    What the local runner, ``ResultTable.aggregates`` and ``weave-stream aggregates
    --input`` compute; feed the result to :func:`~weave_stream.aggregates.queries.query_tables`.
    With ``as_streamed`` (the number of source partitions) the calls are taken in their
    order, as the stream takes them (:func:`streamed_aggregate_rows`), not by event time.
    """
    plans = aggregate_plans(topology)  # each drill-down knows which end is worst
    calls = list(calls)
    rows = RowBuilder(topology, topology.aggregates).rows(calls, values)
    if as_streamed is None:
        return plans, dict(aggregate_rows(plans, rows, topology=topology.name))
    arrivals = {}
    for call in calls:
        if isinstance(call, Call):
            call_id, arrived = call.id, call.ended_at or call.started_at
        else:
            call_id, moment = str(call["id"]), call.get("ended_at") or call.get("started_at")
            arrived = None if moment is None else parse_timestamp(moment)
        if arrived is not None:
            arrivals[call_id] = arrived.timestamp()
    streamed = streamed_aggregate_rows(
        plans, rows, partitions=as_streamed, arrivals=arrivals, topology=topology.name
    )
    return plans, dict(streamed)


def compute_aggregates(
    specs: Sequence[Aggregate],
    rows: Iterable[AggregateRow],
    *,
    by: Sequence[str] | None = None,
    since: str | float | None = None,
    now: Any = None,
    sort: bool = True,
) -> dict[str, AggregateTable]:
    """Every aggregate's table over ``rows``, as ``weave-stream aggregates`` shows it.

    ``by`` re-groups every aggregate on those keys (each must group by them).
    """
    plans = [AggregatePlan(spec) for spec in specs]
    snapshots = aggregate_rows(plans, rows, sort=sort)
    return {
        plan.name: aggregate_table(plan, snapshots[plan.name], by=by, since=since, now=now)
        for plan in plans
    }
