"""Alternatives to the ``classify`` op's label vectors, measured beside them (evidence).

What README's "Monitor and classifier settings" says was tried and not kept, and why
``calibration_prior`` counts texts rather than taking a fixed share, on the tasks of
bench/detect_classify.py (topics, kinds, docs), from the cached embeddings (numpy
only; the op's own rule for label vectors). Run from the repository root:

    .venv/bin/python -m bench.classify_alternatives

Each line is a difference in accuracy against the op's zero-shot label vectors on
the same texts (``+0.030`` = 3 points better). The *neutral corpus* is 400 passages
of the encyclopedia kind that no task uses (its last 400): a stand-in for a generic
corpus shipped with the project. Few-shot lines: 3 examples a class, 5 draws, against
the op's mix of description and examples (``prior_weight`` 0.5).
"""

from __future__ import annotations

import json

import numpy as np

from bench.detect_classify import TASKS, task
from tests.support.corpora import embed, texts
from weave_stream.ops.calibration import adapt_prototypes
from weave_stream.ops.classify import _PARTS_SHARE, _phrases

Matrix = np.ndarray


def unit(m: Matrix) -> Matrix:
    return m / np.linalg.norm(m, axis=-1, keepdims=True)


def label_vectors(described: dict[str, str]) -> Matrix:
    """The op's zero-shot rule: a description, its parts sharing half its vector."""
    rows = []
    for description in described.values():
        vectors = embed(tuple(_phrases(description)))
        whole = vectors[0]
        if len(vectors) > 1:
            whole = _PARTS_SHARE * unit(vectors[1:].mean(axis=0)) + (1 - _PARTS_SHARE) * whole
        rows.append(unit(whole))
    return np.stack(rows)


def accuracy(scores: Matrix, truth: Matrix) -> float:
    return float(np.mean(np.argmax(scores, axis=1) == truth))


def nearest_mix(labels: Matrix, pool: Matrix, k: int) -> Matrix:
    """Each label vector mixed half and half with the mean of its k nearest pool texts."""
    nearest = np.argsort(-(labels @ pool.T), axis=1)[:, :k]
    return unit(0.5 * labels + 0.5 * unit(pool[nearest].mean(axis=1)))


def zero_shot_variants(x: Matrix, labels: Matrix, neutral: Matrix) -> dict[str, Matrix]:
    blank = embed(("", "N/A", "text", "something", "a text", "hello", "the"))
    mean = neutral.mean(axis=0)
    cov = np.cov((neutral - mean).T)
    whiten = np.linalg.inv(cov + 0.1 * np.trace(cov) / len(cov) * np.eye(len(cov)))
    return {
        "neutral: subtract each label's mean similarity": x @ labels.T
        - (neutral @ labels.T).mean(axis=0),
        "neutral: z-score each label's similarity": (x @ labels.T - (neutral @ labels.T).mean(0))
        / (neutral @ labels.T).std(0),
        "content-free inputs: subtract their similarity": x @ labels.T
        - (blank @ labels.T).mean(axis=0),
        "neutral: center both sides on its mean": unit(x - mean) @ unit(labels - mean).T,
        "neutral: whiten (shrunk covariance)": (x - mean) @ whiten @ unit(labels - mean).T,
        "neutral: move toward 10 nearest passages": x @ nearest_mix(labels, neutral, 10).T,
        "shift by neutral mean - descriptions' mean": x @ unit(labels - labels.mean(0) + mean).T,
    }


def few_shot_variants(x: Matrix, shots: Matrix, classes: Matrix, labels: Matrix) -> dict:
    """Tip-Adapter-style cache and shrunk LDA beside the op's prototype mix."""
    count = len(labels)
    means = np.stack([shots[classes == c].mean(axis=0) for c in range(count)])
    mixed = unit(0.5 * labels + 0.5 * unit(means))
    affinity = np.exp(-5.5 * (1 - x @ shots.T))
    cache = np.stack([affinity[:, classes == c].sum(axis=1) for c in range(count)], axis=1)
    residual = shots - means[classes]
    within = residual.T @ residual / len(residual)
    inverse = np.linalg.inv(within + 0.1 * np.eye(len(within)))
    lda = x @ inverse @ mixed.T - 0.5 * np.einsum("kd,de,ke->k", mixed, inverse, mixed)
    return {
        "op (prior_weight 0.5)": x @ mixed.T,
        "tip-adapter cache (alpha 1, beta 5.5)": x @ mixed.T + cache,
        "shrunk LDA on the pooled examples": lda,
        "prior_weight 0.3": x @ unit(0.3 * labels + 0.7 * unit(means)).T,
        "prior_weight 0.6": x @ unit(0.6 * labels + 0.4 * unit(means)).T,
    }


def main() -> None:
    neutral = embed(tuple(texts("encyclopedia").texts[-400:]))
    lines = []
    for name in TASKS:
        documents, truth, described = task(name)
        x = embed(tuple(documents))
        labels = label_vectors(described)
        op = accuracy(x @ labels.T, truth)
        for variant, scores in zero_shot_variants(x, labels, neutral).items():
            lines.append((name, "zero-shot", variant, accuracy(scores, truth) - op))
        for size in (25, 50, 100, 200):
            for prior, rule in (("count 5", None), ("share 0.3", 0.3), ("share 0.5", 0.5)):
                gains = []
                for draw in range(5):
                    rng = np.random.default_rng(100 + draw)
                    sample = rng.choice(len(truth), min(size, len(truth) // 2), replace=False)
                    rest = np.setdiff1d(np.arange(len(truth)), sample)
                    adapted = _adapt(labels, x[sample], rule)
                    gains.append(
                        accuracy(x[rest] @ adapted.T, truth[rest])
                        - accuracy(x[rest] @ labels.T, truth[rest])
                    )
                variant = f"calibration, {size} texts, label vector {prior}"
                lines.append((name, "zero-shot", variant, float(np.mean(gains))))
        few: dict[str, list[float]] = {}
        for draw in range(5):
            rng = np.random.default_rng(draw)
            picked = np.concatenate(
                [
                    rng.choice(np.flatnonzero(truth == c), 3, replace=False)
                    for c in range(len(labels))
                ]
            )
            rest = np.setdiff1d(np.arange(len(truth)), picked)
            variants = few_shot_variants(x[rest], x[picked], truth[picked], labels)
            for variant, scores in variants.items():
                few.setdefault(variant, []).append(accuracy(scores, truth[rest]))
        base = float(np.mean(few["op (prior_weight 0.5)"]))
        for variant, values in few.items():
            lines.append((name, "3-shot", variant, float(np.mean(values)) - base))
    for name, kind, variant, gain in lines:
        print(f"{name:7} {kind:9} {variant:52} {gain:+.3f}")
    for name, kind, variant, gain in lines:
        row = {"bench": "classify_alternative", "task": name, "kind": kind, "variant": variant}
        print(json.dumps({**row, "gain": round(gain, 3)}))


def _adapt(labels: Matrix, sample: Matrix, share: float | None) -> Matrix:
    if share is None:
        return adapt_prototypes(labels, sample, 5.0, 1)
    # The former rule: the label vector keeps a fixed share, however many texts it got.
    nearest = np.argmax(sample @ labels.T, axis=1)
    moved = []
    for label in range(len(labels)):
        members = sample[nearest == label]
        if not len(members):
            moved.append(labels[label])
            continue
        moved.append(unit(share * labels[label] + (1 - share) * unit(members.mean(axis=0))))
    return np.stack(moved)


if __name__ == "__main__":
    main()
