"""Every aggregator keeps the contract (initialize, add, merge, result, JSON codec), and each
one's own promise: exact moments, the sketch's relative error, bounded categories, a
uniform sample of calls and a merge-order-free worst-k."""

from __future__ import annotations

import math
import random
from collections import Counter
from collections.abc import Callable
from typing import Any

import numpy as np
import orjson
import pytest
from scipy import stats

from tests.support.windows_rows import lower_quantile
from weave_stream.windows import (
    CallSample,
    Categories,
    CostSum,
    Moments,
    Outcomes,
    QuantileSketch,
    WorstK,
)

RNG = random.Random(42)
NUMBERS = [RNG.lognormvariate(0, 1.5) * RNG.choice([-1, 1, 1]) for _ in range(600)] + [0.0] * 7


def _moments() -> tuple[Any, list[Any]]:
    return Moments(), NUMBERS


def _sketch() -> tuple[Any, list[Any]]:
    return QuantileSketch(0.01, ("p1", "p50", "p90", "p99")), NUMBERS


def _categories() -> tuple[Any, list[Any]]:
    return Categories(max_values=500), [RNG.choice("abcdefg") for _ in range(300)] + [True, 3]


def _cost() -> tuple[Any, list[Any]]:
    return CostSum(), [0.25 * (i % 4) for i in range(200)]


def _sample() -> tuple[Any, list[Any]]:
    sample = CallSample(40, call_id=lambda row: row[0], entry=lambda row: list(row))
    return sample, [(f"call-{i % 150}", i // 150) for i in range(450)]  # 150 calls x 3 trials


def _worst() -> tuple[Any, list[Any]]:
    worst = WorstK(5, "highest", score=lambda row: row[1], entry=lambda row: [row[0]])
    return worst, [(f"c{i}", RNG.random()) for i in range(300)]


FACTORIES: dict[str, Callable[[], tuple[Any, list[Any]]]] = {
    "moments": _moments,
    "sketch": _sketch,
    "categories": _categories,
    "cost": _cost,
    "call_sample": _sample,
    "worst_k": _worst,
}


def _comparable(result: Any) -> Any:
    if isinstance(result, dict):
        return {
            k: round(v, 9) if isinstance(v, float) and not math.isnan(v) else str(v)
            for k, v in result.items()
        }
    return result


def _add(aggregator: Any, state: Any, batch: list[Any]) -> Any:
    return aggregator.add(state, batch)


@pytest.mark.parametrize("name", FACTORIES)
def test_split_add_then_merge_equals_one_add(name: str) -> None:
    aggregator, values = FACTORIES[name]()
    whole = _add(aggregator, aggregator.initialize(), values)
    cut = len(values) // 3
    parts = [values[:cut], values[cut : 2 * cut], values[2 * cut :]]
    merged = aggregator.initialize()
    for part in parts:
        merged = aggregator.merge(merged, _add(aggregator, aggregator.initialize(), part))
    if name == "call_sample":  # a call's trials may come in another order from the parts
        assert sorted(aggregator.result(merged)) == sorted(aggregator.result(whole))
    else:
        assert _comparable(aggregator.result(merged)) == _comparable(aggregator.result(whole))


@pytest.mark.parametrize("name", FACTORIES)
def test_json_round_trip_keeps_the_result_and_stays_mergeable(name: str) -> None:
    aggregator, values = FACTORIES[name]()
    state = _add(aggregator, aggregator.initialize(), values)
    decoded = aggregator.decode(orjson.loads(orjson.dumps(aggregator.encode(state))))
    assert _comparable(aggregator.result(decoded)) == _comparable(aggregator.result(state))
    empty = aggregator.decode(
        orjson.loads(orjson.dumps(aggregator.encode(aggregator.initialize())))
    )
    assert _comparable(aggregator.result(empty)) == _comparable(
        aggregator.result(aggregator.initialize())
    )
    # a decoded state keeps taking values and merging
    more = _add(aggregator, decoded, values[:10])
    assert aggregator.result(aggregator.merge(more, aggregator.initialize())) is not None


@pytest.mark.parametrize("name", FACTORIES)
def test_merge_leaves_the_other_partial_unchanged(name: str) -> None:
    aggregator, values = FACTORIES[name]()
    left = _add(aggregator, aggregator.initialize(), values[:50])
    right = _add(aggregator, aggregator.initialize(), values[50:])
    before = orjson.dumps(aggregator.encode(right))
    aggregator.merge(left, right)
    assert orjson.dumps(aggregator.encode(right)) == before


def test_moments_are_exact_and_numerically_stable() -> None:
    values = [1e9 + x for x in (4.0, 7.0, 13.0, 16.0)] * 50  # large offset, small spread
    moments = Moments()
    state = moments.initialize()
    for start in range(0, len(values), 7):
        state = moments.add(state, values[start : start + 7])
    result = moments.result(state)
    assert result["count"] == 200
    assert result["mean"] == pytest.approx(np.mean(values), rel=1e-15)
    assert result["std"] == pytest.approx(np.std(values, ddof=1), rel=1e-9)
    assert (result["min"], result["max"]) == (1e9 + 4, 1e9 + 16)
    one = moments.result(moments.add(moments.initialize(), [3.0]))
    assert one["mean"] == 3.0 and math.isnan(one["std"]) and math.isnan(one["ci95_low"])


@pytest.mark.parametrize("accuracy", [0.01, 0.05])
def test_sketch_quantiles_stay_within_the_stated_relative_error(accuracy: float) -> None:
    names = ("p1", "p10", "p50", "p90", "p99", "p99.9")
    sketch = QuantileSketch(accuracy, names)
    rng = random.Random(5)
    values = [rng.lognormvariate(3, 2) * rng.choice([-1, 1, 1, 1]) for _ in range(20_000)]
    partials = [sketch.add(sketch.initialize(), values[i::4]) for i in range(4)]
    merged = sketch.initialize()
    for partial in partials:
        merged = sketch.merge(
            merged, sketch.decode(orjson.loads(orjson.dumps(sketch.encode(partial))))
        )
    figures = sketch.result(merged)
    assert figures["collapsed"] == 0.0
    for name in names:
        exact = lower_quantile(values, float(name[1:]) / 100)
        assert abs(figures[name] - exact) <= accuracy * abs(exact) + 1e-12, name


def test_sketch_says_when_it_collapsed() -> None:
    sketch = QuantileSketch(0.01, ("p50",), bin_limit=64)
    state = sketch.add(sketch.initialize(), [10.0**k for k in range(-8, 9)])
    assert sketch.result(state)["collapsed"] == 1.0


def test_categories_cap_distinct_values_under_other() -> None:
    categories = Categories(max_values=3)
    state = categories.add(categories.initialize(), [*"aaaabbbccd", "e", "e"])
    assert categories.result(state) == {"a": 4, "b": 3, "c": 2, "__other__": 3}
    other = categories.add(categories.initialize(), list("zzzzzzz"))
    merged = categories.result(categories.merge(state, other))
    assert merged == {"z": 7, "a": 4, "b": 3, "__other__": 5}
    assert sum(merged.values()) == 12 + 7


def test_outcomes_give_the_error_rate() -> None:
    outcomes = Outcomes()
    state = outcomes.add(outcomes.initialize(), (8, 2, 1))
    assert outcomes.result(state) == {
        "observations": 8,
        "errors": 2,
        "invalid": 1,
        "error_rate": 0.25,
    }
    assert math.isnan(outcomes.result(outcomes.initialize())["error_rate"])


def test_call_sample_is_uniform_over_calls_and_keeps_trials_together() -> None:
    # 200 calls, 2 trials each, sampled 10 at a time from 1000 different id sets;
    # each call position should be chosen with probability 10/200 (chi-square).
    hits: Counter[int] = Counter()
    draws = 1000
    for draw in range(draws):
        sample = CallSample(10, call_id=lambda row: row[0], entry=lambda row: list(row))
        rows = [(f"d{draw}-{i}", i, trial) for trial in (0, 1) for i in range(200)]
        state = sample.initialize()
        for start in range(0, len(rows), 64):
            state = sample.add(state, rows[start : start + 64])
        assert len(state) == 10
        assert all(sorted(e[2] for e in entries) == [0, 1] for _, entries in state.values())
        hits.update(entries[0][1] for _, entries in state.values())
    observed = [hits[position] for position in range(200)]
    _, p_value = stats.chisquare(observed)
    assert p_value > 0.001


def test_call_sample_is_the_same_however_rows_are_split_or_replayed() -> None:
    sample = CallSample(7, call_id=lambda row: row[0], entry=lambda row: list(row))
    rows = [(f"call-{i}", trial) for i in range(300) for trial in range(3)]
    whole = sample.result(sample.add(sample.initialize(), rows))
    shuffled = rows[:]
    random.Random(2).shuffle(shuffled)
    parts = [sample.add(sample.initialize(), shuffled[i::4]) for i in range(4)]
    merged = sample.initialize()
    for part in parts:
        merged = sample.merge(merged, part)
    assert sorted(sample.result(merged)) == sorted(whole)
    capped = CallSample(
        2, call_id=lambda row: row[0], entry=lambda row: list(row), max_rows_per_call=2
    )
    state = capped.add(capped.initialize(), rows)
    assert all(len(entries) == 2 for _, entries in state.values())


def test_worst_k_keeps_the_lowest_scores_in_any_merge_order() -> None:
    rows = [(f"c{i:03d}", round(random.Random(i).random(), 2)) for i in range(200)]
    worst = WorstK(4, "lowest", score=lambda row: row[1], entry=lambda row: [row[0]])
    expected = sorted((score, [call]) for call, score in rows)[:4]
    for seed in range(5):
        shuffled = rows[:]
        random.Random(seed).shuffle(shuffled)
        parts = [worst.add(worst.initialize(), shuffled[i::3]) for i in range(3)]
        merged = worst.initialize()
        for part in parts:
            merged = worst.merge(merged, part)
        assert [(score, entry) for score, entry in worst.result(merged)] == [
            (score, entry) for score, entry in expected
        ]
