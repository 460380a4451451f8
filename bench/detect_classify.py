"""Zero-shot and few-shot accuracy of the ``classify`` op beside plain baselines (for detect.py).

Three tasks of 10 or more classes of real text (tests/support/corpora.py):

* ``topics``: chat turns of chatterbot-corpus in 10 topics (ai, computers, emotion,
  food, literature, money, movies, politics, science, sports), 510 texts;
* ``kinds``: 80 texts of each of the 10 kinds of the corpora (chat, trivia, coding,
  jokes, Python docs, news, reviews, encyclopedia, Spanish, German);
* ``docs``: passages of the Python language reference (pydoc_data) in the 11
  sections with at least 17 passages (types, compound statements, special method
  names, comparisons, ...), 359 texts. Added after the op's defaults were chosen on
  the first two, as a check that they generalise; its descriptions were written
  once, from the section titles, and not tuned.

Zero-shot baseline: cosine similarity to the embedding of each one-line
description. Few-shot (3 labelled examples per class, 5 draws): the baseline is the
centroid of the examples alone. Each at the op's defaults and with the opt-in
``calibration`` (200 unlabelled texts of the task, scored on the others), e.g.
``python -m bench.detect_classify`` for these figures alone. The subject is the
op's own prototypes, computed on the cached embeddings (the op's
``_fold_feedback``/``_centroid_results``, so the model is not run again for every
draw; it does embed the descriptions, examples and calibration texts).
"""

from __future__ import annotations

import json
from typing import Any

import numpy as np

from tests.support.corpora import PYTHON_SECTIONS, embed, labelled, texts
from weave_stream.ops.classify import ClassifyOp

TOPICS = {
    "ai": "artificial intelligence, robots and chatbots",
    "computers": "computers, software and hardware",
    "emotion": "feelings and emotions",
    "food": "food, eating and cooking",
    "literature": "books, authors and literature",
    "money": "money, banking and finance",
    "movies": "movies, films and actors",
    "politics": "politics, government and elections",
    "science": "science, physics, chemistry and biology",
    "sports": "sports, games and athletes",
}
KINDS = {
    "chat": "small talk with a chatbot",
    "trivia": "a trivia quiz question",
    "coding": "a request to write a program",
    "jokes": "a joke about programmers",
    "python_docs": "Python language reference documentation",
    "news": "a news report",
    "reviews": "a movie review",
    "encyclopedia": "an encyclopedia article",
    "spanish": "a text in Spanish",
    "german": "a text in German",
}
DOCS = PYTHON_SECTIONS
TASKS = ("topics", "kinds", "docs")


def task(name: str) -> tuple[list[str], np.ndarray, dict[str, str]]:
    """Texts, label numbers and label descriptions of a task."""
    if name == "topics":
        return (*labelled("chat", TOPICS), TOPICS)
    if name == "docs":
        return (*labelled("python_docs", DOCS), DOCS)
    documents: list[str] = []
    numbers: list[int] = []
    for number, kind in enumerate(KINDS):
        documents += texts(kind).texts[:80]
        numbers += [number] * len(texts(kind).texts[:80])
    return documents, np.array(numbers), KINDS


def op_accuracy(op: ClassifyOp, vectors: np.ndarray, truth: np.ndarray, rows: np.ndarray) -> float:
    op._fold_feedback()
    names = list(op.labels)
    predicted = [names.index(r.value["label"]) for r in op._centroid_results(vectors[rows])]
    return float(np.mean(np.array(predicted) == truth[rows]))


def plain_accuracy(
    vectors: np.ndarray, truth: np.ndarray, rows: np.ndarray, targets: np.ndarray
) -> float:
    """The baseline: nearest of ``targets`` (one vector a class) by cosine."""
    return float(np.mean(np.argmax(vectors[rows] @ targets.T, axis=1) == truth[rows]))


def figure(
    bench: str, name: str, setting: str, values: list[float], baselines: list[float], **extra: Any
) -> dict[str, Any]:
    value, baseline = float(np.mean(values)), float(np.mean(baselines))
    return {
        "bench": bench,
        "task": name,
        "setting": setting,
        **extra,
        "value": round(value, 3),
        "worst": round(min(values), 3),
        "baseline": round(baseline, 3),
        "baseline_worst": round(min(baselines), 3),
        "ratio": round(value / baseline, 3),
    }


def classify_figures(seeds: int = 5, calibration_size: int = 200) -> list[dict[str, Any]]:
    """Figures per task: zero-shot and few-shot, at the defaults and with ``calibration``.

    ``calibrated``: the op is given ``calibration_size`` unlabelled texts of the task
    (a draw per seed, never the labelled examples) and scored on the texts outside it,
    beside the baseline on the same texts.
    """
    figures: list[dict[str, Any]] = []
    for name in TASKS:
        documents, truth, described = task(name)
        vectors = embed(tuple(documents))
        everything = np.arange(len(documents))
        descriptions = embed(tuple(described.values()))
        zero = op_accuracy(ClassifyOp(labels=described), vectors, truth, everything)
        baseline = plain_accuracy(vectors, truth, everything, descriptions)
        figures.append(figure("zero_shot_accuracy", name, "default", [zero], [baseline]))
        calibrated, plain = [], []
        for draw in range(seeds):
            rng = np.random.default_rng(100 + draw)
            sample = rng.choice(everything, calibration_size, replace=False)
            rest = np.setdiff1d(everything, sample)
            op = ClassifyOp(labels=described, calibration=[documents[i] for i in sample])
            calibrated.append(op_accuracy(op, vectors, truth, rest))
            plain.append(plain_accuracy(vectors, truth, rest, descriptions))
        figures.append(
            figure("zero_shot_accuracy", name, "calibrated", calibrated, plain, draws=seeds)
        )
        results: dict[str, list[float]] = {"default": [], "calibrated": [], "plain": []}
        plain_calibrated: list[float] = []
        for draw in range(seeds):
            rng = np.random.default_rng(draw)
            shots = np.concatenate(
                [
                    rng.choice(np.flatnonzero(truth == c), 3, replace=False)
                    for c in range(len(described))
                ]
            )
            rest = np.setdiff1d(everything, shots)
            examples = {
                label: [documents[i] for i in shots if truth[i] == c]
                for c, label in enumerate(described)
            }
            op = ClassifyOp(labels=described, examples=examples)
            results["default"].append(op_accuracy(op, vectors, truth, rest))
            centroids = np.stack(
                [vectors[shots[truth[shots] == c]].mean(axis=0) for c in range(len(described))]
            )
            results["plain"].append(plain_accuracy(vectors, truth, rest, centroids))
            sample = rng.choice(rest, calibration_size, replace=False)
            held_out = np.setdiff1d(rest, sample)
            op = ClassifyOp(
                labels=described, examples=examples, calibration=[documents[i] for i in sample]
            )
            results["calibrated"].append(op_accuracy(op, vectors, truth, held_out))
            plain_calibrated.append(plain_accuracy(vectors, truth, held_out, centroids))
        for setting, baselines in (("default", results["plain"]), ("calibrated", plain_calibrated)):
            figures.append(
                figure(
                    "few_shot_accuracy",
                    name,
                    setting,
                    results[setting],
                    baselines,
                    shots=3,
                    draws=seeds,
                )
            )
    return figures


def print_figures(figures: list[dict[str, Any]]) -> None:
    """A readable table of the figures, then each as one JSON line."""
    print(f"{'figure':20} {'task':7} {'setting':11} {'mean':>6} {'worst':>6} {'baseline':>9}")
    for f in figures:
        print(
            f"{f['bench']:20} {f['task']:7} {f['setting']:11} {f['value']:6.3f} "
            f"{f['worst']:6.3f} {f['baseline']:9.3f}"
        )
    for f in figures:
        print(json.dumps(f))


if __name__ == "__main__":
    print_figures(classify_figures())
