"""The sub-call scheduler: ops called from ops, through the cache, batched across parents.

One scheduler serves one run of :func:`~weave_stream.columns.derive.derive_batch`.
When an op's code calls an op (see :mod:`weave_stream.ops.nested`), the call is a
request keyed like any value, ``(sub-op ref, input digest, trial)`` (the parent's
trial for a non-deterministic sub-op, 0 for a deterministic one). Requests wait in a
queue per sub-op, in the DataLoader style, and the queue *flushes*:

* when it holds ``batch_size`` requests of the sub-op's policy (full);
* when every parent that may still make a request is blocked on one: with nothing
  left to come, waiting longer gains nothing (for async parents this is the end of
  the event-loop tick in which they all made their request);
* at the latest ``max_wait`` after its first request (a parent busy with something
  else must not hold the others back for long), or ``thread_wait`` while a sync
  parent, which runs on a thread of its own, is still on its way: a thread the OS has
  not run yet is not busy, and on a loaded machine waking 64 threads takes longer
  than 5 ms (measured: batches of 64 fell apart into 1 to 60 at 5 ms, stayed 64 at 50).

A flush reads the cache for the whole batch in one lookup, computes the misses in
one :func:`~weave_stream.ops.execute.run_op` (the sub-op's timeout, retries and
batching apply; one batch of an op at a time, while the next one fills), stores the
successes, and answers every waiting parent. The same
request made twice in a run is computed once. Each answer is recorded in the
calling frame as a :class:`~weave_stream.ops.base.SubCall`.

>>> SubOpStats(calls=3, cache_hits=1, shared=1, computed=1).batches
[]
"""

from __future__ import annotations

import asyncio
import contextlib
import contextvars
import logging
import time
from collections.abc import Callable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from weave_stream.columns.cache import CachedValue, CacheKey, ResultCache, cache_key
from weave_stream.metrics import SUB_CALL_BATCH_SIZE, SUB_CALLS
from weave_stream.ops.base import CostEstimate, OpResult, SubCall
from weave_stream.ops.execute import run_op
from weave_stream.ops.nested import CallFrame, routing

__all__ = [
    "SUB_CALL_MAX_WAIT",
    "SUB_CALL_THREAD_WAIT",
    "SubCallScheduler",
    "SubOpStats",
    "call_index",
    "calls_key",
    "flatten",
    "spent_usd",
]

log = logging.getLogger(__name__)

SUB_CALL_MAX_WAIT = 0.005  # seconds a request waits at most for others to join its batch
SUB_CALL_THREAD_WAIT = 0.05  # ... while parents on threads are running
_ENDED = (
    "the run ended before this sub-call was answered (its parent had timed out); "
    "raise the parent op's timeout"
)


@dataclass
class SubOpStats:
    """What happened to the sub-calls of one op (by ref) in one or more runs."""

    calls: int = 0  # sub-calls made
    cache_hits: int = 0  # answered by the result cache
    shared: int = 0  # answered by an identical sub-call of the same run
    computed: int = 0  # distinct evaluations run
    errors: int = 0  # sub-calls answered with an error
    cost_usd: float = 0.0  # dollars of the evaluations run
    lookups: list[int] = field(default_factory=list)  # keys per cache lookup
    batches: list[int] = field(default_factory=list)  # inputs per batch computed


@dataclass(frozen=True)
class _Answer:
    result: OpResult
    cached: bool
    estimate: CostEstimate | None


@dataclass(eq=False)
class _Request:
    op: Any
    key: CacheKey
    arguments: dict[str, Any]
    future: asyncio.Future[_Answer]
    frames: list[CallFrame] = field(default_factory=list)


@dataclass(eq=False)
class _Queue:
    op: Any
    requests: dict[CacheKey, _Request] = field(default_factory=dict)
    timer: asyncio.TimerHandle | None = None


class SubCallScheduler:
    """The :class:`~weave_stream.ops.nested.SubCallRouter` of a run (use :meth:`open`)."""

    def __init__(
        self,
        cache: ResultCache,
        stats: dict[str, SubOpStats] | None = None,
        *,
        max_wait: float | None = None,
        thread_wait: float | None = None,
    ) -> None:
        self.cache = cache
        self.stats = stats if stats is not None else {}
        self.max_wait = SUB_CALL_MAX_WAIT if max_wait is None else max_wait
        self.thread_wait = SUB_CALL_THREAD_WAIT if thread_wait is None else thread_wait
        self._loop = asyncio.get_running_loop()
        self._context = contextvars.copy_context()
        self._queues: dict[str, _Queue] = {}
        self._open: dict[CacheKey, _Request] = {}  # queued or being computed
        self._answers: dict[CacheKey, _Answer] = {}  # every answer of this run
        self._trials: dict[int, tuple[Mapping[str, Any], int]] = {}
        self._refs: dict[int, str] = {}
        self._tasks: set[asyncio.Task[None]] = set()
        self._active = 0  # counted frames running (ops known to call ops)
        self._threads = 0  # ... of them on threads
        self._waiting = 0  # counted frames blocked on a sub-call
        self._flush_scheduled = False
        self._inline_warned: set[str] = set()
        self._closed = False
        self._locks: dict[str, asyncio.Lock] = {}

    @classmethod
    @contextlib.asynccontextmanager
    async def open(cls, cache: ResultCache, stats: dict[str, SubOpStats] | None = None) -> Any:
        """A scheduler routing the sub-calls of the code run inside the ``async with``."""
        scheduler = cls(cache, stats)
        with routing(scheduler):
            scheduler._context = contextvars.copy_context()  # routed, outside any frame
            try:
                yield scheduler
            finally:
                scheduler.close()

    # -- the router protocol -----------------------------------------------------------
    @property
    def loop(self) -> asyncio.AbstractEventLoop:
        """The run's event loop."""
        return self._loop

    def trial_of(self, item: Mapping[str, Any]) -> int:
        """The trial ``item`` is computed for (registered with :meth:`trials`), else 0."""
        entry = self._trials.get(id(item))
        return entry[1] if entry is not None and entry[0] is item else 0

    @contextlib.contextmanager
    def trials(self, items: Sequence[Mapping[str, Any]], trials: Sequence[int]) -> Iterator[None]:
        """Say which trial each of ``items`` is computed for, while they are computed."""
        for item, trial in zip(items, trials, strict=True):
            self._trials[id(item)] = (item, trial)
        try:
            yield
        finally:
            for item in items:
                self._trials.pop(id(item), None)

    def enter(self, count: int, *, threads: bool = False) -> None:
        """``count`` inputs of ops that call ops started (on threads of their own)."""
        self._active += count
        self._threads += count if threads else 0

    def exit(self, count: int, *, threads: bool = False) -> None:
        """``count`` of them finished: the rest may now all be waiting."""
        self._active -= count
        self._threads -= count if threads else 0
        self._check_quiet()

    async def load(self, op: Any, arguments: Mapping[str, Any], frame: CallFrame) -> SubCall:
        """Answer the sub-call of ``op`` on ``arguments`` from ``frame``, and record it there."""
        covers = getattr(frame.op, "covers", None)
        declared = bool(covers(op)) if callable(covers) else True
        ref = self._ref(op)
        trial = 0 if op.deterministic else frame.trial
        key = cache_key(ref, arguments, trial)
        stats = self.stats.setdefault(ref, SubOpStats())
        answer, first = self._answers.get(key), False
        if answer is None and self._closed:
            answer = _Answer(OpResult.failure(_ENDED), False, None)
        if answer is None:
            request = self._open.get(key)
            if request is None:
                future: asyncio.Future[_Answer] = self._loop.create_future()
                request = _Request(op, key, dict(arguments), future)
                self._enqueue(request)
                first = True
            self._wait(frame, request)
            answer = await asyncio.shield(request.future)
        result = answer.result
        record = SubCall(
            op_name=op.name,
            op_ref=ref,
            input_digest=key.input_digest,
            trial=trial,
            value=result.value,
            error=result.error,
            cached=answer.cached or not first,
            latency_ms=result.latency_ms,
            cost=result.cost,
            details=dict(result.details),
            declared=declared,
            estimate=answer.estimate,
            children=result.children if first else (),
        )
        frame.children.append(record)
        stats.calls += 1
        stats.cache_hits += answer.cached
        stats.shared += not first and not answer.cached
        stats.errors += result.error is not None
        outcome = "error" if result.error else ("cached" if record.cached else "computed")
        SUB_CALLS.labels(op.name, outcome).inc()
        return record

    def inline(
        self, op: Any, arguments: Mapping[str, Any], frame: CallFrame, compute: Callable[[], Any]
    ) -> SubCall:
        """A sync op called plainly from async code: computed now, recorded, not cached."""
        ref = self._ref(op)
        if ref not in self._inline_warned:
            self._inline_warned.add(ref)
            log.warning(
                "op %s was called from async code in op %s: a sync call cannot wait for a "
                "batch there, so it ran inline, neither cached nor batched; write "
                "`await %s.acall(...)` to have it cached and batched",
                ref,
                frame.op.name,
                op.name,
            )
        covers = getattr(frame.op, "covers", None)
        declared = bool(covers(op)) if callable(covers) else True
        trial = 0 if op.deterministic else frame.trial
        started = time.perf_counter()
        value, error = None, None
        try:
            value = compute()
        except Exception as exc:  # as a sub-call's failure: raised into the caller's code
            error = f"{type(exc).__name__}: {exc}"
        latency_ms = (time.perf_counter() - started) * 1000
        record = SubCall(
            op_name=op.name,
            op_ref=ref,
            input_digest=cache_key(ref, arguments, trial).input_digest,
            trial=trial,
            value=value,
            error=error,
            latency_ms=latency_ms,
            details={"inline": True},
            declared=declared,
        )
        frame.children.append(record)
        stats = self.stats.setdefault(ref, SubOpStats())
        stats.calls += 1
        stats.computed += 1
        stats.errors += error is not None
        SUB_CALLS.labels(op.name, "error" if error else "computed").inc()
        return record

    def close(self) -> None:
        """End the run: stop timers and batches still running (their parents are gone,
        e.g. timed out) and answer what still waits, so that no thread waits forever."""
        self._closed = True
        for queue in self._queues.values():
            if queue.timer is not None:
                queue.timer.cancel()
        for task in self._tasks:
            task.cancel()
        ended = OpResult.failure(_ENDED)
        for request in list(self._open.values()):
            if not request.future.done():
                self._resolve(request, _Answer(ended, False, None))

    # -- queues ------------------------------------------------------------------------
    def _ref(self, op: Any) -> str:
        ref = self._refs.get(id(op))
        if ref is None:
            ref = self._refs[id(op)] = op.ref
        return ref

    def _enqueue(self, request: _Request) -> None:
        self._open[request.key] = request
        queue = self._queues.setdefault(request.key.op_ref, _Queue(request.op))
        queue.requests[request.key] = request
        if len(queue.requests) >= request.op.policy.batch_size:
            self._flush(request.key.op_ref)
        elif queue.timer is None:
            wait = self.thread_wait if self._threads else self.max_wait
            queue.timer = self._loop.call_later(wait, self._flush, request.key.op_ref)

    def _wait(self, frame: CallFrame, request: _Request) -> None:
        request.frames.append(frame)
        frame.waiting += 1
        if frame.counted and frame.waiting == 1:
            self._waiting += 1
        self._check_quiet()

    def _unwait(self, frame: CallFrame) -> None:
        frame.waiting -= 1
        if frame.counted and frame.waiting == 0:
            self._waiting -= 1

    def _check_quiet(self) -> None:
        if self._queues and self._waiting >= self._active and not self._flush_scheduled:
            self._flush_scheduled = True
            self._loop.call_soon(self._flush_if_quiet)

    def _flush_if_quiet(self) -> None:
        self._flush_scheduled = False
        if self._waiting >= self._active:
            for op_ref in list(self._queues):
                self._flush(op_ref)

    def _flush(self, op_ref: str) -> None:
        queue = self._queues.pop(op_ref, None)
        if queue is None:
            return
        if queue.timer is not None:
            queue.timer.cancel()
        # A copy of the run's context: routed, outside the frame of whoever filled it.
        task = self._loop.create_task(self._answer(queue), context=self._context.copy())
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    async def _answer(self, queue: _Queue) -> None:
        requests = list(queue.requests.values())
        try:
            await self._compute(queue.op, requests)
        except Exception as exc:  # the cache or the op broke its contract: still answer
            kind = type(exc).__name__
            error = f"sub-calls of {queue.op.ref} could not be answered: {kind}: {exc}"
            log.error(error)
            for request in requests:
                if not request.future.done():
                    self._resolve(request, _Answer(OpResult.failure(error), False, None))

    async def _compute(self, op: Any, requests: list[_Request]) -> None:
        stats = self.stats.setdefault(requests[0].key.op_ref, SubOpStats())
        stats.lookups.append(len(requests))
        hits = await self.cache.get_many([request.key for request in requests])
        for request in requests:
            hit = hits.get(request.key)
            if hit is not None:
                found = OpResult(
                    value=hit.value, cost=hit.cost, latency_ms=hit.latency_ms, details=hit.details
                )
                self._resolve(request, _Answer(found, True, _estimate(op, request)))
        misses = [request for request in requests if request.key not in hits]
        if not misses:
            return
        stats.batches.append(len(misses))
        stats.computed += len(misses)
        SUB_CALL_BATCH_SIZE.labels(op.name).observe(len(misses))
        inputs = [request.arguments for request in misses]
        # One batch of an op at a time, as run_op runs an op's batches: its timeout then
        # bounds its own work, not a wait behind its other batches (the model has one
        # thread, the judge one concurrency limit). An op that calls ops may recurse into
        # itself, so its batches are not held back.
        one_at_a_time = not getattr(op, "sub_ops", ())
        lock = (
            self._locks.setdefault(misses[0].key.op_ref, asyncio.Lock()) if one_at_a_time else None
        )
        async with lock or contextlib.nullcontext():
            with self.trials(inputs, [request.key.trial for request in misses]):
                results = await run_op(op, inputs)
        now = time.time()
        fresh = {
            request.key: CachedValue(r.value, r.latency_ms, r.cost, dict(r.details), now)
            for request, r in zip(misses, results, strict=True)
            if r.ok
        }
        await self.cache.put_many(fresh)
        for request, result in zip(misses, results, strict=True):
            stats.cost_usd += result.cost or 0.0
            self._resolve(request, _Answer(result, False, _estimate(op, request)))

    def _resolve(self, request: _Request, answer: _Answer) -> None:
        self._answers[request.key] = answer
        self._open.pop(request.key, None)
        for frame in request.frames:
            self._unwait(frame)
        request.future.set_result(answer)


def _estimate(op: Any, request: _Request) -> CostEstimate | None:
    """The op's own estimate for this input (what a cost plan charges when it is missing)."""
    try:
        estimate: CostEstimate = op.estimate([request.arguments])
        return estimate
    except Exception as exc:  # an estimate is advice: a broken one must not fail the call
        log.warning("op %s could not estimate a sub-call's cost: %s", op.ref, exc)
        return None


# -- the records of a computed parent ---------------------------------------------------
def flatten(children: Sequence[SubCall], parent_ref: str) -> list[tuple[str, str, SubCall]]:
    """A parent's sub-calls, depth first, as ``(position, parent ref, sub-call)``.

    A position is the path of indexes from the column's value: ``"1"`` is its second
    sub-call, ``"1.0"`` the first sub-call that one made.
    """
    rows: list[tuple[str, str, SubCall]] = []

    def walk(calls: Sequence[SubCall], parent: str, prefix: str) -> None:
        for index, child in enumerate(calls):
            position = f"{prefix}{index}"
            rows.append((position, parent, child))
            walk(child.children, child.op_ref, f"{position}.")

    walk(children, parent_ref, "")
    return rows


def spent_usd(children: Sequence[SubCall]) -> float:
    """Dollars the sub-calls computed for this parent spent, their own sub-calls included."""
    return sum(
        (0.0 if child.cached else child.cost or 0.0) + spent_usd(child.children)
        for child in children
    )


def calls_key(op_name: str, input_digest: str, trial: int) -> CacheKey:
    """Where the cache keeps which sub-calls an op made on an input (by op *name*, so
    that a new version of the op still finds what its last version called)."""
    return CacheKey(f"{op_name}#calls", input_digest, trial)


def call_index(op_name: str, key: CacheKey, children: Sequence[SubCall]) -> dict[CacheKey, Any]:
    """The cache entry recording the direct sub-calls of ``op_name`` on ``key``'s input:
    each one's op name, ref, input digest, trial and estimate (cost plans read it)."""
    made = []
    for child in children:
        estimate = child.estimate or CostEstimate()
        made.append(
            [
                child.op_name,
                child.op_ref,
                child.input_digest,
                child.trial,
                estimate.tokens,
                estimate.usd,
                estimate.seconds,
            ]
        )
    index = calls_key(op_name, key.input_digest, key.trial)
    return {index: CachedValue(made, computed_at=time.time())}
