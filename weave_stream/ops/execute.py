"""Run any op on many inputs under its policy: batches, a timeout, retries with backoff.

Inputs are cut into batches of ``policy.batch_size`` and run one batch at a time
(an op that can use more parallelism, like the judge, runs its batch
concurrently inside :meth:`Op.run_batch`; in a run, an op that calls ops runs many
batches at once, so that the sub-calls of all its inputs meet in batches: an async
op all of them, a sync op :data:`SYNC_FAN_OUT` inputs' worth, each input on a thread).
Each attempt of a batch is bounded by ``policy.timeout``. After an attempt, only
the inputs whose result is a *retriable* failure are tried again, after the backoff
or the op's ``retry_after``, whichever is longer, up to ``policy.retries`` times (the
cost of failed attempts is added to the final result's). Whatever still fails is
returned as a failed :class:`OpResult`: every input gets exactly one result, never
an exception.

A sync function that times out keeps running in its worker thread (Python cannot
stop a thread); its late result is discarded.

In a run (see :mod:`weave_stream.ops.nested`), an op that does not frame each input
itself (a batched op, or any other :class:`~weave_stream.ops.base.Op`) runs each
attempt in one frame: the sub-calls its code makes are recorded on the batch's first
result. The sub-calls of failed attempts stay recorded, as their cost does.

>>> import asyncio
>>> from weave_stream.ops.decorator import op
>>> @op(batch_size=2)
... def inverse(x: float) -> float:
...     return 1 / x
>>> [(r.value, r.error) for r in asyncio.run(run_op(inverse, [{"x": 2}, {"x": 0}, {"x": 4}]))]
[(0.5, None), (None, 'ZeroDivisionError: division by zero'), (0.25, None)]
"""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import time
from collections.abc import Iterator, Mapping, Sequence
from typing import Any

from weave_stream.metrics import OP_BATCH_SECONDS, OP_RETRIES
from weave_stream.ops.base import Op, OpResult, SubCall
from weave_stream.ops.nested import CallFrame, current_router, input_frame, with_children

__all__ = ["SYNC_FAN_OUT", "run_op"]

SYNC_FAN_OUT = 256
"""Inputs of a sync op that calls ops running at once in a run (one thread each): its
sub-calls meet in batches of up to this many (64, one parent batch, gave ``embed``
0.71 of its direct throughput), while sub-ops that call ops themselves still find
threads in the 1,024 of :mod:`~weave_stream.ops.nested`'s pool."""


async def run_op(op: Op, inputs: Sequence[Mapping[str, Any]]) -> list[OpResult]:
    """One result per input, in order, after batching, timeouts and retries."""
    policy = op.policy
    results: list[OpResult | None] = [None] * len(inputs)
    batches = [
        list(range(start, min(start + policy.batch_size, len(inputs))))
        for start in range(0, len(inputs), policy.batch_size)
    ]
    if getattr(op, "fans_out", False) and current_router() is not None:
        # An op that calls ops: many batches at once, so that their sub-calls can fill
        # the sub-ops' batches (a parent asks for one item at a time).
        at_once = len(batches)
        if getattr(op, "runs_on_threads", False):
            at_once = max(1, SYNC_FAN_OUT // policy.batch_size)
        slots = asyncio.Semaphore(at_once)

        async def in_a_slot(indexes: list[int]) -> None:
            async with slots:
                await _run_with_retries(op, inputs, indexes, results)

        await asyncio.gather(*(in_a_slot(b) for b in batches))
    for indexes in batches:
        if results[indexes[0]] is None:
            await _run_with_retries(op, inputs, indexes, results)
    missing = [i for i, result in enumerate(results) if result is None]
    if missing:  # a bug in the loop above, never a silent gap
        raise AssertionError(f"op {op.ref}: no result for inputs {missing}")
    return [result for result in results if result is not None]


async def _run_with_retries(
    op: Op,
    inputs: Sequence[Mapping[str, Any]],
    indexes: list[int],
    results: list[OpResult | None],
) -> None:
    policy = op.policy
    pending = indexes
    spent: dict[int, float] = {}  # dollars of failed attempts (a malformed answer still costs)
    earlier: dict[int, tuple[SubCall, ...]] = {}  # sub-calls of failed attempts
    for attempt in range(policy.retries + 1):
        batch = [inputs[i] for i in pending]
        outcomes = await _attempt(op, batch)
        retry = []
        for index, outcome in zip(pending, outcomes, strict=True):
            cost = outcome.cost
            if index in spent:
                cost = spent[index] + (cost or 0.0)
            children = (*earlier.get(index, ()), *outcome.children)
            results[index] = dataclasses.replace(
                outcome, attempts=attempt + 1, cost=cost, children=children
            )
            if children:
                earlier[index] = children
            if cost is not None:
                spent[index] = cost
            if not outcome.ok and outcome.retriable:
                retry.append(index)
        if not retry or attempt == policy.retries:
            return
        waits = [outcomes[pending.index(i)].retry_after or 0.0 for i in retry]
        delay = max(policy.backoff_before(attempt), *waits)
        OP_RETRIES.labels(op.name).inc(len(retry))
        await asyncio.sleep(delay)
        pending = retry


async def _attempt(op: Op, batch: list[Mapping[str, Any]]) -> list[OpResult]:
    with _batch_frame(op, batch) as frame:
        outcomes = await _attempt_in_frame(op, batch)
    if frame is not None and frame.children and outcomes:
        outcomes[0] = with_children(outcomes[0], frame)
    return outcomes


@contextlib.contextmanager
def _batch_frame(op: Op, batch: list[Mapping[str, Any]]) -> Iterator[CallFrame | None]:
    """One frame for the attempt, in a run, unless the op frames each input itself."""
    router = current_router()
    if router is None or getattr(op, "frames_inputs", False) or not batch:
        yield None
        return
    counted = bool(getattr(op, "sub_ops", ()))
    if counted:
        router.enter(1)
    try:
        with input_frame(op, batch[0], counted=counted) as frame:
            yield frame
    finally:
        if counted:
            router.exit(1)


async def _attempt_in_frame(op: Op, batch: list[Mapping[str, Any]]) -> list[OpResult]:
    timeout = op.policy.timeout
    started = time.perf_counter()
    try:
        outcomes = await asyncio.wait_for(op.run_batch(batch), timeout)
    except TimeoutError:
        error = (
            f"op {op.ref} did not finish a batch of {len(batch)} within its "
            f"{timeout:g}s timeout (raise the op's timeout, or lower its batch_size)"
        )
        OP_BATCH_SECONDS.labels(op.name).observe(time.perf_counter() - started)
        return [OpResult.failure(error, retriable=True) for _ in batch]
    except Exception as exc:  # an op broke its contract; the inputs still get results
        error = f"op {op.ref} failed on a batch of {len(batch)}: {type(exc).__name__}: {exc}"
        return [OpResult.failure(error, retriable=True) for _ in batch]
    elapsed = time.perf_counter() - started
    OP_BATCH_SECONDS.labels(op.name).observe(elapsed)
    outcomes = list(outcomes)
    if len(outcomes) != len(batch):
        error = (
            f"op {op.ref} returned {len(outcomes)} results for a batch of {len(batch)}; "
            "run_batch must return one result per input, in order"
        )
        return [OpResult.failure(error) for _ in batch]
    share_ms = elapsed * 1000 / len(batch)
    return [
        outcome
        if outcome.latency_ms is not None
        else dataclasses.replace(outcome, latency_ms=share_ms)
        for outcome in outcomes
    ]
