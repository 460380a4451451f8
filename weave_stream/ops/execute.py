"""Run any op on many inputs under its policy: batches, a timeout, retries with backoff.

Inputs are cut into batches of ``policy.batch_size`` and run one batch at a time
(an op that can use more parallelism, like the judge, runs its batch
concurrently inside :meth:`Op.run_batch`). Each attempt of a batch is bounded by
``policy.timeout``. After an attempt, only the inputs whose result is a
*retriable* failure are tried again, after the backoff or the op's
``retry_after``, whichever is longer, up to ``policy.retries`` times (the cost of
failed attempts is added to the final result's). Whatever
still fails is returned as a failed :class:`OpResult`: every input gets exactly
one result, never an exception.

A sync function that times out keeps running in its worker thread (Python cannot
stop a thread); its late result is discarded.

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
import dataclasses
import time
from collections.abc import Mapping, Sequence
from typing import Any

from weave_stream.metrics import OP_BATCH_SECONDS, OP_RETRIES
from weave_stream.ops.base import Op, OpResult

__all__ = ["run_op"]


async def run_op(op: Op, inputs: Sequence[Mapping[str, Any]]) -> list[OpResult]:
    """One result per input, in order, after batching, timeouts and retries."""
    policy = op.policy
    results: list[OpResult | None] = [None] * len(inputs)
    for start in range(0, len(inputs), policy.batch_size):
        indexes = list(range(start, min(start + policy.batch_size, len(inputs))))
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
    for attempt in range(policy.retries + 1):
        batch = [inputs[i] for i in pending]
        outcomes = await _attempt(op, batch)
        retry = []
        for index, outcome in zip(pending, outcomes, strict=True):
            cost = outcome.cost
            if index in spent:
                cost = spent[index] + (cost or 0.0)
            results[index] = dataclasses.replace(outcome, attempts=attempt + 1, cost=cost)
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
