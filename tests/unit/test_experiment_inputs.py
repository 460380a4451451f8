"""Bad experiment input is refused before anything runs, with a message that names the fix."""

from __future__ import annotations

from collections import Counter
from pathlib import Path
from typing import Any

import pandas as pd
import pytest

from weave_stream.errors import BudgetExceededError, ExperimentError
from weave_stream.experiments import Experiment, Variant
from weave_stream.experiments.loader import experiment_from_dict
from weave_stream.ops import CostEstimate, op
from weave_stream.topology.spec import Column, Source, Topology

RUNS: Counter[str] = Counter()


@op(cost=CostEstimate(tokens=100, usd=0.01))
def priced(text: str) -> int:
    RUNS["priced"] += 1
    return len(text)


@op
def length(text: str) -> int:
    RUNS["length"] += 1
    return len(text)


@op
def label(text: str) -> str:
    return text.split()[0]


class ScaleOp:
    def __init__(self, factor: float = 1.0) -> None:
        self.factor = factor

    def __call__(self, text: str) -> float:
        return len(text) * self.factor


Scale = op(name="scale")(ScaleOp)

ROWS = [{"id": f"r{i}", "text": f"row number {i}", "kind": "ab"[i % 2]} for i in range(6)]


@pytest.fixture(autouse=True)
def reset_runs() -> None:
    RUNS.clear()


def build(**options: Any) -> Experiment:
    spec: dict[str, Any] = {
        "data": ROWS,
        "columns": [Column("n", Scale(), args={"text": "inputs.text"})],
        "variants": [Variant("a"), Variant("b", params={"n": {"factor": 2.0}})],
        "scores": ["n"],
        **options,
    }
    return Experiment("bad", **spec)


def test_a_variant_name_used_twice_is_refused() -> None:
    with pytest.raises(ExperimentError, match="variant name 'a' is used twice; give each"):
        build(variants=[Variant("a"), Variant("a")])
    with pytest.raises(ExperimentError, match=r"variant 'a b': use 1-50 letters"):
        build(variants=[Variant("a b")])


def test_a_varied_parameter_the_op_does_not_take_is_refused_naming_those_it_takes() -> None:
    with pytest.raises(
        ExperimentError,
        match=r"variant 'b', column 'n', params: op 'scale' has no parameter 'factr'; "
        r"its parameters: factor",
    ):
        build(variants=[Variant("a"), Variant("b", params={"n": {"factr": 2}})])
    function_op = [Column("n", length, args={"text": "inputs.text"})]
    with pytest.raises(ExperimentError, match="is a function: it has no parameters to vary"):
        build(columns=function_op, variants=[Variant("b", params={"n": {"factor": 2}})])
    with pytest.raises(ExperimentError, match=r"params: no column \['m'\] to change; the columns"):
        build(variants=[Variant("b", params={"m": {"factor": 2}})])
    named = [Column("c", "classify", params={"labels": ["x", "y"]}, args={"text": "inputs.text"})]
    with pytest.raises(ExperimentError, match="has no parameter 'label'; its parameters: labels"):
        build(columns=named, scores=[], variants=[Variant("b", params={"c": {"label": ["z"]}})])


@pytest.mark.parametrize("trials", [0, -1, 1.5, True, "3"])
def test_trials_below_one_or_not_whole_are_refused(trials: Any) -> None:
    with pytest.raises(ExperimentError, match="trials must be a whole number >= 1"):
        build(trials=trials)


def test_data_with_no_rows_is_refused(tmp_path: Path) -> None:
    empty_file = tmp_path / "empty.jsonl"
    empty_file.write_text("\n")

    class EmptyQuery:
        def to_pandas(self) -> pd.DataFrame:
            return pd.DataFrame()

    for data in ([], pd.DataFrame(), empty_file, EmptyQuery()):
        with pytest.raises(ExperimentError, match="the data has no rows; give a DataFrame"):
            build(data=data)
    with pytest.raises(ExperimentError, match="does not exist"):
        build(data=tmp_path / "missing.jsonl")
    bad = tmp_path / "bad.jsonl"
    bad.write_text('{"text": "ok"}\n{oops\n')
    with pytest.raises(ExperimentError, match="line 2 is not JSON"):
        build(data=bad)


def test_mismatched_examples_are_refused_in_a_paired_comparison_unless_asked() -> None:
    experiment = build(
        variants=[Variant("a"), Variant("b", slice={"inputs.kind": "a"})], by="inputs.kind"
    )
    result = experiment.run()
    with pytest.raises(
        ExperimentError, match=r"3 only in 'a', 0 only in 'b'.*common=True \(--common\)"
    ):
        result.compare("a", "b")
    shared = result.compare("a", "b", common=True)
    assert shared.overall["examples"] == 3
    with pytest.raises(ExperimentError, match="has no variant 'c'; its variants: a, b"):
        result.compare("a", "c")
    with pytest.raises(ExperimentError, match="against itself"):
        result.compare("a", "a")


def test_a_class_that_differs_between_variants_cannot_pair() -> None:
    columns = [
        Column("kind", label, args={"text": "inputs.text"}),
        Column("n", length, args={"text": "inputs.text"}),
    ]
    experiment = build(
        columns=columns,
        variants=[Variant("a"), Variant("b", ops={"kind": length})],
        by="kind",
    )
    with pytest.raises(ExperimentError, match="group by a field of the examples instead"):
        experiment.run().compare("a", "b")


def test_a_score_of_labels_and_unknown_columns_are_refused() -> None:
    columns = [Column("kind", label, args={"text": "inputs.text"})]
    result = build(columns=columns, scores=["kind"], variants=[Variant("a")]).run()
    with pytest.raises(ExperimentError, match=r"holds str values .* not numbers; score a numeric"):
        result.summary()
    with pytest.raises(ExperimentError, match="'nope' names no column; the columns are kind"):
        build(columns=columns, scores=["nope"], variants=[Variant("a")])


def test_a_plan_over_budget_refuses_to_start_and_runs_nothing() -> None:
    experiment = build(
        columns=[Column("n", priced, args={"text": "inputs.text"})], variants=[Variant("a")]
    )
    plan = experiment.plan()
    assert plan.total.usd == pytest.approx(0.06) and plan.to_compute == 6
    with pytest.raises(BudgetExceededError, match=r"costs an estimated \$0.0600, over the \$0.05"):
        experiment.run(budget=0.05)
    assert sum(RUNS.values()) == 0
    experiment.run(budget=0.10)
    assert RUNS["priced"] == 6
    assert experiment.plan().to_compute == 0


def test_whole_topology_and_slice_variants_run_their_own_columns() -> None:
    other = Topology(
        "other",
        [Column("n", length, args={"text": "inputs.text"})],
        source=Source(filter={"inputs.kind": "b"}),
    )
    experiment = build(
        variants=[
            Variant("a"),
            Variant("t", topology=other),
            Variant("s", slice={"inputs.kind": "a"}),
        ]
    )
    summary = experiment.run().summary().set_index("variant")
    assert list(summary["examples"]) == [6, 3, 3]
    assert summary.loc["t", "mean"] == pytest.approx(len("row number 1"))


def test_the_yaml_form_is_validated_before_anything_runs(tmp_path: Path) -> None:
    base: dict[str, Any] = {
        "name": "y",
        "data": [{"text": "a b c"}],
        "columns": [
            {
                "name": "n",
                "op": "classify",
                "params": {"labels": ["x", "y"]},
                "args": {"text": "inputs.text"},
            }
        ],
    }
    with pytest.raises(ExperimentError, match=r"unknown fields \['trails'\]"):
        experiment_from_dict({**base, "trails": 3})
    with pytest.raises(ExperimentError, match="compare: no variant 'z'"):
        experiment_from_dict({**base, "variants": ["a", "b"], "compare": ["a", "z"]})
    with pytest.raises(ExperimentError, match=r"variant 'b': unknown fields \['param'\]"):
        experiment_from_dict({**base, "variants": [{"name": "b", "param": {}}]})
    with pytest.raises(ExperimentError, match="data: give a file"):
        experiment_from_dict({**base, "data": 3})
    with pytest.raises(ExperimentError, match="trials must be a whole number"):
        experiment_from_dict({**base, "trials": 0})
