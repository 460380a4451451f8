"""``calibration: {first_n: N}`` on a stream: the classify op calibrated on its first N calls.

The tasks of bench/detect_classify.py (chat topics, kinds of text, Python reference
sections), each made a stream: its texts as calls in a random order (one order per
draw), ``started_at`` one second apart. A topology column ``classify`` with
``calibration: {first_n: N}`` is resolved from those calls by the project's own
resolution (:func:`weave_stream.topology.calibrate.calibrate`: the first N in call
order, not a chosen sample), and scored on the calls after them (the ones the
stream classifies with the calibrated op), beside the baseline on the same calls and
the op at its defaults (no calibration). Zero-shot and few-shot (3 labelled
examples a class, drawn outside the first N), N = 50 and 200, 5 draws; the worst
draw is reported too.

    .venv/bin/python -m bench.classify_first_n            # about 2 minutes on 2 cores

Each figure is one JSON line: ``value`` the op with ``first_n`` calibration,
``baseline`` cosine to the descriptions (zero-shot) or the examples' centroid
(few-shot), ``uncalibrated`` the op at its defaults on the same calls.
"""

from __future__ import annotations

import argparse
import json
from typing import Any

import numpy as np

from bench.detect_classify import TASKS, op_accuracy, plain_accuracy, task
from tests.support.corpora import embed
from weave_stream.ops.classify import Classify, ClassifyOp
from weave_stream.topology.calibrate import calibrate
from weave_stream.topology.spec import Column, Source, Topology

START = 1_795_662_000


def stream_calls(documents: list[str], order: np.ndarray) -> list[dict[str, Any]]:
    """The task's texts as calls, made in ``order`` (ids do not follow it)."""
    return [
        {
            "id": f"call-{index:04d}",
            "op_name": "ask",
            "started_at": START + position,
            "inputs": {"question": documents[index]},
        }
        for position, index in enumerate(order)
    ]


def first_n_sample(
    described: dict[str, str], examples: dict[str, list[str]], calls: list[dict[str, Any]], n: int
) -> tuple[list[str], set[str]]:
    """The texts ``calibration: {first_n: n}`` resolves to, and their call ids."""
    params: dict[str, Any] = {"labels": described, "calibration": {"first_n": n}}
    if examples:
        params["examples"] = examples
    topology = Topology(
        "bench",
        [Column("kind", "classify", args={"text": "inputs.question"}, params=params)],
        source=Source(op_name="ask"),
    )
    resolved = calibrate(topology, calls)
    texts = list(resolved.samples["kind"])
    assert (
        resolved.topology.column("kind").op.ref == Classify(**{**params, "calibration": texts}).ref
    )
    return texts, set(resolved.call_ids["kind"])


def first_n_figures(sizes: tuple[int, ...], draws: int) -> list[dict[str, Any]]:
    """Zero- and few-shot figures per task and N (see the module docstring)."""
    figures = []
    for name in TASKS:
        documents, truth, described = task(name)
        vectors = embed(tuple(documents))
        descriptions = embed(tuple(described.values()))
        for n in sizes:
            for shots in (0, 3):
                value, baseline, uncalibrated = [], [], []
                for draw in range(draws):
                    rng = np.random.default_rng(1000 + draw)
                    order = rng.permutation(len(documents))
                    chosen = np.concatenate(
                        [rng.choice(np.flatnonzero(truth == c), shots, replace=False)
                         for c in range(len(described))]
                    ).astype(int)  # fmt: skip
                    examples = {
                        label: [documents[i] for i in chosen if truth[i] == c]
                        for c, label in enumerate(described)
                    } if shots else {}  # fmt: skip
                    # Labelled examples are not calls of the stream (a user has them aside).
                    streamed = np.array([i for i in order if i not in set(chosen.tolist())])
                    calls = stream_calls(documents, streamed)
                    sample, ids = first_n_sample(described, examples, calls, n)
                    rest = np.array([int(c["id"][5:]) for c in calls if c["id"] not in ids])
                    op = ClassifyOp(labels=described, examples=examples or None,
                                    calibration=sample)  # fmt: skip
                    value.append(op_accuracy(op, vectors, truth, rest))
                    plain = ClassifyOp(labels=described, examples=examples or None)
                    uncalibrated.append(op_accuracy(plain, vectors, truth, rest))
                    targets = descriptions if not shots else np.stack(
                        [vectors[chosen[truth[chosen] == c]].mean(axis=0)
                         for c in range(len(described))]
                    )  # fmt: skip
                    baseline.append(plain_accuracy(vectors, truth, rest, targets))
                figures.append({
                    "bench": "few_shot_accuracy" if shots else "zero_shot_accuracy",
                    "task": name,
                    "setting": f"first_n={n}",
                    "shots": shots,
                    "draws": draws,
                    "value": round(float(np.mean(value)), 3),
                    "worst": round(min(value), 3),
                    "uncalibrated": round(float(np.mean(uncalibrated)), 3),
                    "uncalibrated_worst": round(min(uncalibrated), 3),
                    "baseline": round(float(np.mean(baseline)), 3),
                    "baseline_worst": round(min(baseline), 3),
                    "ratio": round(float(np.mean(value)) / float(np.mean(baseline)), 3),
                })  # fmt: skip
    return figures


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--sizes", type=int, nargs="+", default=[50, 200])
    parser.add_argument("--draws", type=int, default=5)
    args = parser.parse_args()
    figures = first_n_figures(tuple(args.sizes), args.draws)
    print(
        f"{'figure':19} {'task':7} {'setting':12} {'first_n':>8} {'worst':>6} "
        f"{'default':>8} {'baseline':>9} {'worst':>6}"
    )
    for f in figures:
        print(
            f"{f['bench']:19} {f['task']:7} {f['setting']:12} {f['value']:8.3f} "
            f"{f['worst']:6.3f} {f['uncalibrated']:8.3f} {f['baseline']:9.3f} "
            f"{f['baseline_worst']:6.3f}"
        )
    for f in figures:
        print(json.dumps(f))


if __name__ == "__main__":
    main()
