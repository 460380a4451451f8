"""Cost before compute, all the way down: plans price the ops a column's op would call.

Each sub-op costs its own estimate times the calls per input the parent declares or
was measured to make; cached parents call nothing and cached sub-steps are free.
"""

from __future__ import annotations

import asyncio
from typing import Any

import pytest

from weave_stream import Column, MemoryCache, Topology, run_local
from weave_stream.columns.plan import Plan, run_table
from weave_stream.ops import CostEstimate, op
from weave_stream.runners.local import plan_local

T0 = 1_795_662_000
PER_CALL = CostEstimate(tokens=10, usd=0.01, seconds=0.1)


def calls(count: int) -> list[dict[str, Any]]:
    return [
        {"id": f"c{i}", "started_at": T0 + i, "inputs": {"document": f"doc {i}"}}
        for i in range(count)
    ]


def make_costly(tag: str = "") -> Any:
    @op(name="costly", cost=PER_CALL)
    def costly(text: str) -> str:
        return text + tag

    return costly


def make_parent(costly: Any, times: int = 1, **options: Any) -> Any:
    @op(name="summarise", **options)
    async def summarise(document: str) -> str:
        parts = [await costly.acall(text=f"{document} #{k}") for k in range(times)]
        return "".join(parts)

    return summarise


def make_edited_parent(costly: Any, times: int) -> Any:
    """The parent above with a change of code: a new version of the same op name."""

    @op(name="summarise")
    async def summarise(document: str) -> str:
        parts = [await costly.acall(text=f"{document} #{k}") for k in range(times)]
        return "".join(parts) + "!"

    return summarise


def plan(parent: Any, count: int, cache: MemoryCache) -> Plan:
    topology = Topology("t", [Column("s", parent, args={"document": "inputs.document"})])
    return asyncio.run(plan_local(topology, calls(count), cache))[0]


def run(parent: Any, count: int, cache: MemoryCache) -> None:
    topology = Topology("t", [Column("s", parent, args={"document": "inputs.document"})])
    run_local(topology, calls(count), cache)


def test_a_fresh_plan_prices_one_call_of_each_sub_op_per_input() -> None:
    costly = make_costly()
    result = plan(make_parent(costly), 20, MemoryCache())
    (column,) = result.columns
    (step,) = column.sub_steps
    assert (step.op_ref, step.calls, step.cache_hits, step.to_compute) == (costly.ref, 20, 0, 20)
    assert step.estimate.usd == pytest.approx(0.2) and not step.measured
    assert result.total.usd == pytest.approx(0.2) and result.total.tokens == 200
    assert result.over_budget(0.1) is not None
    assert any(
        line.split()[:3] == ["calls", costly.ref, "20"] for line in result.render().splitlines()
    )


def test_declared_calls_per_input_multiply_the_price() -> None:
    costly = make_costly()
    (step,) = plan(make_parent(costly, calls={costly: 3}), 20, MemoryCache()).columns[0].sub_steps
    assert (step.calls, step.to_compute) == (60, 60)
    assert step.estimate.usd == pytest.approx(0.6)


def test_cached_parents_and_cached_sub_steps_are_free() -> None:
    costly, cache = make_costly(), MemoryCache()
    run(make_parent(costly, times=2), 10, cache)
    again = plan(make_parent(costly, times=2), 10, cache)
    assert again.to_compute == 0 and again.columns[0].sub_steps == ()
    # A new version of the parent: the parents compute again, their sub-calls were noted
    # when the old version ran and are in the cache: free.
    (step,) = plan(make_edited_parent(costly, times=2), 10, cache).columns[0].sub_steps
    assert (step.calls, step.cache_hits, step.to_compute) == (20, 20, 0)
    assert step.estimate.usd == 0 and step.measured


def test_counts_measured_on_noted_inputs_price_the_others() -> None:
    costly, cache = make_costly(), MemoryCache()
    run(make_parent(costly, times=2), 10, cache)
    # 10 inputs noted (2 cached calls each); 10 new ones priced at the measured 2 a piece.
    (step,) = plan(make_edited_parent(costly, times=2), 20, cache).columns[0].sub_steps
    assert (step.calls, step.cache_hits, step.to_compute) == (40, 20, 20)
    assert step.estimate.usd == pytest.approx(0.2)


def test_a_changed_sub_op_is_priced_again() -> None:
    cache, costly = MemoryCache(), make_costly()
    run(make_parent(costly), 10, cache)
    edited = op(name="costly", cost=PER_CALL)(lambda text: text + "?")  # new code
    (step,) = plan(make_parent(edited), 10, cache).columns[0].sub_steps
    assert step.op_ref == edited.ref != costly.ref
    assert (step.calls, step.cache_hits, step.to_compute) == (10, 0, 10)
    assert step.estimate.usd == pytest.approx(0.1)


def test_a_runs_table_shows_what_the_ops_called() -> None:
    costly, cache = make_costly(), MemoryCache()
    parent = make_parent(costly)
    topology = Topology("t", [Column("s", parent, args={"document": "inputs.document"})])
    table = run_local(topology, calls(10), cache)
    lines = run_table(topology, table.stats).splitlines()
    rows = {line.split()[1]: line.split()[2:] for line in lines if line.startswith("  calls")}
    assert rows == {costly.ref: ["10", "0", "0", "10", "0", "0", "$0.0000"]}
    again = run_local(topology, calls(4), cache)
    assert "  calls" not in run_table(topology, again.stats)  # cached parents call nothing
