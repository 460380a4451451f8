"""Two classifier variants compared per class, on real text (chatterbot-corpus).

The same zero-shot ``classify`` op twice: ``names`` knows each label by its name only,
``described`` by a sentence describing it. A deterministic scorer says whether the
predicted label is the conversation's category (pass/fail), so the comparison is
McNemar's exact test per class (Holm-adjusted), plus the paired difference of accuracy
with its bootstrap interval. Run from the repository root:

    .venv/bin/python examples/classifier_variants.py [OUT_DIR]

The result cache is a SQLite file under OUT_DIR: run it twice and the second run
computes nothing (it says so); change ``correct`` below and only it is recomputed.
"""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Any

from weave_stream.columns.cache import SqliteCache
from weave_stream.demo.samples import corpus_examples
from weave_stream.experiments import Experiment, Variant
from weave_stream.ops import Classify, op
from weave_stream.topology.spec import Column

CATEGORIES = ["ai", "coding", "money", "science", "humor", "psychology"]
DESCRIPTIONS = {
    "ai": "artificial intelligence, robots, chatbots and machine learning",
    "coding": "programming, source code, algorithms and software languages",
    "money": "money, banking, prices, investing and the economy",
    "science": "physics, chemistry, biology, astronomy and scientific laws",
    "humor": "jokes, puns, funny stories and riddles",
    "psychology": "feelings, the mind, personality and how people behave",
}


@op
def correct(predicted: dict[str, Any], expected: str) -> bool:
    """Pass when the predicted label is the expected category."""
    return bool(predicted["label"] == expected)


def experiment(out: Path, per_category: int = 25) -> Experiment:
    """The experiment over ``per_category`` conversations of each category."""
    rows = corpus_examples(categories=CATEGORIES, per_category=per_category, form="documents")
    return Experiment(
        "classifier-variants",
        data=rows,
        columns=[
            Column("predict", Classify(labels=CATEGORIES), args={"text": "inputs.text"}),
            Column(
                "correct",
                correct,
                args={"predicted": "columns.predict", "expected": "inputs.category"},
            ),
        ],
        variants=[
            Variant("names"),
            Variant("described", params={"predict": {"labels": DESCRIPTIONS}}),
        ],
        scores=["correct", "predict.confidence"],
        by="inputs.category",
        output="predict",
        cache=SqliteCache(out / "cache.sqlite"),
    )


def main(out: Path) -> None:
    """Plan, run, summarise, compare and plot."""
    out.mkdir(parents=True, exist_ok=True)
    exp = experiment(out)
    plan = exp.plan()
    print(f"to compute: {plan.to_compute} cells")
    result = exp.run()
    print("computed now:", result.computed())
    print(result.summary("correct").to_string(index=False, float_format=lambda x: f"{x:.3g}"))
    comparison = result.compare(
        "names", "described", score="correct", dimensions=("predict.confidence", "correct")
    )
    print(comparison.render())
    for path in comparison.plot(out):
        print("wrote", path)


if __name__ == "__main__":
    main(Path(sys.argv[1]) if len(sys.argv) > 1 else Path("experiment-output/classifiers"))
