"""Aggregates in-process: a topology's aggregates over its calls and values, in one go.

It runs the same :class:`~weave_stream.windows.state.WindowState` the streaming
runner runs per partition, over an in-memory table, and returns the same snapshots
and tables the query API returns. Two differences suit a backfill over a file:

* rows are sorted by event time first (``sort=True``), so no row is late however the
  file is ordered; with ``sort=False`` they are taken in file order and a row older
  than the clock minus the grace period counts as late, as on a stream;
* no window is forgotten (``expire=False``): a file's old windows are what was asked for.

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

from weave_stream.aggregates.compose import aggregate_table
from weave_stream.aggregates.rows import RowBuilder
from weave_stream.aggregates.source import aggregate_plans
from weave_stream.aggregates.table import AggregateTable
from weave_stream.columns.derive import DerivedValue
from weave_stream.ingest.call import Call
from weave_stream.topology.aggregates import Aggregate
from weave_stream.topology.spec import Topology
from weave_stream.windows.bucket import AggregatePlan
from weave_stream.windows.rows import AggregateRow
from weave_stream.windows.snapshot import AggregatePartials
from weave_stream.windows.state import WindowState

__all__ = ["aggregate_rows", "compute_aggregates", "topology_aggregates"]


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


def topology_aggregates(
    topology: Topology, calls: Iterable[Call | Mapping[str, Any]], values: Iterable[DerivedValue]
) -> tuple[list[AggregatePlan], dict[str, AggregatePartials]]:
    """The plans of ``topology``'s aggregates and a snapshot of each over ``calls`` and ``values``.

    What the local runner, ``ResultTable.aggregates`` and ``weave-stream aggregates
    --input`` compute; feed the result to :func:`~weave_stream.aggregates.queries.query_tables`.
    """
    plans = aggregate_plans(topology)  # each drill-down knows which end is worst
    rows = RowBuilder(topology, topology.aggregates).rows(calls, values)
    return plans, aggregate_rows(plans, rows, topology=topology.name)


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
