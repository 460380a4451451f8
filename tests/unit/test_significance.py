"""aggregates.significance: intervals and tests equal scipy's; degenerate inputs are defined."""

from __future__ import annotations

import math
import warnings

import numpy as np
import pytest
from scipy import stats

from weave_stream.aggregates.significance import holm, mean_interval, paired_test, unpaired_test


def test_mean_intervals_are_t_bootstrap_or_wilson_as_scipy_computes_them() -> None:
    values = np.random.default_rng(3).normal(0.4, 0.2, 40)
    t = mean_interval(values)
    low, high = stats.t.interval(0.95, 39, loc=values.mean(), scale=stats.sem(values))
    assert (t.low, t.high, t.method) == (pytest.approx(low), pytest.approx(high), "t")
    boot = mean_interval(values, method="bootstrap", seed=5)
    expected = stats.bootstrap(
        (values,), np.mean, random_state=np.random.default_rng(5)
    ).confidence_interval
    assert (boot.low, boot.high) == (pytest.approx(expected.low), pytest.approx(expected.high))
    passed = [1] * 7 + [0] * 3
    wilson = mean_interval(passed, method="bootstrap")  # pass/fail: Wilson whatever was asked
    interval = stats.binomtest(7, 10).proportion_ci(0.95, method="wilson")
    assert wilson.method == "Wilson" and wilson.low == pytest.approx(interval.low)


def test_degenerate_inputs_give_defined_answers_without_warnings() -> None:
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        assert mean_interval([]).n == 0 and math.isnan(mean_interval([]).mean)
        one = mean_interval([0.3])
        assert one.mean == 0.3 and math.isnan(one.low) and one.method == "-"
        flat = mean_interval([0.3, 0.3, 0.3], method="bootstrap")
        assert (flat.low, flat.high) == (0.3, 0.3)
        same = paired_test([0.1, 0.2, 0.3], [0.1, 0.2, 0.3])
        assert (same.p_value, same.wilcoxon_p, same.ci_low, same.ci_high) == (1.0, 1.0, 0.0, 0.0)
        shifted = paired_test([0.1, 0.2, 0.3], [0.4, 0.5, 0.6])  # every example moved by 0.3
        assert shifted.p_value == 0.0 and shifted.mean_difference == pytest.approx(0.3)
        nothing_changed = paired_test([1, 0, 1], [1, 0, 1])
        assert nothing_changed.test == "McNemar exact" and nothing_changed.p_value == 1.0
        assert math.isnan(unpaired_test([1.0], [2.0, 3.0]).welch_p)
    with pytest.raises(ValueError, match="one value of each side per unit, got 2 and 3"):
        paired_test([1.0, 2.0], [1.0, 2.0, 3.0])


def test_holm_adjusts_step_down_and_keeps_nan_out() -> None:
    assert holm([0.01, 0.04, math.nan, 0.03]) == pytest.approx(
        [0.03, 0.06, math.nan, 0.06], nan_ok=True
    )
    assert holm([0.5, 0.9]) == [1.0, 1.0]
    assert holm([]) == []
