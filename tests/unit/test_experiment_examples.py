"""The shipped examples (examples/) load, and the classifier one runs on real corpus text."""

from __future__ import annotations

import importlib.util
from pathlib import Path
from types import ModuleType

from weave_stream.experiments.loader import load_experiment

REPO = Path(__file__).resolve().parents[2]


def example_module(name: str) -> ModuleType:
    spec = importlib.util.spec_from_file_location(f"examples_{name}", REPO / "examples" / name)
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_the_classifier_example_compares_two_variants_per_class(tmp_path: Path) -> None:
    module = example_module("classifier_variants.py")
    experiment = module.experiment(tmp_path, per_category=3)
    result = experiment.run()
    comparison = result.compare("names", "described", score="correct")
    frame = comparison.to_pandas().set_index("class")
    assert list(frame.index) == [*sorted(module.CATEGORIES), "all"]
    assert set(frame["test"]) == {"McNemar exact"}  # pass/fail per example
    assert frame.loc["all", "examples"] == 3 * len(module.CATEGORIES)
    assert frame["p_holm"].drop("all").ge(frame["p_value"].drop("all")).all()
    # The predictions differ between the variants (the descriptions change the labels' vectors).
    refs = {name: t.column("predict").op.ref for name, t in experiment.topologies.items()}
    assert refs["names"] != refs["described"]
    assert experiment.plan().to_compute == 0  # the second run would compute nothing


def test_the_judge_prompts_example_loads_with_its_comparison_and_explain_column() -> None:
    spec = load_experiment(REPO / "examples" / "judge_prompts.yaml")
    experiment = spec.experiment
    assert spec.compare == ("stays", "covers") and spec.explain == "why"
    assert len(experiment.examples) == 60 and experiment.trials == 3
    judges = {v: t.column("judge").op.ref for v, t in experiment.topologies.items()}
    assert judges["stays"] != judges["covers"]  # the prompt is part of the version
    why = {v: t.column("why").op.ref for v, t in experiment.topologies.items()}
    assert why["stays"] == why["covers"]  # the explain column is shared
