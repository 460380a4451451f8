"""Zero-shot and few-shot accuracy of the ``classify`` op beside plain baselines (for detect.py).

Two 10-class tasks of real text (tests/support/corpora.py):

* ``topics``: chat turns of chatterbot-corpus in 10 topics (ai, computers, emotion,
  food, literature, money, movies, politics, science, sports), 510 texts;
* ``kinds``: 80 texts of each of the 10 kinds of the corpora (chat, trivia, coding,
  jokes, Python docs, news, reviews, encyclopedia, Spanish, German).

Zero-shot baseline: cosine similarity to the embedding of each one-line
description. Few-shot (3 labelled examples per class, 5 draws): the baseline is the
centroid of the examples alone. The subject is the op's own prototypes, computed
on the cached embeddings (the op's ``_fold_feedback``/``_centroid_results``, so the
model is not run again for every draw).
"""

from __future__ import annotations

from typing import Any

import numpy as np

from tests.support.corpora import embed, texts
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


def task(name: str) -> tuple[list[str], np.ndarray, dict[str, str]]:
    """Texts, label numbers and label descriptions of a task."""
    if name == "topics":
        chat = texts("chat")
        rows = [i for i, label in enumerate(chat.labels) if label in TOPICS]
        labels = np.array([list(TOPICS).index(chat.labels[i]) for i in rows])
        return [chat.texts[i] for i in rows], labels, TOPICS
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


def classify_figures(seeds: int = 5) -> list[dict[str, Any]]:
    """One JSON-able figure per task and setting (zero-shot, few-shot)."""
    figures: list[dict[str, Any]] = []
    for name in ("topics", "kinds"):
        documents, truth, described = task(name)
        vectors = embed(tuple(documents))
        everything = np.arange(len(documents))
        descriptions = embed(tuple(described.values()))
        baseline = float(np.mean(np.argmax(vectors @ descriptions.T, axis=1) == truth))
        zero = op_accuracy(ClassifyOp(labels=described), vectors, truth, everything)
        figures.append(
            {
                "bench": "zero_shot_accuracy",
                "task": name,
                "value": round(zero, 3),
                "baseline": round(baseline, 3),
                "ratio": round(zero / baseline, 3),
            }
        )
        subject, plain = [], []
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
            subject.append(
                op_accuracy(ClassifyOp(labels=described, examples=examples), vectors, truth, rest)
            )
            centroids = np.stack(
                [vectors[shots[truth[shots] == c]].mean(axis=0) for c in range(len(described))]
            )
            plain.append(
                float(np.mean(np.argmax(vectors[rest] @ centroids.T, axis=1) == truth[rest]))
            )
        figures.append(
            {
                "bench": "few_shot_accuracy",
                "task": name,
                "shots": 3,
                "draws": seeds,
                "value": round(float(np.mean(subject)), 3),
                "worst": round(min(subject), 3),
                "baseline": round(float(np.mean(plain)), 3),
                "baseline_worst": round(min(plain), 3),
                "ratio": round(float(np.mean(subject) / np.mean(plain)), 3),
            }
        )
    return figures
