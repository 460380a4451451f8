"""Intervals and tests for comparing scores: one place for the statistics weave-stream reports.

The unit is whatever the caller averaged to (an example, a call): trials are averaged
per unit *before* anything here sees them, so that ten trials of one example count
as one observation, not ten.

* :func:`mean_interval` -- a mean with its 95 % interval over units: Student's t
  (default), a seeded BCa bootstrap, or, for pass/fail units (every value 0 or 1),
  the Wilson score interval, which stays inside [0, 1] and is honest at small n;
* :func:`paired_test` -- two variants on the *same* units: the mean difference
  (B - A) with a BCa bootstrap interval, the paired t test and the Wilcoxon
  signed-rank test (scores), or the exact McNemar test (pass/fail units, on the
  discordant pairs);
* :func:`unpaired_test` -- two samples of different units: Welch's t and Mann-Whitney U;
* :func:`holm` -- Holm's step-down adjustment of p-values tested together (one per class).

All tests are two-sided and come from scipy; degenerate inputs (fewer than two
units, no variation) give a defined answer instead of a warning.

>>> interval = mean_interval([0.2, 0.4, 0.6, 0.8])
>>> round(interval.mean, 2), round(interval.low, 3), round(interval.high, 3), interval.method
(0.5, 0.089, 0.911, 't')
>>> result = paired_test([0, 0, 1, 1, 0, 0], [1, 1, 1, 1, 1, 0])
>>> result.test, result.discordant, round(result.p_value, 3)
('McNemar exact', (3, 0), 0.25)
>>> [round(p, 3) for p in holm([0.01, 0.04, 0.03])]
[0.03, 0.06, 0.06]
"""

from __future__ import annotations

import math
import warnings
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Literal

import numpy as np
import numpy.typing as npt
from scipy import stats

__all__ = [
    "IntervalMethod",
    "MeanInterval",
    "PairedResult",
    "UnpairedResult",
    "holm",
    "is_binary",
    "mean_interval",
    "paired_test",
    "unpaired_test",
]

IntervalMethod = Literal["t", "bootstrap"]
BOOTSTRAP_RESAMPLES = 9999
NAN = math.nan
_TOLERANCE = 1e-12
Numbers = Sequence[float] | npt.NDArray[np.float64]


@dataclass(frozen=True)
class MeanInterval:
    """A mean over ``n`` units and its interval; ``method`` says how it was made."""

    mean: float
    low: float
    high: float
    n: int
    method: str  # "t", "bootstrap (BCa)", "Wilson", or "-" when n < 2


@dataclass(frozen=True)
class PairedResult:
    """Variant B against variant A on the same ``n`` units (difference = B - A).

    ``test`` is the test behind ``p_value``: "paired t" for scores, "McNemar exact"
    for pass/fail units (``discordant`` = (A failed and B passed, A passed and B
    failed)). ``wilcoxon_p`` is the signed-rank test of the same differences, reported
    beside the t test as a check that does not assume normal differences.
    """

    n: int
    mean_a: float
    mean_b: float
    mean_difference: float
    ci_low: float
    ci_high: float
    test: str
    statistic: float
    p_value: float
    wilcoxon_statistic: float = NAN
    wilcoxon_p: float = NAN
    discordant: tuple[int, int] | None = None


@dataclass(frozen=True)
class UnpairedResult:
    """Two independent samples: Welch's t and Mann-Whitney U, both two-sided."""

    n_a: int
    n_b: int
    mean_a: float
    mean_b: float
    welch_t: float
    welch_p: float
    mwu_u: float
    mwu_p: float


def is_binary(values: Numbers) -> bool:
    """True when every value is 0 or 1 (a pass/fail outcome per unit).

    >>> is_binary([0, 1, 1.0]), is_binary([0, 0.5])
    (True, False)
    """
    array = np.asarray(values, dtype=float)
    return bool(array.size) and bool(np.isin(array, (0.0, 1.0)).all())


def mean_interval(
    values: Numbers,
    *,
    method: IntervalMethod = "t",
    confidence: float = 0.95,
    seed: int = 0,
) -> MeanInterval:
    """The mean of ``values`` (one per unit) and its ``confidence`` interval.

    Pass/fail units get the Wilson interval whatever ``method`` says (a t interval
    on 0/1 values can leave [0, 1] and is too narrow near 0 and 1).
    """
    array = np.asarray(values, dtype=float)
    n = int(array.size)
    if n == 0:
        return MeanInterval(NAN, NAN, NAN, 0, "-")
    mean = float(array.mean())
    if is_binary(array):
        interval = stats.binomtest(int(array.sum()), n).proportion_ci(confidence, method="wilson")
        return MeanInterval(mean, float(interval.low), float(interval.high), n, "Wilson")
    if n < 2:
        return MeanInterval(mean, NAN, NAN, n, "-")
    if _constant(array):
        return MeanInterval(mean, mean, mean, n, "t" if method == "t" else "bootstrap (BCa)")
    if method == "bootstrap":
        low, high = _bootstrap_mean(array, confidence, seed)
        return MeanInterval(mean, low, high, n, "bootstrap (BCa)")
    sem = float(stats.sem(array))
    low, high = stats.t.interval(confidence, n - 1, loc=mean, scale=sem)
    return MeanInterval(mean, float(low), float(high), n, "t")


def paired_test(a: Numbers, b: Numbers, *, confidence: float = 0.95, seed: int = 0) -> PairedResult:
    """Compare ``b`` with ``a``, unit by unit (same length, same order).

    >>> r = paired_test([0.1, 0.4, 0.5, 0.7], [0.3, 0.5, 0.9, 0.8])
    >>> r.test, round(r.mean_difference, 3), round(r.p_value, 4)
    ('paired t', 0.2, 0.0663)
    """
    a_values = np.asarray(a, dtype=float)
    b_values = np.asarray(b, dtype=float)
    if a_values.shape != b_values.shape:
        raise ValueError(
            f"paired_test needs one value of each side per unit, got {a_values.size} and "
            f"{b_values.size}"
        )
    n = int(a_values.size)
    if n == 0:
        return PairedResult(0, NAN, NAN, NAN, NAN, NAN, "-", NAN, NAN)
    difference = b_values - a_values
    mean_difference = float(difference.mean())
    low, high = _difference_interval(difference, confidence, seed)
    means = (float(a_values.mean()), float(b_values.mean()), mean_difference, low, high)
    if is_binary(a_values) and is_binary(b_values):
        improved = int(((a_values == 0) & (b_values == 1)).sum())
        regressed = int(((a_values == 1) & (b_values == 0)).sum())
        changed = improved + regressed
        # Exact McNemar: under no difference, each discordant pair goes either way at 1/2.
        p_value = stats.binomtest(regressed, changed, 0.5).pvalue if changed else 1.0
        return PairedResult(
            n,
            *means,
            test="McNemar exact",
            statistic=float(min(improved, regressed)),
            p_value=float(p_value),
            discordant=(improved, regressed),
        )
    t_statistic, t_p = _paired_t(difference)
    w_statistic, w_p = _wilcoxon(difference)
    return PairedResult(
        n,
        *means,
        test="paired t",
        statistic=t_statistic,
        p_value=t_p,
        wilcoxon_statistic=w_statistic,
        wilcoxon_p=w_p,
    )


def unpaired_test(a: Numbers, b: Numbers) -> UnpairedResult:
    """Welch's t test and the Mann-Whitney U test of two independent samples.

    >>> r = unpaired_test([1.0, 2.0, 3.0], [2.0, 3.0, 4.0, 5.0])
    >>> r.n_a, r.n_b, round(r.welch_p, 3)
    (3, 4, 0.144)
    """
    a_values = np.asarray(a, dtype=float)
    b_values = np.asarray(b, dtype=float)
    welch_t = welch_p = mwu_u = mwu_p = NAN
    if a_values.size > 1 and b_values.size > 1:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", RuntimeWarning)  # equal constant samples: nan
            welch = stats.ttest_ind(a_values, b_values, equal_var=False)
        mwu = stats.mannwhitneyu(a_values, b_values, alternative="two-sided")
        welch_t, welch_p = float(welch.statistic), float(welch.pvalue)
        mwu_u, mwu_p = float(mwu.statistic), float(mwu.pvalue)
    return UnpairedResult(
        int(a_values.size),
        int(b_values.size),
        float(a_values.mean()) if a_values.size else NAN,
        float(b_values.mean()) if b_values.size else NAN,
        welch_t,
        welch_p,
        mwu_u,
        mwu_p,
    )


def holm(p_values: Sequence[float]) -> list[float]:
    """Holm-adjusted p-values (same order); NaN stays NaN and is not counted as a test.

    Holm controls the chance of *any* false "significant" among the classes tested,
    without assuming they are independent, and is never less powerful than Bonferroni.
    """
    tested = sorted((p, i) for i, p in enumerate(p_values) if not math.isnan(p))
    adjusted = [NAN] * len(p_values)
    running = 0.0
    for rank, (p, index) in enumerate(tested):
        running = max(running, min(1.0, (len(tested) - rank) * p))
        adjusted[index] = running
    return adjusted


def _constant(values: npt.NDArray[np.float64]) -> bool:
    """No spread beyond float rounding (0.1 + 0.3 - 0.1 is not exactly 0.3)."""
    return bool(np.ptp(values) <= _TOLERANCE * max(1.0, float(np.abs(values).max())))


def _paired_t(difference: npt.NDArray[np.float64]) -> tuple[float, float]:
    if difference.size < 2:
        return NAN, NAN
    if _constant(difference):
        # Every unit moved by the same amount: no spread to test against.
        shift = float(difference.mean())
        return (0.0, 1.0) if abs(shift) <= _TOLERANCE else (math.copysign(math.inf, shift), 0.0)
    result = stats.ttest_1samp(difference, 0.0)
    return float(result.statistic), float(result.pvalue)


def _wilcoxon(difference: npt.NDArray[np.float64]) -> tuple[float, float]:
    if difference.size < 2:
        return NAN, NAN
    if not np.any(np.abs(difference) > _TOLERANCE):
        return 0.0, 1.0  # nothing changed: scipy would divide by zero
    # Float rounding must not turn "no change" into a tiny signed rank.
    result = stats.wilcoxon(np.round(difference, 12))
    return float(result.statistic), float(result.pvalue)


def _difference_interval(
    difference: npt.NDArray[np.float64], confidence: float, seed: int
) -> tuple[float, float]:
    if difference.size < 2:
        return NAN, NAN
    if _constant(difference):
        value = float(difference.mean())
        return value, value
    return _bootstrap_mean(difference, confidence, seed)


def _bootstrap_mean(
    values: npt.NDArray[np.float64], confidence: float, seed: int
) -> tuple[float, float]:
    """BCa interval of the mean; the percentile interval where BCa is undefined (tiny n)."""
    for method in ("BCa", "percentile"):
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", RuntimeWarning)
            result = stats.bootstrap(
                (values,),
                np.mean,
                n_resamples=BOOTSTRAP_RESAMPLES,
                confidence_level=confidence,
                method=method,
                random_state=np.random.default_rng(seed),
            )
        low, high = float(result.confidence_interval.low), float(result.confidence_interval.high)
        if not (math.isnan(low) or math.isnan(high)):
            return low, high
    return NAN, NAN
