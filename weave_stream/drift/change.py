"""Change detection over the novelty stream (river's ADWIN or Page-Hinkley).

Novelty distances of in-distribution examples fluctuate around a stable mean; when
a new kind of document starts to arrive, the mean rises. ADWIN keeps an adaptive
window and cuts it where two sub-windows' means differ significantly; Page-Hinkley
accumulates deviations above the running mean. Only *increases* are reported:
novelty falling (traffic looking more like the reference, or examples learned) is
not an alarm.

>>> import random
>>> from weave_stream.topology.monitors import ShiftSpec
>>> detector = NoveltyChangeDetector(ShiftSpec(detector="adwin"))
>>> rng = random.Random(0)
>>> stream = [rng.gauss(0.5, 0.05) for _ in range(500)] + [rng.gauss(0.8, 0.05) for _ in range(200)]
>>> changes = [(i, c) for i, x in enumerate(stream) if (c := detector.update(x)) is not None]
>>> first_at, change = changes[0]
>>> 500 <= first_at < 550, change.mean_after > change.mean_before
(True, True)
"""

from __future__ import annotations

from collections import deque
from dataclasses import dataclass

from river import drift, stats

from weave_stream.topology.monitors import ShiftSpec

__all__ = ["NoveltyChange", "NoveltyChangeDetector"]


@dataclass(frozen=True)
class NoveltyChange:
    """A detected increase of the novelty stream's mean."""

    detector: str
    mean_before: float
    mean_after: float
    observations: int  # values seen since the previous change (or the start)


class NoveltyChangeDetector:
    """One change detector over one group's novelty distances."""

    def __init__(self, spec: ShiftSpec) -> None:
        if spec.detector == "none":
            raise ValueError("detector 'none' has no change detector; do not build one")
        self.spec = spec
        self._recent: deque[float] = deque(maxlen=spec.min_instances)
        self._reset()

    def _reset(self) -> None:
        spec = self.spec
        if spec.detector == "adwin":
            self._detector: drift.ADWIN | drift.PageHinkley = drift.ADWIN(delta=spec.adwin_delta)
        else:
            self._detector = drift.PageHinkley(
                min_instances=spec.min_instances,
                delta=spec.page_hinkley_delta,
                threshold=spec.page_hinkley_threshold,
                mode="up",
            )
        self._since = stats.Mean()

    def update(self, distance: float) -> NoveltyChange | None:
        """Feed one novelty distance; return the change when an increase is detected."""
        detector = self._detector
        width_before = float(getattr(detector, "width", 0.0))
        total_before = width_before * float(getattr(detector, "estimation", 0.0))
        since_before = self._since.get()
        detector.update(distance)
        self._since.update(distance)
        self._recent.append(distance)
        if not detector.drift_detected or self._since.n < self.spec.min_instances:
            return None
        after = sum(self._recent) / len(self._recent)  # the latest min_instances values
        before = since_before
        rising = True  # Page-Hinkley runs in "up" mode
        if isinstance(detector, drift.ADWIN):
            # ADWIN dropped the older part of its window; it rose when the kept part's
            # mean is above the dropped part's.
            kept = float(detector.estimation)
            dropped = width_before + 1.0 - float(detector.width)
            if dropped > 0:
                before = (total_before + distance - float(detector.width) * kept) / dropped
            rising = kept > before
        observations = int(self._since.n)
        if not rising:
            self._since = stats.Mean()  # a fall is not an alarm; start the next segment
            return None
        change = NoveltyChange(self.spec.detector, float(before), after, observations)
        self._reset()
        return change
