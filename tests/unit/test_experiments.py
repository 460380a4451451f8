"""Experiments: only new cells are computed, reading results runs no op, trials are averaged
per example, paired statistics are scipy's, plots hold the expected series."""

from __future__ import annotations

import itertools
import math
import random
from collections import Counter
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import pytest
from matplotlib.container import ErrorbarContainer
from scipy import stats

from weave_stream.columns.cache import MemoryCache
from weave_stream.experiments import Experiment, Variant
from weave_stream.ops import op
from weave_stream.topology.spec import Column

RUNS: Counter[str] = Counter()  # inputs each op was really run on
SERIAL = itertools.count()
LABELS = ("food", "money")
PNG_MAGIC = b"\x89PNG\r\n\x1a\n"


@op(deterministic=False)
def guess(text: str) -> str:
    RUNS["guess"] += 1
    return f"{random.choice(LABELS)}#{next(SERIAL)}"  # a new output on every trial


class PickerOp:
    """A parameterised predict op: picks 'food' with probability ``bias``."""

    def __init__(self, bias: float = 0.5) -> None:
        self.bias = bias

    def __call__(self, text: str) -> str:
        RUNS["picker"] += 1
        return f"{'food' if random.random() < self.bias else 'money'}#{next(SERIAL)}"


Picker = op(name="picker", deterministic=False)(PickerOp)


@op(name="match")
def match(output: str, expected: str) -> bool:
    RUNS["match"] += 1
    return output.split("#")[0] == expected


@op(name="match")
def match_changed(output: str, expected: str) -> bool:
    RUNS["match"] += 1
    return output.partition("#")[0] == expected  # new code, new ref: the scorer is recomputed


class FieldOp:
    """Reads one numeric field of the example (a deterministic 'model' with a parameter)."""

    def __init__(self, field: str = "a") -> None:
        self.field = field

    def __call__(self, row: dict[str, Any]) -> Any:
        RUNS["field"] += 1
        return row[self.field]


Field = op(name="field")(FieldOp)


@op(deterministic=False)
def noisy(x: float) -> float:
    RUNS["noisy"] += 1
    return x + random.gauss(0.0, 0.2)


@op
def picky(text: str) -> float:
    RUNS["picky"] += 1
    if "?" in text:
        raise ValueError("questions are not scored")
    return float(len(text))


@op
def lenient(text: str) -> float:
    RUNS["lenient"] += 1
    return float(len(text))


@pytest.fixture(autouse=True)
def reset_runs() -> None:
    RUNS.clear()


def rows(count: int, start: int = 0) -> list[dict[str, Any]]:
    return [
        {"id": f"e{i}", "text": f"example text {i}", "label": LABELS[i % 2]}
        for i in range(start, start + count)
    ]


def classification(data: Any, scorer: Any = match, **options: Any) -> Experiment:
    columns = [
        Column("predict", guess, args={"text": "inputs.text"}),
        Column("correct", scorer, args={"output": "columns.predict", "expected": "inputs.label"}),
    ]
    defaults: dict[str, Any] = {
        "variants": [Variant("guess"), Variant("picker", ops={"predict": Picker(bias=0.2)})],
        "trials": 2,
        "scores": ["correct"],
        "by": "inputs.label",
        "output": "predict",
    }
    return Experiment("clf", data=data, columns=columns, **{**defaults, **options})


def test_only_new_cells_are_computed_and_the_plan_prices_exactly_those() -> None:
    n = 6
    experiment = classification(rows(n))

    def step(exp: Experiment) -> dict[str, int]:
        planned = exp.plan()
        RUNS.clear()
        computed = exp.run().computed()
        assert planned.to_compute == sum(computed.values())  # the plan priced what ran
        assert {v: p.to_compute for v, p in planned.plans.items()} == computed
        return dict(RUNS)

    # First run: every cell of both variants (predict and its scorer, 2 trials each).
    assert step(experiment) == {"guess": n * 2, "picker": n * 2, "match": 2 * n * 2}
    # More trials: only trial 2 of each.
    more = experiment.replace(trials=3)
    assert step(more) == {"guess": n, "picker": n, "match": 2 * n}
    # A new variant: only its cells; the others come from the cache.
    third = more.with_variants(Variant("biased", ops={"predict": Picker(bias=0.9)}))
    assert step(third) == {"picker": n * 3, "match": n * 3}
    # A changed scorer: that scorer only, on every cell; the predict ops upstream never run.
    rescored = classification(
        rows(n),
        scorer=match_changed,
        variants=third.variants,
        trials=3,
        cache=third.cache,
    )
    assert step(rescored) == {"match": 3 * n * 3}
    # New examples: only theirs.
    grown = rescored.replace(data=rows(n + 2))
    assert step(grown) == {"guess": 2 * 3, "picker": 2 * 2 * 3, "match": 3 * 2 * 3}
    # Nothing new: nothing runs.
    assert step(grown) == {}


def test_a_cell_two_variants_share_is_computed_once() -> None:
    experiment = classification(
        rows(4), variants=[Variant("one"), Variant("two", ops={"correct": match_changed})]
    )
    experiment.run()
    assert RUNS == {"guess": 4 * 2, "match": 2 * 4 * 2}  # one predict for both variants


def test_summaries_comparisons_plots_and_load_call_no_op(tmp_path: Path) -> None:
    experiment = classification(rows(8), trials=3)
    result = experiment.run()
    RUNS.clear()
    summary = result.summary()
    result.summary(by="predict", ci="bootstrap")  # another grouping: still no op
    result.per_example()
    comparison = result.compare("guess", "picker")
    comparison.render()
    comparison.plot(tmp_path)
    result.failures()
    loaded = experiment.load()  # a later session: read the cache, compute nothing
    assert sum(RUNS.values()) == 0
    pd.testing.assert_frame_equal(loaded.summary(), summary)
    assert loaded.computed() == {"guess": 0, "picker": 0}


def test_load_reports_cells_not_computed_instead_of_computing_them() -> None:
    experiment = classification(rows(4))
    experiment.run()
    RUNS.clear()
    more = experiment.replace(trials=3).load()
    assert sum(RUNS.values()) == 0
    summary = more.summary().set_index(["variant", "class"])
    assert summary.loc[("guess", "all"), "not_computed"] == 4  # trial 2 of 4 examples
    assert summary.loc[("guess", "all"), "failed_trials"] == 0
    assert summary.loc[("guess", "all"), "examples"] == 4


def test_trials_are_averaged_per_example_before_any_mean_or_test() -> None:
    data = [{"id": f"x{i}", "x": float(i % 5), "group": "g"} for i in range(12)]
    experiment = Experiment(
        "trials",
        data=data,
        columns=[Column("score", noisy, args={"x": "inputs.x"})],
        variants=[Variant("a"), Variant("b", ops={"score": noisy_copy})],
        trials=4,
        scores=["score"],
    )
    result = experiment.run()
    cells = result.cells()
    cells = cells[cells["column"] == "score"]
    assert len(cells) == 2 * 12 * 4
    per_example = result.per_example()
    expected = cells.groupby(["variant", "example"])["value"].agg(["mean", "var"])
    joined = per_example.set_index(["variant", "example"]).join(expected.add_suffix("_cells"))
    assert np.allclose(joined["mean"], joined["mean_cells"])
    row = result.summary().set_index("variant").loc["a"]
    means = expected.loc["a", "mean"].to_numpy()
    low, high = stats.t.interval(0.95, len(means) - 1, loc=means.mean(), scale=stats.sem(means))
    assert row["examples"] == 12 and row["trials"] == 4  # the unit is the example
    assert row["mean"] == pytest.approx(means.mean())
    assert (row["ci_low"], row["ci_high"]) == pytest.approx((low, high))
    assert row["trial_sd"] == pytest.approx(math.sqrt(expected.loc["a", "var"].mean()))
    overall = result.compare("a", "b").overall
    paired = stats.ttest_rel(expected.loc["b", "mean"], expected.loc["a", "mean"])
    assert overall["examples"] == 12 and overall["p_value"] == pytest.approx(paired.pvalue)


@op(name="noisy", deterministic=False)
def noisy_copy(x: float) -> float:
    RUNS["noisy"] += 1
    return x + 0.3 + random.gauss(0.0, 0.2)


def scored(data: list[dict[str, Any]], **options: Any) -> Experiment:
    return Experiment(
        "paired",
        data=data,
        columns=[Column("score", Field(field="a"), args={"row": "inputs"})],
        variants=[Variant("a"), Variant("b", params={"score": {"field": "b"}})],
        scores=["score"],
        by="inputs.group",
        **options,
    )


def test_paired_statistics_equal_scipys_on_the_same_numbers() -> None:
    rng = np.random.default_rng(7)
    data = []
    for i in range(90):
        a = float(rng.normal(0.5, 0.2))
        group = ("x", "y", "z")[i % 3]
        shift = {"x": 0.1, "y": 0.0, "z": 0.03}[group]
        data.append({"id": f"r{i}", "group": group, "a": a, "b": a + shift + rng.normal(0, 0.1)})
    comparison = scored(data).run().compare("a", "b")
    frame = comparison.to_pandas().set_index("class")
    table = pd.DataFrame(data)
    raw_p = {}
    for group in ("x", "y", "z", "all"):
        part = table if group == "all" else table[table["group"] == group]
        difference = (part["b"] - part["a"]).to_numpy()
        row = frame.loc[group]
        assert row["test"] == "paired t" and row["examples"] == len(part)
        assert row["p_value"] == pytest.approx(stats.ttest_rel(part["b"], part["a"]).pvalue)
        assert row["wilcoxon_p"] == pytest.approx(stats.wilcoxon(difference).pvalue)
        interval = stats.bootstrap(
            (difference,), np.mean, n_resamples=9999, random_state=np.random.default_rng(0)
        ).confidence_interval
        assert (row["ci_low"], row["ci_high"]) == pytest.approx((interval.low, interval.high))
        assert row["difference"] == pytest.approx(difference.mean())
        raw_p[group] = row["p_value"]
    # Holm over the three classes, by hand.
    order = sorted(("x", "y", "z"), key=raw_p.__getitem__)
    running, holm = 0.0, {}
    for rank, group in enumerate(order):
        running = max(running, min(1.0, (3 - rank) * raw_p[group]))
        holm[group] = running
    for group in ("x", "y", "z"):
        assert frame.loc[group, "p_holm"] == pytest.approx(holm[group])
    assert frame.loc["x", "p_holm"] < 0.001 < frame.loc["y", "p_holm"]


def test_pass_fail_examples_compare_with_mcnemar() -> None:
    outcomes = [(1, 1)] * 20 + [(0, 1)] * 9 + [(1, 0)] * 2 + [(0, 0)] * 9
    data = [
        {"id": f"p{i}", "group": "g", "a": bool(a), "b": bool(b)}
        for i, (a, b) in enumerate(outcomes)
    ]
    row = scored(data).run().compare("a", "b").overall
    assert row["test"] == "McNemar exact"
    assert (row["improved"], row["regressed"]) == (9, 2)
    assert row["p_value"] == pytest.approx(stats.binomtest(2, 11, 0.5).pvalue)


def test_plots_are_written_and_hold_the_expected_series(tmp_path: Path) -> None:
    comparison = classification(rows(10), trials=3).run().compare("guess", "picker")
    figures = comparison.figures()
    assert set(figures) == {"by_class", "examples", "differences"}
    frame = comparison.to_pandas().set_index("class")
    classes = [*LABELS, "all"]

    by_class = figures["by_class"].axes[0]
    bars = [c for c in by_class.containers if isinstance(c, ErrorbarContainer)]
    assert [c.get_label() for c in bars] == ["guess", "picker"]
    for container, column in zip(bars, ("mean_a", "mean_b"), strict=True):
        drawn = container.lines[0].get_ydata()
        assert np.allclose(drawn, [frame.loc[c, column] for c in classes])

    examples = figures["examples"].axes[0]
    points = next(c for c in examples.containers if isinstance(c, ErrorbarContainer))
    paired = comparison.examples
    assert len(points.lines[0].get_xdata()) == len(paired) == 10
    assert np.allclose(points.lines[0].get_xdata(), paired["mean_a"])
    assert np.allclose(points.lines[0].get_ydata(), paired["mean_b"])

    differences = figures["differences"].axes[0]
    forest = next(c for c in differences.containers if isinstance(c, ErrorbarContainer))
    assert np.allclose(forest.lines[0].get_xdata(), comparison.frame["difference"])

    paths = comparison.plot(tmp_path)
    assert len(paths) == 3 and all(p.read_bytes()[:8] == PNG_MAGIC for p in paths)


def test_two_score_dimensions_draw_one_series_per_variant() -> None:
    experiment = classification(rows(6), scores=["correct", "predict"], trials=2)
    result = experiment.replace(scores=["correct"]).run()
    comparison = result.compare("guess", "picker", dimensions=("correct", "correct"))
    axes = comparison.figures()["examples"].axes[0]
    series = [c for c in axes.containers if isinstance(c, ErrorbarContainer)]
    assert [c.get_label() for c in series] == ["guess", "picker"]
    assert all(len(c.lines[0].get_xdata()) == 6 for c in series)


def test_an_op_failing_on_some_cells_keeps_the_others_and_reports_them() -> None:
    data = [{"id": f"q{i}", "text": "why?" if i % 4 == 0 else f"fine {i}"} for i in range(12)]
    experiment = Experiment(
        "failing",
        data=data,
        columns=[Column("length", picky, args={"text": "inputs.text"})],
        variants=[Variant("a"), Variant("b", ops={"length": lenient})],
        scores=["length"],
    )
    result = experiment.run()
    failures = result.failures().set_index("variant")
    assert failures.loc["a", "failed"] == 3 and failures.loc["b", "failed"] == 0
    assert "questions are not scored" in failures.loc["a", "first_error"]
    row = result.summary().set_index("variant").loc["a"]
    assert (row["examples"], row["failed_examples"], row["failed_trials"]) == (9, 3, 3)
    assert row["mean"] == pytest.approx(np.mean([len(f"fine {i}") for i in range(12) if i % 4]))


def test_every_source_of_examples_gives_the_same_examples(tmp_path: Path) -> None:
    data = rows(5)
    frame = pd.DataFrame(data)
    (tmp_path / "rows.jsonl").write_text("\n".join(pd.Series(data).map(_json)) + "\n")
    frame.to_csv(tmp_path / "rows.csv", index=False)

    class Query:  # what a calls() query or a dataset offers: to_pandas()
        def to_pandas(self) -> pd.DataFrame:
            return frame

    sources: list[Any] = [data, frame, tmp_path / "rows.jsonl", tmp_path / "rows.csv", Query()]
    seen = []
    for source in sources:
        result = classification(source, cache=MemoryCache()).run()
        per_example = result.per_example()
        seen.append(sorted(zip(per_example["example_id"], per_example["class"], strict=True)))
    assert all(found == seen[0] for found in seen)
    assert len(seen[0]) == 10  # 5 examples x 2 variants


def test_calls_and_flattened_query_rows_are_examples_as_calls() -> None:
    calls = [
        {
            "id": f"c{i}",
            "op_name": "extract",
            "started_at": 1795662000 + i,
            "ended_at": 1795662001 + i,
            "inputs": {"text": f"call text {i}", "label": LABELS[i % 2]},
            "output": {"summary": "x"},
        }
        for i in range(4)
    ]
    flattened = pd.json_normalize(calls)  # columns like inputs.text, as a query returns them

    class Query:
        def to_pandas(self) -> pd.DataFrame:
            return flattened

    for source in (calls, Query()):
        result = classification(source, cache=MemoryCache()).run()
        assert sorted(set(result.per_example()["example_id"])) == ["c0", "c1", "c2", "c3"]
        assert set(result.per_example()["class"]) == set(LABELS)


def _json(row: dict[str, Any]) -> str:
    import json

    return json.dumps(row)
