"""Distribution shift: is a window of embeddings drawn from the reference's distribution?

Per-example novelty misses a shift when the reference is varied: documents of a
new kind can each lie near *some* known document. A two-sample test compares the
window as a whole with a sample of the reference (the *base*):

* ``mmd``: squared maximum mean discrepancy, RBF kernel with the median pairwise
  distance of the base as bandwidth (sensitive to any change of distribution);
* ``centroid``: squared distance between the window's and the base's centroids
  (cheaper; sensitive to a move of the mean).

Both are ``v' K v`` for a weight vector ``v`` (``1/w`` on the window, ``-1/m`` on
the base) and a kernel matrix ``K`` (RBF, or linear for centroids), so one
permutation test serves both: ``permutation`` compares the window's statistic with
the statistic of random re-splits of the pooled vectors (a p-value per window,
exact under "no shift"); ``held_out`` fixes a threshold once, as the
``1 - false_alarm_rate`` quantile of the statistic over windows of reference
vectors kept out of the base (cheap per window; needs a reference at least five
windows larger than the base, and the threshold is slightly optimistic when the
pool of held-out vectors is only a few windows large).

>>> import numpy as np
>>> from weave_stream.topology.monitors import ShiftSpec
>>> rng = np.random.default_rng(0)
>>> reference = rng.normal(size=(600, 8)).astype(np.float32)
>>> test = WindowTest.from_reference(reference, ShiftSpec(window=50, permutations=199,
...                                  false_alarm_rate=0.01, reference_sample=300))
>>> test.test(rng.normal(size=(50, 8))).shifted, test.test(rng.normal(size=(50, 8)) + 1).shifted
(False, True)
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any

import numpy as np

from weave_stream.errors import TopologyError
from weave_stream.topology.monitors import ShiftSpec

__all__ = ["WindowResult", "WindowTest"]

_BANDWIDTH_SAMPLE = 500
_HELD_OUT_POOL = 4_000
_POOL_WINDOWS = 4


@dataclass(frozen=True)
class WindowResult:
    """The test of one window: its statistic, the threshold, the p-value (permutation)."""

    statistic: float
    threshold: float
    p_value: float | None
    shifted: bool


class WindowTest:
    """A two-sample test of windows against a fixed base sample of the reference."""

    def __init__(
        self,
        base: np.ndarray,
        spec: ShiftSpec,
        *,
        bandwidth: float,
        threshold: float | None = None,
        seed: int = 0,
    ) -> None:
        self.base = np.ascontiguousarray(base, dtype=np.float32)
        self.spec = spec
        self.bandwidth = bandwidth
        self.threshold = threshold
        self.base_rows: np.ndarray | None = None  # rows of the reference, when sampled from it
        self._gamma = 1.0 / (2.0 * bandwidth * bandwidth)
        self._rng = np.random.default_rng(seed)
        self._base_term = float(self._kernel(self.base, self.base).mean())

    @classmethod
    def from_reference(
        cls, reference: np.ndarray, spec: ShiftSpec, *, seed: int = 0, where: str = "monitor"
    ) -> WindowTest:
        """Sample the base from ``reference``, pick the bandwidth, calibrate if ``held_out``."""
        vectors = np.ascontiguousarray(reference, dtype=np.float32)
        rng = np.random.default_rng(seed)
        order = rng.permutation(len(vectors))
        if spec.calibration == "held_out":
            # Windows are drawn from the reference vectors left out of the base; a pool
            # of only a few windows would make them too alike (and the threshold low).
            base_size = min(spec.reference_sample, len(vectors) - _POOL_WINDOWS * spec.window)
            if base_size < spec.window:
                raise TopologyError(
                    f"{where}: a reference of {len(vectors)} examples is too small for "
                    f"held_out calibration with windows of {spec.window}: it needs at least "
                    f"{(_POOL_WINDOWS + 1) * spec.window}; use calibration: permutation, a "
                    "smaller window, or a larger reference"
                )
        else:
            base_size = min(spec.reference_sample, len(vectors))
        base_rows = np.sort(order[:base_size])
        base = vectors[base_rows]
        bandwidth = _median_distance(base, rng)
        test = cls(base, spec, bandwidth=bandwidth, seed=seed)
        test.base_rows = base_rows
        if spec.calibration == "held_out":
            test.threshold = test._held_out_threshold(vectors[order[base_size:]])
        return test

    def to_dict(self) -> dict[str, Any]:
        """The calibrated parameters (the base is stored by the caller, e.g. as ids)."""
        return {"bandwidth": self.bandwidth, "threshold": self.threshold}

    def test(self, window: np.ndarray) -> WindowResult:
        """Test one window of embeddings (``(w, dim)``) against the base."""
        vectors = np.ascontiguousarray(window, dtype=np.float32)
        if self.spec.calibration == "held_out":
            if self.threshold is None:
                raise TopologyError(
                    "a held_out window test has no calibrated threshold; build it with "
                    "WindowTest.from_reference or pass the stored threshold"
                )
            statistic = self._statistic(vectors)
            return WindowResult(statistic, self.threshold, None, statistic > self.threshold)
        return self._permutation_test(vectors)

    def _kernel(self, left: np.ndarray, right: np.ndarray) -> np.ndarray:
        if self.spec.statistic == "centroid":
            return left @ right.T
        squared = (
            np.einsum("ij,ij->i", left, left)[:, None]
            + np.einsum("ij,ij->i", right, right)[None, :]
            - 2.0 * (left @ right.T)
        )
        return np.exp(-self._gamma * np.maximum(squared, 0.0))

    def _statistic(self, window: np.ndarray) -> float:
        within = float(self._kernel(window, window).mean())
        across = float(self._kernel(window, self.base).mean())
        return max(0.0, within + self._base_term - 2.0 * across)

    def _held_out_threshold(self, held_out: np.ndarray) -> float:
        # Kernel values of the pool are computed once; each window is then a gather.
        pool = held_out[: max(_HELD_OUT_POOL, 4 * self.spec.window)]
        within_pool = self._kernel(pool, pool)
        across_base = self._kernel(pool, self.base).mean(axis=1)
        size = self.spec.window
        rounds = min(2_000, max(200, math.ceil(20 / self.spec.false_alarm_rate)))
        statistics = np.empty(rounds)
        for round_number in range(rounds):
            rows = self._rng.choice(len(pool), size, replace=False)
            within = float(within_pool[np.ix_(rows, rows)].mean())
            across = float(across_base[rows].mean())
            statistics[round_number] = within + self._base_term - 2.0 * across
        return float(np.quantile(statistics, 1.0 - self.spec.false_alarm_rate))

    def _permutation_test(self, window: np.ndarray) -> WindowResult:
        size, base_size = len(window), len(self.base)
        pooled = np.vstack([window, self.base])
        total, rounds = len(pooled), self.spec.permutations
        weights = np.full((rounds + 1, total), -1.0 / base_size, dtype=np.float32)
        weights[0, :size] = 1.0 / size  # row 0: the observed split
        chosen = np.argsort(self._rng.random((rounds, total), dtype=np.float32), axis=1)[:, :size]
        np.put_along_axis(weights[1:], chosen, 1.0 / size, axis=1)
        if self.spec.statistic == "centroid":
            statistics = np.square(weights @ pooled).sum(axis=1)
        else:
            kernel = self._kernel(pooled, pooled).astype(np.float32)
            statistics = np.einsum("pn,pn->p", weights @ kernel, weights)
        observed, permuted = float(statistics[0]), statistics[1:]
        p_value = (1.0 + float(np.sum(permuted >= observed))) / (rounds + 1.0)
        threshold = float(np.quantile(permuted, 1.0 - self.spec.false_alarm_rate))
        return WindowResult(observed, threshold, p_value, p_value <= self.spec.false_alarm_rate)


def _median_distance(vectors: np.ndarray, rng: np.random.Generator) -> float:
    if len(vectors) > _BANDWIDTH_SAMPLE:
        vectors = vectors[rng.choice(len(vectors), _BANDWIDTH_SAMPLE, replace=False)]
    norms = np.einsum("ij,ij->i", vectors, vectors)
    squared = norms[:, None] + norms[None, :] - 2.0 * (vectors @ vectors.T)
    upper = squared[np.triu_indices(len(vectors), k=1)]
    median = float(np.sqrt(np.median(np.maximum(upper, 0.0)))) if len(upper) else 0.0
    return median if median > 0 else 1.0
