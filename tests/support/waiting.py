"""Bounded polling: the one way the tests wait for something to happen.

Every wait names what it awaits and has a deadline; when the deadline passes, the
test fails with what was awaited and the last value observed, so a red run says
what the system was doing instead of only that it was slow.

>>> ticks = iter(range(10))
>>> wait_until(lambda: next(ticks), 5, "the third tick", until=lambda n: n >= 2, interval=0)
2
>>> wait_until(lambda: "queued", 0, "the job to finish", until=lambda s: s == "done")
Traceback (most recent call last):
    ...
AssertionError: timed out after 0s waiting for the job to finish; last observed: 'queued'
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable
from typing import Generic, TypeVar

__all__ = ["wait_until", "wait_until_async"]

T = TypeVar("T")


_SHOWN = 1000  # characters of the last observed value in a failure message


def _is_truthy(value: object) -> bool:
    return bool(value)


def _shown(value: object) -> str:
    text = repr(value)
    return text if len(text) <= _SHOWN else f"{text[:_SHOWN]}... ({len(text)} characters)"


class _Poll(Generic[T]):
    """One probe at a time against one deadline; remembers what it last saw."""

    def __init__(
        self,
        observe: Callable[[], T],
        timeout: float,
        what: str,
        until: Callable[[T], bool],
        ignore: tuple[type[BaseException], ...],
        describe: Callable[[T], object] | None,
    ) -> None:
        self.observe, self.until, self.ignore = observe, until, ignore
        self.timeout, self.what, self.describe = timeout, what, describe
        self.deadline = time.monotonic() + timeout
        self.last: Callable[[], object] = lambda: "nothing (no probe finished)"

    def probe(self) -> tuple[bool, T | BaseException]:
        try:
            value = self.observe()
        except self.ignore as exc:  # a known "not yet" (e.g. a server still starting)
            error = exc  # ``exc`` is unbound after the except block
            self.last = lambda: error
            return False, error
        # Rendered only on failure: a probe may return thousands of records.
        describe = self.describe
        self.last = (lambda: value) if describe is None else (lambda: describe(value))
        return self.until(value), value

    def remaining(self) -> float:
        """Seconds left; raise the failure once none are."""
        left = self.deadline - time.monotonic()
        if left <= 0:
            raise AssertionError(
                f"timed out after {self.timeout:g}s waiting for {self.what}; "
                f"last observed: {_shown(self.last())}"
            )
        return left


def wait_until(
    observe: Callable[[], T],
    timeout: float,
    what: str,
    *,
    until: Callable[[T], bool] = _is_truthy,
    interval: float = 0.3,
    ignore: tuple[type[BaseException], ...] = (),
    describe: Callable[[T], object] | None = None,
) -> T:
    """Call ``observe`` until ``until(value)`` holds, and return that value.

    Args:
        observe: reads the state of interest (a metric, a topic, a listing).
        timeout: seconds before giving up; ``observe`` runs at least once, and once
            more at the deadline.
        what: what is awaited, in words, for the failure message.
        until: when the observed value is the awaited one (default: it is truthy).
        interval: seconds between probes.
        ignore: exception types that mean "not yet" (the last one is reported).
        describe: what of an observed value the failure message shows (default: all
            of it, cut at a thousand characters).

    Raises:
        AssertionError: naming ``what`` and the last observed value, after ``timeout``.
    """
    poll = _Poll(observe, timeout, what, until, ignore, describe)
    while True:
        done, value = poll.probe()
        if done:
            return value  # type: ignore[return-value]  # not an ignored exception: a T
        time.sleep(min(interval, poll.remaining()))


async def wait_until_async(
    observe: Callable[[], T],
    timeout: float,
    what: str,
    *,
    until: Callable[[T], bool] = _is_truthy,
    interval: float = 0.02,
    ignore: tuple[type[BaseException], ...] = (),
    describe: Callable[[T], object] | None = None,
) -> T:
    """:func:`wait_until` for a coroutine: the event loop runs between probes.

    >>> state = {"n": 0}
    >>> async def bump() -> None:
    ...     state["n"] += 1
    >>> async def scenario() -> int:
    ...     task = asyncio.create_task(bump())
    ...     value = await wait_until_async(lambda: state["n"], 5, "the bump")
    ...     await task
    ...     return value
    >>> asyncio.run(scenario())
    1
    """
    poll = _Poll(observe, timeout, what, until, ignore, describe)
    while True:
        done, value = poll.probe()
        if done:
            return value  # type: ignore[return-value]  # not an ignored exception: a T
        await asyncio.sleep(min(interval, poll.remaining()))
