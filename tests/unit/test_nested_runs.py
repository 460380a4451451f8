"""Ops that call ops, in a run: sub-calls through the cache, batched across parents,
recorded as the children of the outer call, failures as the parent's error value.

The sub-ops here count what they are asked (the batches they see), so every figure
below is what ran, not what the scheduler says it did.
"""

from __future__ import annotations

import asyncio
import math
from collections.abc import Iterator
from typing import Any

import pytest

from weave_stream import Column, MemoryCache, Topology, run_local
from weave_stream.columns import subcalls
from weave_stream.errors import OpError, SubCallError
from weave_stream.ops import OpResult, op

T0 = 1_795_662_000


def calls(count: int, text: str = "doc {i}") -> list[dict[str, Any]]:
    return [
        {"id": f"c{i}", "started_at": T0 + i, "inputs": {"document": text.format(i=i)}}
        for i in range(count)
    ]


class Shout:
    """A batched sub-op that records the batch sizes it is given."""

    def __init__(self, batch_size: int = 64) -> None:
        self.batches: list[int] = []

        @op(name="shout", batched=True, batch_size=batch_size)
        def shout(text: list[str]) -> list[OpResult]:
            self.batches.append(len(text))
            return [OpResult(value=t.upper(), cost=0.001) for t in text]

        self.op = shout


@pytest.fixture
def shout() -> Shout:
    return Shout()


@pytest.fixture
def deterministic_flushes(monkeypatch: pytest.MonkeyPatch) -> Iterator[None]:
    # Batches then close only when full or when every parent waits (never on a timer),
    # so their sizes do not depend on how fast this loaded machine runs threads.
    monkeypatch.setattr(subcalls, "SUB_CALL_MAX_WAIT", 60.0)
    monkeypatch.setattr(subcalls, "SUB_CALL_THREAD_WAIT", 60.0)
    yield


def column(parent: Any) -> Topology:
    return Topology("t", [Column("s", parent, args={"document": "inputs.document"})])


def summariser(sub: Any, kind: str) -> Any:
    """A parent op calling ``sub`` once per input, written ``async`` or ``sync``."""
    if kind == "async":

        @op(name="summarise")
        async def summarise(document: str) -> str:
            return str(await sub.acall(text=document))[:5]

        return summarise

    @op(name="summarise")
    def summarise_sync(document: str) -> str:
        return str(sub.call(text=document))[:5]

    return summarise_sync


@pytest.mark.usefixtures("deterministic_flushes")
@pytest.mark.parametrize("kind", ["async", "sync"])
def test_parents_beyond_their_own_batch_fill_a_larger_sub_op_batch(kind: str) -> None:
    """A sub-op with batches of 256 (``embed``'s on a CPU) under parents with batches of 64:
    200 parents make one batch of 200, sync ones too (they run 256 at a time on threads;
    64 at a time gave ``embed`` batches of 64 and 0.71 of its direct throughput)."""
    shout = Shout(batch_size=256)
    table = run_local(column(summariser(shout.op, kind)), calls(200), batch_size=200)
    assert table.to_pandas()["s"].tolist()[:2] == ["DOC 0", "DOC 1"]
    assert shout.batches == [200]


@pytest.mark.usefixtures("deterministic_flushes")
@pytest.mark.parametrize("kind", ["async", "sync"])
def test_parallel_parents_share_full_batches_of_the_sub_op(shout: Shout, kind: str) -> None:
    sub = shout.op
    table = run_local(column(summariser(sub, kind)), calls(200), batch_size=200)
    assert table.to_pandas()["s"].tolist()[:2] == ["DOC 0", "DOC 1"]
    # 200 parents, one request each: full batches of the sub-op's 64, not 200 calls.
    assert sum(shout.batches) == 200
    assert len(shout.batches) == math.ceil(200 / 64)
    assert sorted(shout.batches, reverse=True)[:3] == [64, 64, 64]
    stats = table.stats.sub_ops[sub.ref]
    assert stats.computed == 200 and stats.batches == shout.batches
    assert stats.lookups == shout.batches  # one cache lookup per batch


@pytest.mark.usefixtures("deterministic_flushes")
def test_a_second_run_computes_no_sub_call(shout: Shout) -> None:
    sub = shout.op

    @op(name="summarise")
    async def summarise(document: str) -> str:
        return str(await sub.acall(text=document))

    @op(name="summarise")
    async def summarise_edited(document: str) -> str:
        return str(await sub.acall(text=document)) + "!"

    cache = MemoryCache()
    first = run_local(column(summarise), calls(50), cache)
    assert first.stats.sub_ops[sub.ref].computed == 50 and sum(shout.batches) == 50
    shout.batches.clear()
    again = run_local(column(summarise), calls(50), cache)
    assert again.stats.computed == 0 and again.stats.sub_ops == {} and shout.batches == []
    # A new version of the parent computes again, but its sub-calls come from the cache.
    edited = run_local(column(summarise_edited), calls(50), cache)
    assert edited.stats.computed == 50 and shout.batches == []
    stats = edited.stats.sub_ops[sub.ref]
    assert (stats.calls, stats.cache_hits, stats.computed) == (50, 50, 0)
    assert all(sub_call.cached for sub_call in edited.sub_calls)


def test_identical_sub_calls_of_a_run_are_computed_once(shout: Shout) -> None:
    sub = shout.op

    @op(name="summarise")
    async def summarise(document: str) -> str:
        first = await sub.acall(text="same for all")
        return str(first) + str(await sub.acall(text="same for all"))

    table = run_local(column(summarise), calls(30))
    assert shout.batches == [1]
    stats = table.stats.sub_ops[sub.ref]
    assert (stats.calls, stats.computed, stats.shared) == (60, 1, 59)


def test_a_sub_op_failure_is_the_parents_error_with_the_sub_call_recorded() -> None:
    @op(name="fragile", retries=0)
    def fragile(text: str) -> str:
        if "bad" in text:
            raise ValueError(f"cannot read {text!r}")
        return text

    @op(name="summarise")
    def summarise(document: str) -> str:
        return str(fragile(document))

    table = run_local(column(summarise), calls(3, text="{i} bad") + calls(1))
    frame = table.to_pandas()
    errors = frame["s.error"].tolist()
    assert errors[0] == (f"SubCallError: op {fragile.ref} failed: ValueError: cannot read '0 bad'")
    assert frame["s.sub_calls"].tolist() == [1, 1, 1]
    failed = [sub for sub in table.sub_calls if sub.call_id == "c0"]
    assert [(s.op_ref, s.parent_ref, s.position) for s in failed] == [
        (fragile.ref, summarise.ref, "0")
    ]
    assert failed[0].error == "ValueError: cannot read '0 bad'" and failed[0].value is None


def test_the_tree_of_calls_is_in_the_result_table() -> None:
    @op(name="leaf", batched=True)
    def leaf(text: list[str]) -> list[OpResult]:
        return [OpResult(value=len(t), cost=0.5) for t in text]

    @op(name="middle")
    async def middle(text: str) -> int:
        return int(await leaf.acall(text=text)) + int(await leaf.acall(text=text + "!"))

    @op(name="top")
    async def top(document: str) -> int:
        return int(await middle.acall(text=document)) * 10 + int(await leaf.acall(text=document))

    table = run_local(column(top), calls(2))
    assert table.to_pandas()["s"].tolist() == [(5 + 6) * 10 + 5] * 2
    frame = table.sub_calls_frame()
    mine = frame[frame["call_id"] == "c0"].sort_values("position")
    assert mine[["position", "parent_ref", "op_ref"]].values.tolist() == [
        ["0", top.ref, middle.ref],
        ["0.0", middle.ref, leaf.ref],
        ["0.1", middle.ref, leaf.ref],
        ["1", top.ref, leaf.ref],
    ]
    # c0's third leaf call has the input of its first: served, not computed again.
    assert mine["cached"].tolist() == [False, False, False, True]
    tree = table.tree("c0").splitlines()
    assert tree[0].startswith(f"s: {top.ref}")
    assert tree[1].strip().startswith(f"└─ {middle.ref}")
    assert tree[2].startswith("        └─ " + leaf.ref) and "$0.500000" in tree[2]
    assert tree[4].strip().startswith(f"└─ {leaf.ref}  cached")
    # What the sub-calls computed counts in the column's cost: 2 distinct leaf inputs
    # per call ("doc 0", "doc 0!"), the two calls' inputs distinct, $0.5 each.
    assert table.stats.columns["s"].cost_usd == pytest.approx(2 * 2 * 0.5)


def test_a_sync_op_called_plainly_from_async_code_runs_inline_and_says_so(
    caplog: pytest.LogCaptureFixture,
) -> None:
    @op(name="words")
    def words(text: str) -> int:
        return len(text.split())

    @op(name="summarise")
    async def summarise(document: str) -> int:
        await asyncio.sleep(0)
        return int(words(document))  # natural code: cannot wait for a batch on the loop

    with caplog.at_level("WARNING", logger="weave_stream.columns.subcalls"):
        table = run_local(column(summarise), calls(3, text="two words {i}"))
    assert table.to_pandas()["s"].tolist() == [3, 3, 3]
    assert [sub.details for sub in table.sub_calls] == [{"inline": True}] * 3
    assert sum("await words.acall" in r.getMessage() for r in caplog.records) == 1


def test_non_deterministic_sub_ops_take_the_parents_trial() -> None:
    seen: list[int] = []

    @op(name="sample", deterministic=False)
    def sample(text: str) -> int:
        seen.append(1)
        return len(seen)

    @op(name="vote", deterministic=False)
    def vote(document: str) -> int:
        return int(sample(document))

    table = run_local(column(vote), calls(1), trials=3)
    assert len(seen) == 3  # one sub-call per trial, each its own cache key
    assert sorted(sub.trial for sub in table.sub_calls) == [0, 1, 2]


def test_outside_a_run_calling_an_op_stays_a_plain_call(shout: Shout) -> None:
    @op
    def summarise(document: str) -> str:
        return str(shout.op.call(text=document))

    assert summarise("hi") == "HI"  # a plain call, and .call() runs the sub-op alone
    assert shout.op(text=["a", "b"])[0].value == "A"  # a batched op's plain call, as ever
    assert asyncio.run(shout.op.acall(text="x")) == "X"

    async def from_async_code() -> Any:
        return shout.op.call(text="x")

    with pytest.raises(OpError, match=r"await shout\.acall"):
        asyncio.run(from_async_code())
    with pytest.raises(SubCallError, match="failed"):
        op(retries=0)(lambda text: 1 / 0).call(text="x")


def test_a_batched_parent_records_its_sub_calls_on_the_first_input(shout: Shout) -> None:
    sub = shout.op

    @op(name="bulk", batched=True)
    async def bulk(document: list[str]) -> list[str]:
        return [str(await sub.acall(text=d)) for d in document]

    table = run_local(column(bulk), calls(3))
    assert table.to_pandas()["s"].tolist() == ["DOC 0", "DOC 1", "DOC 2"]
    assert {sub.call_id for sub in table.sub_calls} == {"c0"}
    assert len(table.sub_calls) == 3


def test_the_stream_keeps_sub_call_results_with_their_call(shout: Shout) -> None:
    from weave_stream.columns.cache import CacheKey
    from weave_stream.runners.streaming.topology_app import _new_results

    sub = shout.op

    @op(name="summarise")
    async def summarise(document: str) -> str:
        return str(await sub.acall(text=document))

    table = run_local(column(summarise), calls(2))
    fresh = _new_results([*table.values, *table.sub_calls], {})
    (child,) = [s for s in table.sub_calls if s.call_id == "c0"]
    key = CacheKey(sub.ref, child.input_digest or "", 0).encode()
    assert key in fresh["c0"]  # a redelivered call finds what its sub-calls computed


def test_a_run_checks_the_configuration_of_the_ops_an_op_calls(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    from weave_stream import Judge, load_settings
    from weave_stream.errors import ConfigError

    monkeypatch.delenv("OPENAI_BASE_URL", raising=False)
    judge = Judge(prompt="Faithful? {document}", model="m", settings=load_settings(env={}))

    @op(name="summarise")
    async def summarise(document: str) -> Any:
        return await judge.acall(document=document)

    with pytest.raises(ConfigError, match="column 's', op 'judge' it calls: the judge has no"):
        run_local(column(summarise), calls(1))


def test_a_parent_that_times_out_leaves_no_thread_waiting_on_its_sub_call() -> None:
    import threading

    finished = threading.Event()

    @op(name="slow")
    async def slow(text: str) -> str:
        await asyncio.sleep(30)
        return text

    @op(name="impatient", timeout=0.3, retries=0)
    def impatient(document: str) -> str:
        try:
            return str(slow.call(text=document))
        finally:
            finished.set()

    table = run_local(column(impatient), calls(1))
    assert "did not finish a batch of 1 within its 0.3s timeout" in str(table.values[0].error)
    # The run ended its scheduler: the sub-call was answered, the thread went on.
    assert finished.wait(timeout=30)


@pytest.mark.usefixtures("deterministic_flushes")
def test_the_judge_called_from_an_op_gets_batches_as_big_as_its_concurrency_allows() -> None:
    from tests.support.servers.openai import FakeOpenAI
    from weave_stream import Judge

    with FakeOpenAI() as server:
        judge = Judge(
            prompt="Faithful? {document}", model="gpt-4o-mini", base_url=server.base_url,
            concurrency=4,
        )  # fmt: skip

        @op(name="summarise")
        async def summarise(document: str) -> float:
            verdict = await judge.acall(document=document)
            return float(verdict["score"])

        table = run_local(column(summarise), calls(40), batch_size=40)
        requests, peak = len(server.requests), server.max_in_flight
    assert table.stats.columns["s"].errors == 0 and requests == 40 and peak <= 4
    stats = table.stats.sub_ops[judge.ref]
    assert stats.batches == [16, 16, 8]  # the judge's batch: 4 x its concurrency
    assert stats.cost_usd > 0
    assert table.stats.columns["s"].cost_usd == pytest.approx(stats.cost_usd)
