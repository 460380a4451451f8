"""Pure window arithmetic on event time, in whole seconds since the Unix epoch (UTC).

Windows are ``[start, start + size)`` with starts on multiples of ``step``; tumbling
windows have ``step == size``. State is kept per *pane*, the ``step``-wide slice
``[p, p + step)``: each event falls in exactly one pane, and a window is the merge
of its ``size // step`` panes. So a hopping window costs no more per event than a
tumbling one, and memory holds every event once.

Time runs on a *clock*: the largest event time seen (the watermark) or the wall
clock, whichever is later. With ``G`` the grace period and ``R`` the retention:

* a pane accepts events while ``clock < p + step + G``: it closes when the earliest
  window holding it closes, so a window never changes after its final result;
* a window closes (its result is final) once ``clock >= start + size + G``;
* a pane is forgotten once ``clock >= p + size + R``, ``R`` after the last window
  holding it ended (``R >= G``, so only closed windows are ever forgotten).

>>> g = WindowGeometry(size=3600, step=900, grace=60, retention=86400)
>>> g.pane_start(1800.5), list(g.windows_of_pane(1800))
(1800, [-900, 0, 900, 1800])
>>> list(g.panes_of_window(900))
[900, 1800, 2700, 3600]
>>> g.accepts(pane=1800, clock=2759.9), g.accepts(pane=1800, clock=2760)
(True, False)
"""

from __future__ import annotations

import math
from dataclasses import dataclass

from weave_stream.topology.aggregates import Aggregate

__all__ = ["WindowGeometry"]


@dataclass(frozen=True, slots=True)
class WindowGeometry:
    """Window size, hop, grace and retention of one aggregate, in seconds."""

    size: int
    step: int
    grace: int = 0
    retention: int = 0

    def __post_init__(self) -> None:
        if self.step <= 0 or self.size <= 0 or self.size % self.step:
            raise ValueError(
                f"window size {self.size}s must be a positive multiple of its step {self.step}s"
            )
        if self.retention < self.grace:
            raise ValueError(
                f"retention {self.retention}s must be at least the grace period {self.grace}s"
            )

    @classmethod
    def of(cls, spec: Aggregate) -> WindowGeometry:
        """The geometry an :class:`Aggregate` declares."""
        return cls(spec.window.size, spec.window.step, spec.grace, spec.retention)

    @property
    def panes_per_window(self) -> int:
        """How many panes make one window (1 for tumbling windows)."""
        return self.size // self.step

    def pane_start(self, event_time: float) -> int:
        """Start of the pane that ``event_time`` falls in.

        >>> WindowGeometry(300, 300).pane_start(899.999)
        600
        """
        return math.floor(event_time / self.step) * self.step

    def windows_of_pane(self, pane: int) -> range:
        """Starts of every window that contains the pane starting at ``pane``."""
        return range(pane - self.size + self.step, pane + 1, self.step)

    def window_starts(self, event_time: float) -> range:
        """Starts of every window that contains ``event_time``.

        >>> list(WindowGeometry(600, 300).window_starts(1000))
        [600, 900]
        """
        return self.windows_of_pane(self.pane_start(event_time))

    def panes_of_window(self, start: int) -> range:
        """Starts of the panes that make up the window starting at ``start``."""
        return range(start, start + self.size, self.step)

    def window_end(self, start: int) -> int:
        """End (exclusive) of the window starting at ``start``."""
        return start + self.size

    def is_window_start(self, start: float) -> bool:
        """True when a window starts at ``start`` (a multiple of the step)."""
        return start == int(start) and int(start) % self.step == 0

    def accepts(self, pane: int, clock: float) -> bool:
        """True while the pane still takes events at ``clock``."""
        return clock < pane + self.step + self.grace

    def last_late_pane(self, clock: float) -> float:
        """Panes starting at or before this refuse events at ``clock``.

        >>> WindowGeometry(60, 60, grace=10, retention=10).last_late_pane(130)
        60
        """
        return clock - self.step - self.grace
