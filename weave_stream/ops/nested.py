"""Ops that call ops: plain calls outside a run, routed through the run's scheduler inside.

Outside a run, calling an op is calling its function, as it always was. Inside a
run (:func:`~weave_stream.columns.derive.derive_batch` opens one: the local and
streaming runners, backfills, experiments), each input an op computes runs in a
:class:`CallFrame`, and a call of an op made from that code is a *sub-call*: it is
handed to the run's :class:`SubCallRouter` (the DataLoader-style scheduler of
:mod:`weave_stream.columns.subcalls`), which looks it up in the result cache,
batches it with the same op's sub-calls from other parents, and records it in the
frame as a :class:`~weave_stream.ops.base.SubCall` (a child of the outer call).

How code calls an op, in a run and out of it (``summarise`` calling ``embed``):

* ``await embed.acall(text=t)`` / ``embed.call(text=t)``: one input, one value, for
  any op, batched or not; a failure raises :class:`~weave_stream.errors.SubCallError`.
  ``call`` blocks, so it is for sync code (a sync op runs on a worker thread).
* ``words(t)``, the plain call: in a run it goes through the scheduler too and
  returns what the plain call returns (a value, or an awaitable for an async op; a
  batched op takes lists and returns a list of values). A sync op called so from
  async code cannot wait for a batch without blocking the event loop: it runs inline
  (recorded, not cached or batched) and a warning, once, says to await ``acall``.

A sync op runs on a worker thread; one that calls ops runs each input on a thread of
its own so that its sub-calls can gather into batches (measured in ``bench/nested.py``:
an async parent costs less per input, see the README).
"""

from __future__ import annotations

import asyncio
import contextlib
import contextvars
import dataclasses
import functools
import inspect
import threading
from collections.abc import Callable, Iterator, Mapping, Sequence
from concurrent.futures import ThreadPoolExecutor
from contextvars import ContextVar
from dataclasses import dataclass, field
from typing import Any, Protocol

from weave_stream.errors import OpError, SubCallError
from weave_stream.ops.base import OpResult, SubCall

__all__ = [
    "CallFrame",
    "SubCallRouter",
    "acall_one",
    "call_one",
    "current_frame",
    "current_router",
    "input_frame",
    "routing",
    "run_inputs",
]

# Threads for sync ops that call ops, one per input being computed: a thread blocked on a
# sub-call must never keep a sub-op's own inputs from starting, so the pool is not the
# limit (inputs in flight are: batch sizes times nesting depth). Made on first use.
_PARENT_THREADS = 1024
_pool: ThreadPoolExecutor | None = None
_pool_lock = threading.Lock()


@dataclass(eq=False)
class CallFrame:
    """One input of an op being computed in a run; collects its sub-calls in call order.

    ``counted`` frames belong to ops known to call ops: the scheduler waits for them
    before it flushes (see :mod:`weave_stream.columns.subcalls`).
    """

    op: Any
    item: Mapping[str, Any] | None
    trial: int
    counted: bool = False
    children: list[SubCall] = field(default_factory=list)
    waiting: int = 0  # sub-calls this frame is blocked on (kept by the router)


class SubCallRouter(Protocol):
    """What a run offers ops that call ops (implemented by the sub-call scheduler)."""

    @property
    def loop(self) -> asyncio.AbstractEventLoop:
        """The run's event loop (sync code on worker threads hands its sub-calls to it)."""
        ...

    async def load(self, op: Any, arguments: Mapping[str, Any], frame: CallFrame) -> SubCall:
        """The sub-call of ``op`` on ``arguments`` made from ``frame`` (recorded there)."""
        ...

    def inline(
        self, op: Any, arguments: Mapping[str, Any], frame: CallFrame, compute: Callable[[], Any]
    ) -> SubCall:
        """Run ``compute`` now, on this thread, as the sub-call of ``op`` (recorded only)."""
        ...

    def trial_of(self, item: Mapping[str, Any]) -> int:
        """The trial the run computes ``item`` for (0 when it does not know it)."""
        ...

    def enter(self, count: int, *, threads: bool = False) -> None:
        """``count`` counted frames started (the scheduler waits for them to block)."""
        ...

    def exit(self, count: int, *, threads: bool = False) -> None:
        """``count`` counted frames finished."""
        ...


_ROUTER: ContextVar[SubCallRouter | None] = ContextVar("weave_stream_router", default=None)
_FRAME: ContextVar[CallFrame | None] = ContextVar("weave_stream_frame", default=None)


def current_router() -> SubCallRouter | None:
    """The router of the run this code is in, or None outside a run."""
    return _ROUTER.get()


def current_frame() -> CallFrame | None:
    """The input being computed, when code runs inside an op in a run; else None."""
    return _FRAME.get()


@contextlib.contextmanager
def routing(router: SubCallRouter | None) -> Iterator[None]:
    """Make ``router`` the run's router in this context (None: no run, plain calls)."""
    token = _ROUTER.set(router)
    frame_token = _FRAME.set(None)
    try:
        yield
    finally:
        _FRAME.reset(frame_token)
        _ROUTER.reset(token)


@contextlib.contextmanager
def input_frame(
    op: Any, item: Mapping[str, Any] | None, *, counted: bool = False
) -> Iterator[CallFrame | None]:
    """Run code as the computation of ``item`` by ``op`` (None outside a run)."""
    router = _ROUTER.get()
    if router is None:
        yield None
        return
    frame = CallFrame(op, item, router.trial_of(item) if item is not None else 0, counted)
    token = _FRAME.set(frame)
    try:
        yield frame
    finally:
        _FRAME.reset(token)


def with_children(result: OpResult, frame: CallFrame | None) -> OpResult:
    """``result`` carrying the sub-calls ``frame`` collected."""
    if frame is None or not frame.children:
        return result
    return dataclasses.replace(result, children=(*result.children, *frame.children))


def bind_input(op: Any, function: Any, args: Sequence[Any], kwargs: Mapping[str, Any]) -> dict:
    """The arguments of one call as ``{name: value}`` (positional ones named)."""
    if not args:
        return dict(kwargs)  # by name already (what the function does not take, it refuses)
    try:
        bound = _signature(function).bind(*args, **kwargs)
    except TypeError as exc:
        raise OpError(f"op {op.name!r} called with arguments it does not take: {exc}") from None
    arguments: dict[str, Any] = {}
    for name, value in bound.arguments.items():
        kind = bound.signature.parameters[name].kind
        if kind is inspect.Parameter.VAR_KEYWORD:
            arguments.update(value)
        elif kind is inspect.Parameter.VAR_POSITIONAL:
            raise OpError(f"op {op.name!r}: pass its arguments by name in a sub-call")
        else:
            arguments[name] = value
    return arguments


async def acall_one(op: Any, arguments: Mapping[str, Any]) -> Any:
    """The value of ``op`` on one input: a sub-call in a run, else a run of the op alone.

    Raises :class:`~weave_stream.errors.SubCallError` when the op fails on it.
    """
    router, frame = _ROUTER.get(), _FRAME.get()
    if router is not None and frame is not None:
        return _value(await router.load(op, arguments, frame))
    # Deferred: execute imports this module for its frames.
    from weave_stream.ops.execute import run_op

    (result,) = await run_op(op, [dict(arguments)])
    if result.error is not None:
        raise SubCallError(op.ref, result.error)
    return result.value


def call_one(op: Any, arguments: Mapping[str, Any]) -> Any:
    """:func:`acall_one` for sync code: blocks until the value is there.

    In a run, sync code runs on a worker thread and waits for the run's loop; out of
    a run it runs the op on a loop of its own. On a thread that runs an event loop it
    cannot wait: it raises :class:`~weave_stream.errors.OpError` saying to await
    ``op.acall``.
    """
    return _call_many(op, [arguments])[0]


def _call_many(op: Any, items: Sequence[Mapping[str, Any]]) -> list[Any]:
    try:
        asyncio.get_running_loop()
    except RuntimeError:
        pass  # no loop on this thread: blocking is allowed
    else:
        raise OpError(
            f"op {op.name!r} was called from async code as a sync call, which would block "
            f"the event loop; write `await {op.name}.acall(...)` there"
        )
    router, frame = _ROUTER.get(), _FRAME.get()
    if router is None or frame is None:
        return [asyncio.run(acall_one(op, item)) for item in items]
    # Every load is handed over before waiting on any, so they can share a batch.
    futures = [
        asyncio.run_coroutine_threadsafe(router.load(op, item, frame), router.loop)
        for item in items
    ]
    return [_value(future.result()) for future in futures]


def routed_call(op: Any, function: Any, batched: bool, args: Sequence[Any], kw: Any) -> Any:
    """The plain call ``op(*args, **kw)`` made inside an op in a run, as a sub-call."""
    arguments = bind_input(op, function, args, kw)
    is_async = inspect.iscoroutinefunction(function)
    router, frame = _ROUTER.get(), _FRAME.get()
    if not is_async and router is not None and frame is not None and _on_a_loop():
        return _value(router.inline(op, arguments, frame, lambda: function(*args, **kw)))
    if not batched:
        return acall_one(op, arguments) if is_async else call_one(op, arguments)
    columns = {name: list(values) for name, values in arguments.items()}
    count = len(next(iter(columns.values()), []))
    if any(len(values) != count for values in columns.values()):
        raise OpError(f"batched op {op.name!r} called with lists of different lengths")
    items = [{name: values[i] for name, values in columns.items()} for i in range(count)]

    async def each() -> list[Any]:
        return list(await asyncio.gather(*(acall_one(op, item) for item in items)))

    return each() if is_async else _call_many(op, items)


async def run_inputs(
    op: Any,
    inputs: Sequence[Mapping[str, Any]],
    compute: Callable[[Mapping[str, Any]], Any],
    is_async: bool,
    counted: bool,
) -> list[OpResult]:
    """Compute ``inputs`` of a non-batched op in a run, each in a frame of its own.

    An async op's inputs run concurrently, as outside a run. A sync op that calls ops
    (``counted``) runs each input on a thread of its own, so that the sub-calls of all
    of them can meet in one batch; one that is not known to call ops runs its inputs
    one after another on one worker thread, as outside a run.
    """
    router = _ROUTER.get()
    if router is None:
        raise RuntimeError("run_inputs is for code inside a run (derive_batch opens one)")
    if not is_async and not counted:

        def serially() -> list[OpResult]:
            results = []
            for item in inputs:
                with input_frame(op, item) as frame:
                    results.append(with_children(compute(item), frame))
            return results

        return await asyncio.to_thread(serially)

    def framed_sync(item: Mapping[str, Any]) -> OpResult:
        with input_frame(op, item, counted=True) as frame:
            return with_children(compute(item), frame)

    async def framed(item: Mapping[str, Any]) -> OpResult:
        try:
            if is_async:
                with input_frame(op, item, counted=counted) as frame:
                    result = await compute(item)
                return with_children(result, frame)
            loop = asyncio.get_running_loop()
            context = contextvars.copy_context()
            return await loop.run_in_executor(_threads(), context.run, framed_sync, item)
        finally:
            if counted:
                router.exit(1, threads=not is_async)

    if counted:
        router.enter(len(inputs), threads=not is_async)
    return list(await asyncio.gather(*(framed(item) for item in inputs)))


@functools.lru_cache(maxsize=1024)
def _signature(function: Any) -> inspect.Signature:
    return inspect.signature(function)


def _on_a_loop() -> bool:
    try:
        asyncio.get_running_loop()
    except RuntimeError:
        return False
    return True


def _threads() -> ThreadPoolExecutor:
    global _pool
    with _pool_lock:
        if _pool is None:
            _pool = ThreadPoolExecutor(_PARENT_THREADS, thread_name_prefix="weave-stream-op")
        return _pool


def _value(record: SubCall) -> Any:
    if record.error is not None:
        raise SubCallError(record.op_ref, record.error)
    return record.value
