"""Distribution shift: a sequential test of the latest calls against the reference.

Per-example novelty misses a shift when the reference is varied: documents of a
new kind can each lie near *some* known document, yet together they move the
stream. After every call (or every ``every`` calls) the test asks whether the mean
of the latest ``k`` embeddings has moved away from the reference's mean, for
several ``k`` at once (eight lengths, ``calls`` down by half-octave steps: 7, 10,
14, 20, 28, 40, 57 and 80 calls at the default): a short window catches an abrupt
shift within a few calls, a long one a subtle one, so the delay is not bounded
below by a window length.

The embeddings are *whitened* with the reference's covariance (shrunk toward the
identity by ``shrinkage``, so that 384 dimensions can be estimated from a few
hundred examples): a move into a direction where the reference barely varies
counts for more than the same move along its main directions (``statistic:
mean`` skips the whitening, a plain centroid distance). For each ``k`` two terms
are standardized to one scale and averaged: the unbiased squared norm of the
window's mean (*where* the calls are: a moved mean), and, with ``spread`` (the
default), the window's mean squared whitened norm against the reference's (*how
far* each call lies from the reference: calls of a new kind vary along directions
in which the reference barely does, so they lie farther out even when their mean
moved little). The test statistic is the maximum over ``k``.

Calibration: the reference is split in two halves. One half gives the mean and
covariance; windows slid over random orderings of the other half (100 streams of
1,000 calls) give the null distribution of the statistic's *maximum over a
stream*. A Gumbel law fitted to those maxima, extrapolated to
``false_alarm_calls``, gives the threshold: stable traffic like the reference
raises a false alarm with probability about ``false_alarm_rate`` per
``false_alarm_calls`` calls (measured on held-out real text: several times more
often, since half the reference shows little of the far tail; see the README).

>>> import numpy as np
>>> from weave_stream.topology.monitors import ShiftSpec
>>> rng = np.random.default_rng(0)
>>> test = ShiftTest.from_reference(rng.normal(size=(600, 8)), ShiftSpec(calls=40))
>>> window = test.window()
>>> any(r is not None and r.shifted for r in map(window.push, rng.normal(size=(300, 8))))
False
>>> results = [window.push(v) for v in rng.normal(size=(20, 8)) + 1.0]
>>> next(i for i, r in enumerate(results) if r is not None and r.shifted) < 10
True
"""

from __future__ import annotations

import math
from collections import deque
from dataclasses import dataclass
from typing import Any

import numpy as np

from weave_stream.errors import TopologyError
from weave_stream.topology.monitors import ShiftSpec

__all__ = ["ShiftResult", "ShiftTest", "ShiftWindow"]

_STREAMS = 100
_STREAM_CALLS = 1_000
_SMALLEST_SCALE = 5
_EULER = 0.5772156649


@dataclass(frozen=True)
class ShiftResult:
    """One evaluation: the statistic, the threshold, and the window that scored highest."""

    statistic: float
    threshold: float
    calls: int  # the length of the window with the largest standardized statistic
    shifted: bool


class ShiftTest:
    """The fitted test: reference mean, whitening, window lengths and calibrated threshold."""

    def __init__(
        self,
        spec: ShiftSpec,
        mean: np.ndarray,
        whitening: np.ndarray | None,
        scales: tuple[int, ...],
        scale_norm: float,
        threshold: float,
        spread: tuple[float, float] | None = None,
    ) -> None:
        self.spec = spec
        self.mean = mean.astype(np.float64)
        self.whitening = whitening
        self.scales = scales
        self.scale_norm = scale_norm
        self.threshold = threshold
        # Mean and standard deviation of a held-out call's squared (whitened) norm;
        # None: the mean term alone (spread off, or restored from an older snapshot).
        self.spread = spread
        self.fit_rows: np.ndarray | None = None  # reference rows of the fitting half
        self.held_out_rows: np.ndarray | None = None

    @classmethod
    def from_reference(
        cls, reference: np.ndarray, spec: ShiftSpec, *, seed: int = 0, where: str = "monitor"
    ) -> ShiftTest:
        """Fit on one half of ``reference``, calibrate on the other (see the module docstring)."""
        vectors = np.asarray(reference, dtype=np.float64)
        half = len(vectors) // 2
        scales = tuple(s for s in _scales(spec.calls) if s <= half // 2)
        if not scales:
            raise TopologyError(
                f"{where}: a reference of {len(vectors)} examples is too small for shift "
                f"detection: it needs at least {4 * min(_scales(spec.calls))} (better: hundreds); "
                "give the monitor a larger reference or set shift: {enabled: false}"
            )
        rng = np.random.default_rng(seed)
        order = rng.permutation(len(vectors))
        fit_rows, held_rows = np.sort(order[:half]), np.sort(order[half:])
        test = cls.fitted(spec, vectors[fit_rows], scales, 1.0, math.inf)
        held = test.transform(vectors[held_rows])
        covariance_held = np.cov(held.T)
        test.scale_norm = float(np.sqrt(np.sum(covariance_held * covariance_held))) or 1.0
        if spec.spread:
            norms = np.einsum("ij,ij->i", held, held)
            test.spread = (float(norms.mean()), float(norms.std()) or 1.0)
        test.threshold = test._calibrate(held, rng)
        test.fit_rows, test.held_out_rows = fit_rows, held_rows
        return test

    @classmethod
    def fitted(
        cls,
        spec: ShiftSpec,
        fit: np.ndarray,
        scales: tuple[int, ...],
        scale_norm: float,
        threshold: float,
        spread: tuple[float, float] | None = None,
    ) -> ShiftTest:
        """The test with its mean and whitening computed from ``fit`` (the fitting half)."""
        fit = np.asarray(fit, dtype=np.float64)
        mean = fit.mean(axis=0)
        whitening = None
        if spec.statistic == "whitened_mean":
            covariance = np.cov((fit - mean).T)
            ridge = spec.shrinkage * float(np.trace(covariance)) / len(mean)
            cholesky = np.linalg.cholesky(covariance + (ridge + 1e-9) * np.eye(len(mean)))
            whitening = np.linalg.inv(cholesky).T
        return cls(spec, mean, whitening, tuple(scales), scale_norm, threshold, spread)

    def transform(self, vectors: np.ndarray) -> np.ndarray:
        """Centre on the reference mean and whiten (``(n, dim)``)."""
        centred = np.asarray(vectors, dtype=np.float64) - self.mean
        return centred if self.whitening is None else centred @ self.whitening

    def to_dict(self) -> dict[str, Any]:
        """The calibrated parameters; the mean and whitening are refitted from the stored rows."""
        return {
            "threshold": self.threshold,
            "scale_norm": self.scale_norm,
            "scales": self.scales,
            "spread": self.spread,
        }

    def window(self) -> ShiftWindow:
        """A fresh sliding window (one per monitored group)."""
        return ShiftWindow(self)

    def series(self, transformed: np.ndarray) -> np.ndarray:
        """The statistic after each call of a stream of transformed vectors (``-inf`` before
        the shortest window is full)."""
        out = np.full(len(transformed), -np.inf)
        sums = np.cumsum(np.vstack([np.zeros(transformed.shape[1]), transformed]), axis=0)
        squares = np.concatenate(
            [[0.0], np.cumsum(np.einsum("ij,ij->i", transformed, transformed))]
        )
        for k in self.scales:
            if k > len(transformed):
                continue
            window_sum = sums[k:] - sums[:-k]
            standardized = self.standardized(
                k, np.einsum("ij,ij->i", window_sum, window_sum), squares[k:] - squares[:-k]
            )
            out[k - 1 :] = np.maximum(out[k - 1 :], standardized)
        return out

    def standardized(self, k: int, sum_norm: Any, norms: Any) -> Any:
        """The statistic of a window of ``k`` calls, from the squared norm of their sum
        and the sum of their squared norms (floats or arrays of them).

        The mean term's null standard deviation is ``sqrt(2 k (k-1)) * scale_norm /
        (k (k-1))`` (a U-statistic of independent calls), the spread term's
        ``sqrt(k) * sd``: both are ~1 on stable traffic at every ``k``.
        """
        mean_term = (sum_norm - norms) / math.sqrt(2 * k * (k - 1)) / self.scale_norm
        if self.spread is None:
            return mean_term
        centre, deviation = self.spread
        spread_term = (norms - k * centre) / (math.sqrt(k) * deviation)
        return (mean_term + spread_term) / math.sqrt(2)

    def _calibrate(self, held: np.ndarray, rng: np.random.Generator) -> float:
        maxima = np.empty(_STREAMS)
        for stream in range(_STREAMS):
            rows = np.concatenate(
                [rng.permutation(len(held)) for _ in range(_STREAM_CALLS // len(held) + 1)]
            )[:_STREAM_CALLS]
            maxima[stream] = self.series(held[rows]).max()
        # Gumbel by moments; the maximum over N calls is the maximum of N / L
        # independent stretches of L calls: the location moves by beta * ln(N / L).
        beta = float(np.std(maxima)) * math.sqrt(6) / math.pi
        location = float(np.mean(maxima)) - _EULER * beta
        location += beta * math.log(self.spec.false_alarm_calls / _STREAM_CALLS)
        return location - beta * math.log(-math.log(1.0 - self.spec.false_alarm_rate))


class ShiftWindow:
    """The latest calls of one group, tested after every ``every`` calls.

    After an alarm the window starts afresh, so a lasting shift alarms again only on
    new evidence (the storm guard then groups the repeats).
    """

    def __init__(self, test: ShiftTest) -> None:
        self.test = test
        self._vectors: deque[np.ndarray] = deque(maxlen=max(test.scales))
        self._since_evaluated = 0

    def __len__(self) -> int:
        return len(self._vectors)

    def push(self, vector: np.ndarray) -> ShiftResult | None:
        """Add one embedding; return the evaluation when one was due."""
        self._vectors.append(self.test.transform(np.asarray(vector)[None, :])[0])
        self._since_evaluated += 1
        if self._since_evaluated < self.test.spec.every or len(self) < min(self.test.scales):
            return None
        self._since_evaluated = 0
        recent = np.asarray(self._vectors)
        best, best_calls = -math.inf, 0
        for k in self.test.scales:
            if k > len(recent):
                break
            window = recent[-k:]
            total = window.sum(axis=0)
            norms = float(np.einsum("ij,ij->", window, window))
            value = float(self.test.standardized(k, float(total @ total), norms))
            if value > best:
                best, best_calls = value, k
        shifted = best > self.test.threshold
        if shifted:
            self._vectors.clear()
        return ShiftResult(best, self.test.threshold, best_calls, shifted)


def _scales(calls: int) -> list[int]:
    """Eight lengths, ``calls`` down by half-octave steps (80: 7, 10, 14, 20, 28, 40, 57, 80),
    at least ``_SMALLEST_SCALE``: a run of new calls always nearly fills one window."""
    scales = {round(calls / math.sqrt(2) ** step) for step in range(8)}
    return sorted(k for k in scales if k >= _SMALLEST_SCALE)
