"""Cost plans: what running a topology over some calls would compute and cost, before it runs.

For each column the plan counts what a run counts (the words of
:mod:`~weave_stream.columns.derive`): the values in scope (*matched*: calls through
the filters and samples, times trials) = *cached* + *deduplicated* (the same input
as another value of the batch) + *to compute* (distinct op evaluations) + *not
computable* (an argument missing); and the ops' own estimates of tokens, dollars
and time for what is to compute. Nothing is computed: the plan walks the same DAG
as :func:`~weave_stream.columns.derive.derive_batch` with
:func:`~weave_stream.columns.derive.survey_batch`, in the same batches. A column
that reads a column not computed yet cannot know its inputs, so all its values
count as to compute (an upper bound, the safe side for a budget).
:func:`run_table` shows a run's counts in the same table.

>>> from weave_stream.ops import CostEstimate
>>> plan = Plan("t", calls=10, matched=8, columns=[
...     ColumnEstimate("n", "n:abc", 8, 3, 5, CostEstimate(100, 0.25, 2.0))])
>>> plan.total.usd, plan.to_compute, plan.over_budget(0.10) is not None
(0.25, 5, True)
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field

from weave_stream.columns.cache import ResultCache
from weave_stream.columns.derive import DeriveStats, Trials, survey_batch
from weave_stream.ingest.call import Call
from weave_stream.ops.base import CostEstimate
from weave_stream.topology.spec import Topology

__all__ = ["ColumnEstimate", "Plan", "plan_topology", "run_table"]


@dataclass(frozen=True)
class ColumnEstimate:
    """The plan of one column."""

    column: str
    op_ref: str
    matched: int  # values in scope: calls through the filters and samples, times trials
    cache_hits: int
    to_compute: int  # distinct op evaluations that would run
    estimate: CostEstimate
    deduplicated: int = 0  # the same input as another value of the batch
    not_computable: int = 0  # an argument missing: the op cannot run


@dataclass(frozen=True)
class Plan:
    """The plan of a topology over some calls."""

    topology: str
    calls: int
    matched: int
    columns: list[ColumnEstimate] = field(default_factory=list)

    @property
    def total(self) -> CostEstimate:
        """The sum of every column's estimate (time as if columns ran one after another)."""
        total = CostEstimate()
        for column in self.columns:
            total = total + column.estimate
        return total

    @property
    def to_compute(self) -> int:
        """Op evaluations that would run, over all columns."""
        return sum(c.to_compute for c in self.columns)

    def over_budget(self, budget_usd: float) -> str | None:
        """Why the plan does not fit ``budget_usd``, or None when it does."""
        usd = self.total.usd
        if usd is None:
            unknown = [c.column for c in self.columns if c.estimate.usd is None]
            return (
                f"the cost of columns {unknown} is unknown (their model has no price), so a "
                f"${budget_usd:g} budget cannot be checked; add the model to the op's prices, "
                "or run without --budget"
            )
        if usd > budget_usd:
            return f"the plan costs an estimated ${usd:.4f}, over the ${budget_usd:g} budget"
        return None

    def render(self) -> str:
        """The plan as a table for a terminal."""
        header = ("column", "op", *_COUNTS[:3], "to compute", _COUNTS[4], "tokens", "USD", "time")
        rows: list[tuple[str, ...]] = [header]
        for c in self.columns:
            counts = (c.matched, c.cache_hits, c.deduplicated, c.to_compute, c.not_computable)
            rows.append((c.column, c.op_ref, *map(str, counts), *_cost(c.estimate)))
        totals = [sum(c[i] for c in (_counts(e) for e in self.columns)) for i in range(5)]
        rows.append(("total", "", *map(str, totals), *_cost(self.total)))
        title = (
            f"Plan for topology {self.topology!r}: {self.calls} calls read, "
            f"{self.matched} match its source."
        )
        return _render(title, rows)


_COUNTS = ("matched", "cached", "deduplicated", "computed", "not computable")


def _counts(c: ColumnEstimate) -> tuple[int, int, int, int, int]:
    return (c.matched, c.cache_hits, c.deduplicated, c.to_compute, c.not_computable)


def run_table(topology: Topology, stats: DeriveStats) -> str:
    """A run's counts, per column, in the plan's table (with errors and dollars spent)."""
    header = ("column", "op", *_COUNTS, "errors", "USD")
    rows: list[tuple[str, ...]] = [header]
    totals = DeriveStats()
    for column in topology.compiled:
        c = stats.column(column.name)
        counts = (c.values, c.cache_hits, c.deduplicated, c.computed, c.not_computable, c.errors)
        rows.append((column.name, column.op.ref, *map(str, counts), f"${c.cost_usd:.4f}"))
        totals.columns[column.name] = c
    spent = sum(c.cost_usd for c in totals.columns.values())
    total_counts = (
        totals.values,
        totals.cache_hits,
        totals.deduplicated,
        totals.computed,
        totals.not_computable,
        totals.errors,
    )
    rows.append(("total", "", *map(str, total_counts), f"${spent:.4f}"))
    title = f"Run of topology {topology.name!r}: {stats.calls} calls read, {stats.matched} match."
    return _render(title, rows)


def _render(title: str, rows: list[tuple[str, ...]]) -> str:
    widths = [max(len(row[i]) for row in rows) for i in range(len(rows[0]))]
    lines = [title, ""]
    for index, row in enumerate(rows):
        cells = [
            cell.ljust(width) if i < 2 else cell.rjust(width)
            for i, (cell, width) in enumerate(zip(row, widths, strict=True))
        ]
        if index == len(rows) - 1:
            lines.append("-" * len("  ".join(cells)))
        lines.append("  ".join(cells).rstrip())
    return "\n".join(lines)


def _cost(estimate: CostEstimate) -> tuple[str, str, str]:
    usd = "unknown" if estimate.usd is None else f"${estimate.usd:.4f}"
    return (f"{estimate.tokens:,}", usd, _duration(estimate.seconds))


def _duration(seconds: float) -> str:
    if seconds < 60:
        return f"{seconds:.1f}s"
    if seconds < 3600:
        return f"{seconds / 60:.1f}min"
    return f"{seconds / 3600:.1f}h"


async def plan_topology(
    topology: Topology,
    batches: Iterable[Sequence[Call]],
    cache: ResultCache,
    *,
    trials: Trials = None,
) -> Plan:
    """Survey ``batches`` of calls (as the runner would cut them) and price what is missing."""
    stats = DeriveStats()
    estimates = {column.name: CostEstimate() for column in topology.compiled}
    for batch in batches:
        await survey_batch(topology, batch, cache, trials=trials, stats=stats)
        for column in topology.compiled:
            column_stats = stats.column(column.name)
            if column_stats.pending_inputs:
                estimates[column.name] += column.op.estimate(column_stats.pending_inputs)
                column_stats.pending_inputs.clear()  # priced: memory stays flat over many batches
    return _plan(topology, stats, estimates)


def _plan(topology: Topology, stats: DeriveStats, estimates: dict[str, CostEstimate]) -> Plan:
    columns = []
    for column in topology.compiled:
        column_stats = stats.column(column.name)
        columns.append(
            ColumnEstimate(
                column=column.name,
                op_ref=column.op.ref,
                matched=column_stats.values,
                cache_hits=column_stats.cache_hits,
                to_compute=column_stats.computed,
                estimate=estimates[column.name],
                deduplicated=column_stats.deduplicated,
                not_computable=column_stats.not_computable,
            )
        )
    return Plan(topology.name, stats.calls, stats.matched, columns)
