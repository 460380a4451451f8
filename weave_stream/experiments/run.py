"""Computing an experiment's cells, pricing them first, or reading only what is cached.

Every cell goes through :func:`~weave_stream.columns.derive.derive_batch`, the same
code, cache keys and rules as the runners: a cell is (op ref, input digest, trial),
so a re-run finds everything computed before and runs only the new cells -- more
trials, a new variant, new examples, or a scorer whose code changed (its ref changed;
the predict op it reads did not, so that op is not run again). Variants run one after
another, so a cell two variants share is computed once.

:func:`plan_experiment` prices the cells that would run (per variant, with each op's
estimate) before anything runs; :func:`run_cells` with ``compute=False`` reads the
cached cells only: a missing cell becomes an error value saying so, and no op runs.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from weave_stream.columns.cache import ResultCache
from weave_stream.columns.derive import DerivedValue, DeriveStats, derive_batch
from weave_stream.columns.plan import Plan, plan_topology
from weave_stream.errors import ConfigError, ExperimentError
from weave_stream.ingest.call import Call
from weave_stream.ops.base import CostEstimate, Op, OpPolicy, OpResult, Signature
from weave_stream.runners.local import batches, calibrated, preflight
from weave_stream.topology.spec import Topology

__all__ = ["NOT_COMPUTED", "ExperimentPlan", "VariantCells", "plan_experiment", "run_cells"]

NOT_COMPUTED = "not computed yet: this cell is not in the result cache (run the experiment)"


@dataclass
class VariantCells:
    """What one variant gave: every derived value, the counts of how it was obtained,
    and the calls its ops made of other ops (``sub_calls``, records of
    :mod:`~weave_stream.columns.subcalls`)."""

    variant: str
    topology: Topology
    values: list[DerivedValue]
    stats: DeriveStats = field(default_factory=DeriveStats)
    sub_calls: list[DerivedValue] = field(default_factory=list)


@dataclass(frozen=True)
class ExperimentPlan:
    """The cost plan of each variant, and their sum.

    A cell two variants share (the same op on the same inputs) is counted in each
    variant's plan but computed once: the total is an upper bound, the safe side for a
    budget.
    """

    experiment: str
    plans: Mapping[str, Plan]

    @property
    def total(self) -> CostEstimate:
        """The sum of every variant's estimate."""
        total = CostEstimate()
        for plan in self.plans.values():
            total = total + plan.total
        return total

    @property
    def to_compute(self) -> int:
        """Cells (op evaluations) that would run, over all variants."""
        return sum(plan.to_compute for plan in self.plans.values())

    def over_budget(self, budget_usd: float) -> str | None:
        """Why the plan does not fit ``budget_usd``, or None when it does."""
        for plan in self.plans.values():
            if plan.total.usd is None:
                return plan.over_budget(budget_usd)
        usd = self.total.usd or 0.0
        if usd > budget_usd:
            return (
                f"experiment {self.experiment!r} costs an estimated ${usd:.4f}, over the "
                f"${budget_usd:g} budget"
            )
        return None

    def render(self) -> str:
        """Each variant's plan table, then the total."""
        parts = [plan.render() for plan in self.plans.values()]
        total = self.total
        usd = "unknown" if total.usd is None else f"${total.usd:.4f}"
        parts.append(
            f"Experiment {self.experiment!r}: {self.to_compute} cells to compute over "
            f"{len(self.plans)} variant(s), {total.tokens:,} tokens, {usd} (a cell shared by "
            "variants is counted in each)."
        )
        return "\n\n".join(parts)


async def plan_experiment(
    experiment: str,
    topologies: Mapping[str, Topology],
    calls: Sequence[Call],
    cache: ResultCache,
    *,
    trials: int | None,
    batch_size: int,
) -> ExperimentPlan:
    """Price the cells each variant would compute; nothing runs."""
    plans = {}
    for variant, topology in topologies.items():
        plans[variant] = await plan_topology(
            calibrated(topology, calls), batches(calls, batch_size), cache, trials=trials
        )
    return ExperimentPlan(experiment, plans)


async def run_cells(
    topologies: Mapping[str, Topology],
    calls: Sequence[Call],
    cache: ResultCache,
    *,
    trials: int | None,
    batch_size: int,
    compute: bool = True,
) -> list[VariantCells]:
    """Every cell of every variant, computed where missing (``compute``) or read from the cache."""
    if compute:
        for variant, topology in topologies.items():
            try:
                preflight(topology)
            except ConfigError as exc:
                raise ExperimentError(f"variant {variant!r}: {exc}") from None
    results = []
    for variant, given in topologies.items():
        topology = calibrated(given, calls)  # calibration: {first_n}: the cells' first calls
        runnable = topology if compute else cached_only(topology)
        stats = DeriveStats()
        values: list[DerivedValue] = []
        sub_calls: list[DerivedValue] = []
        for batch in batches(calls, batch_size):
            values.extend(
                await derive_batch(
                    runnable, batch, cache, trials=trials, stats=stats, sub_calls=sub_calls
                )
            )
        results.append(VariantCells(variant, topology, values, stats, sub_calls))
    return results


def cached_only(topology: Topology) -> Topology:
    """``topology`` with every op replaced by one of the same ref that never computes."""
    columns = [
        dataclasses.replace(column, op=_CachedOnly(topology.column(column.name).op), params={})
        for column in topology.columns
    ]
    return dataclasses.replace(topology, columns=tuple(columns))


class _CachedOnly:
    """An op with another op's identity whose every evaluation is 'not computed'."""

    def __init__(self, inner: Op) -> None:
        self.inner = inner

    @property
    def name(self) -> str:
        return self.inner.name

    @property
    def version(self) -> str:
        return self.inner.version

    @property
    def ref(self) -> str:
        return self.inner.ref

    @property
    def deterministic(self) -> bool:
        return self.inner.deterministic

    @property
    def policy(self) -> OpPolicy:
        return dataclasses.replace(self.inner.policy, retries=0)

    @property
    def signature(self) -> Signature:
        return self.inner.signature

    def estimate(self, inputs: Sequence[Mapping[str, Any]]) -> CostEstimate:
        return CostEstimate()

    async def run_batch(self, inputs: Sequence[Mapping[str, Any]]) -> list[OpResult]:
        return [OpResult.failure(NOT_COMPUTED) for _ in inputs]
