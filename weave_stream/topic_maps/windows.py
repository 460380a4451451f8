"""When the stream's topic alerts run: tumbling event-time windows of assigned calls.

A topology worker adds each call it assigned (:class:`WindowCall`, by its
``started_at``) to :class:`TopicWindows`; a window ``[start, start + size)`` is
*due* — handed to :class:`~weave_stream.topic_maps.watch.TopicWatch` once — when the
latest call seen started ``grace`` past its end (the stream moved on), or, when no
call came for ``idle`` seconds, once the clock is past its end and grace (a quiet
stream still gets its last window checked). A call of a window already checked is
*late*: counted, not checked again. State is bounded: at most ``max_open`` windows
are held (the oldest is checked early when another opens) and ``max_calls`` calls
per window (the rest are counted, not kept: shares come from a uniform sample).

>>> from weave_stream.topic_maps.watch import WindowCall
>>> windows = TopicWindows(size=60, grace=5)
>>> [windows.add(t, WindowCall(f"c{t}", 0)) for t in (0, 30, 59)]
[True, True, True]
>>> windows.due(now=10.0)                      # the stream has not passed 0-60 + grace yet
[]
>>> windows.add(70, WindowCall("c70", 1))     # 70 >= 60 + 5: the first window is due
True
>>> [(w.start, len(w.calls)) for w in windows.due(now=10.0)]
[(0.0, 3)]
>>> windows.add(10, WindowCall("late", 0)), windows.late
(False, 1)
"""

from __future__ import annotations

import math
import random
import time
from collections.abc import Callable
from dataclasses import dataclass, field

from weave_stream.topic_maps.watch import WindowCall

__all__ = ["IDLE_SECONDS", "DueWindow", "TopicWindows"]

IDLE_SECONDS = 30.0  # a quiet stream's windows are checked once no call came for this long


@dataclass
class DueWindow:
    """A window ready to check: its bounds and the calls kept (``seen`` were added)."""

    start: float
    end: float
    calls: list[WindowCall] = field(default_factory=list)
    seen: int = 0


@dataclass
class TopicWindows:
    """Assigned calls by tumbling window of event time (seconds); see the module."""

    size: float
    grace: float = 60.0
    idle: float = IDLE_SECONDS
    max_open: int = 4
    max_calls: int = 100_000
    clock: Callable[[], float] = time.monotonic  # for the idle test
    late: int = 0
    _open: dict[float, DueWindow] = field(default_factory=dict)
    _watermark: float = -math.inf
    _checked_until: float = -math.inf  # every window ending at or before this was handed out
    _last_add: float = field(default=-math.inf)
    _sample: random.Random = field(default_factory=lambda: random.Random(0))

    def add(self, started_at: float, call: WindowCall) -> bool:
        """Add ``call``; False (and counted in :attr:`late`) if its window was checked."""
        start = float(math.floor(started_at / self.size) * self.size)
        if start + self.size <= self._checked_until:
            self.late += 1
            return False
        window = self._open.get(start)
        if window is None:
            window = self._open[start] = DueWindow(start, start + self.size)
        window.seen += 1
        if len(window.calls) < self.max_calls:
            window.calls.append(call)
        else:  # reservoir: the kept calls stay a uniform sample of the window's
            slot = self._sample.randrange(window.seen)
            if slot < self.max_calls:
                window.calls[slot] = call
        self._watermark = max(self._watermark, started_at)
        self._last_add = self.clock()
        return True

    def due(self, now: float) -> list[DueWindow]:
        """The windows to check now (``now``: the wall clock, epoch seconds), oldest first."""
        idle = self.clock() - self._last_add >= self.idle
        ready = [
            start
            for start, window in self._open.items()
            if window.end + self.grace <= self._watermark
            or (idle and window.end + self.grace <= now)
        ]
        waiting = sorted(set(self._open) - set(ready))
        excess = waiting[: max(0, len(waiting) - self.max_open)]  # the oldest, checked early
        out = [self._open.pop(start) for start in sorted({*ready, *excess})]
        if out:
            self._checked_until = max(self._checked_until, max(w.end for w in out))
        return out

    @property
    def open_windows(self) -> int:
        """Windows not checked yet."""
        return len(self._open)

    @property
    def open_calls(self) -> int:
        """Calls held in windows not checked yet."""
        return sum(len(w.calls) for w in self._open.values())
