"""Detection quality at the defaults, beside plain numpy baselines, on real text of several kinds.

Run from the repository root: ``.venv/bin/python bench/detect.py [--seeds N] [--no-classify]``.

Corpora: ``tests/support/corpora.py`` (built by ``bench/build_corpora.py`` from packages on
the package index). *Stable traffic* is a varied mix of prompts (chat on 18
topics, trivia and coding questions, programmer jokes, Python documentation);
each *new kind* (news, movie reviews, encyclopedia articles, Spanish chat, German
chat, software licenses, package READMEs) is one corpus pair. Per pair and seed:
a reference of 1,000 stable calls, then 3,000 more stable calls (false alarms,
false flags), then 300 calls of the new kind (calls to the first shift alert, share
flagged novel), then 300 stable calls again (false flags while the post-shift classifier is active).

The subject is :class:`weave_stream.drift.DriftMonitor` with a default spec
(``cooldown: 0`` only so that every detection is counted, not grouped).
Baselines, as in issue 18: a sliding centroid distance over the latest 50 calls
with the threshold at the largest such distance over reference windows, and
nearest-neighbour distance with the 0.99 quantile of the reference's
leave-one-out distances. Classification figures come from bench/detect_classify.py.
Embeddings are cached on disk (first run: minutes; later runs: seconds).
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path
from typing import TypedDict

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from bench.detect_classify import classify_figures, print_figures
from tests.support.corpora import NEW_KINDS, STABLE_KINDS, texts
from weave_stream.drift.monitor import DriftMonitor
from weave_stream.drift.observation import Observation
from weave_stream.topology.monitors import Monitor

REFERENCE, STABLE, NEW, BATCH = 1_000, 3_000, 300, 64
BASELINE_WINDOW = 50


def cycle(count: int, size: int, rng: np.random.Generator) -> np.ndarray:
    """``size`` row numbers of ``count`` rows, as concatenated random orderings (few repeats)."""
    return np.concatenate([rng.permutation(count) for _ in range(size // count + 1)])[:size]


def run_monitor(reference: np.ndarray, phases: list[np.ndarray]) -> list[dict[str, np.ndarray]]:
    """Stream each phase through one monitor; per phase, which calls were flagged and alarmed."""
    from datetime import UTC, datetime, timedelta

    spec = Monitor.model_validate(
        {"name": "m", "column": "e", "reference": {"first_n": len(reference)}, "cooldown": 0}
    )
    monitor = DriftMonitor.build("bench", spec, [f"r{i}" for i in range(len(reference))], reference)
    start, outcomes, number = datetime(2026, 1, 1, tzinfo=UTC), [], 0
    for phase in phases:
        phase_start = number
        novel, alarms = np.zeros(len(phase), bool), np.zeros(len(phase), bool)
        for offset in range(0, len(phase), BATCH):
            batch = [
                Observation(f"c{number + i}", vector, start + timedelta(seconds=number + i))
                for i, vector in enumerate(phase[offset : offset + BATCH])
            ]
            result = monitor.observe(batch)
            novel[offset : offset + len(batch)] = [s.novel for s in result.scores]
            for finding in result.findings:
                if finding.kind == "distribution_shift":
                    alarms[int(finding.call_ids[-1][1:]) - phase_start] = True
            number += len(batch)
        outcomes.append({"novel": novel, "alarms": alarms})
    return outcomes


def baseline_shift(reference: np.ndarray, stream: np.ndarray) -> np.ndarray:
    """Alarms of the sliding-centroid baseline after each call of ``stream``."""
    centre = reference.mean(axis=0)

    def distances(vectors: np.ndarray) -> np.ndarray:
        sums = np.cumsum(np.vstack([np.zeros(vectors.shape[1]), vectors]), axis=0)
        means = (sums[BASELINE_WINDOW:] - sums[:-BASELINE_WINDOW]) / BASELINE_WINDOW
        out = np.full(len(vectors), -np.inf)
        out[BASELINE_WINDOW - 1 :] = np.sum((means - centre) ** 2, axis=1)
        return out

    return distances(stream) > distances(reference).max()


def baseline_novelty(reference: np.ndarray, vectors: np.ndarray) -> np.ndarray:
    """Flags of the nearest-neighbour baseline (0.99 quantile of leave-one-out distances)."""
    own = np.sqrt(np.maximum(2 - 2 * reference @ reference.T, 0))
    np.fill_diagonal(own, np.inf)
    threshold = np.quantile(own.min(axis=1), 0.99)
    return np.sqrt(np.maximum(2 - 2 * vectors @ reference.T, 0)).min(axis=1) > threshold


def first(alarms: np.ndarray) -> int | None:
    hits = np.flatnonzero(alarms)
    return int(hits[0]) + 1 if len(hits) else None


class PairRun(TypedDict):
    """One corpus pair and seed: the subject's figures and the baselines'."""

    delay: int | None
    false_alarms: int
    recall: float
    false_flags: float
    false_flags_after: float
    baseline_delay: int | None
    baseline_false_alarms: int
    baseline_recall: float
    baseline_false_flags: float


def pair(kind: str, seed: int) -> PairRun:
    rng = np.random.default_rng(seed)
    pool = np.vstack([texts(k).vectors for k in STABLE_KINDS])
    order = rng.permutation(len(pool))
    reference, held = pool[order[:REFERENCE]], pool[order[REFERENCE:]]
    stable = held[cycle(len(held), STABLE, rng)]
    new = texts(kind).vectors[cycle(len(texts(kind).texts), NEW, rng)]
    after = held[cycle(len(held), NEW, rng)]
    calm, shifted, back = run_monitor(reference, [stable, new, after])
    base_alarms = baseline_shift(reference, np.vstack([stable, new]))
    return {
        "delay": first(shifted["alarms"]),
        "false_alarms": int(calm["alarms"].sum()),
        "recall": float(shifted["novel"].mean()),
        "false_flags": float(calm["novel"].mean()),
        "false_flags_after": float(back["novel"].mean()),
        "baseline_delay": first(base_alarms[STABLE:]),
        "baseline_false_alarms": int(base_alarms[:STABLE].sum()),
        "baseline_recall": float(baseline_novelty(reference, new).mean()),
        "baseline_false_flags": float(baseline_novelty(reference, stable).mean()),
    }


def worst_of(runs: list[PairRun]) -> dict[str, float]:
    """The worst figure of each kind over seeds (a missed shift counts as 10**6 calls)."""
    return {
        "delay": max((r["delay"] or 10**6) for r in runs),
        "baseline_delay": max((r["baseline_delay"] or 10**6) for r in runs),
        "false_alarms": max(r["false_alarms"] for r in runs),
        "baseline_false_alarms": max(r["baseline_false_alarms"] for r in runs),
        "false_flags": max(r["false_flags"] for r in runs),
        "baseline_false_flags": max(r["baseline_false_flags"] for r in runs),
        "false_flags_after": max(r["false_flags_after"] for r in runs),
        "recall": min(r["recall"] for r in runs),
        "baseline_recall": min(r["baseline_recall"] for r in runs),
    }


def emit(
    name: str, pair_name: str, value: float | None, baseline: float | None, **extra: object
) -> None:
    ratio = None if not value or baseline is None else round(baseline / value, 3)
    print(
        json.dumps(
            {
                "bench": name,
                "pair": pair_name,
                "value": value,
                "baseline": baseline,
                "ratio": ratio,
                **extra,
            }
        )
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seeds", type=int, default=3)
    parser.add_argument(
        "--no-classify", action="store_true", help="skip the classification figures (~3 min)"
    )
    args = parser.parse_args()
    seeds = range(args.seeds)
    rows = []
    print(
        f"{'stable -> new kind':24} {'delay':>11} {'false alarms':>13} {'recall':>11} "
        f"{'false flags':>12} {'after':>6}   (subject / baseline; worst of {len(seeds)} seeds)"
    )
    for kind in NEW_KINDS:
        runs = [pair(kind, seed) for seed in seeds]
        worst = worst_of(runs)
        rows.append((kind, worst))
        print(
            f"{'stable -> ' + kind:24} {worst['delay']:>5} / {worst['baseline_delay']:<4}"
            f"{worst['false_alarms']:>6} / {worst['baseline_false_alarms']:<5}"
            f"{worst['recall']:>6.2f} / {worst['baseline_recall']:.2f}"
            f"{worst['false_flags']:>7.3f} / {worst['baseline_false_flags']:.3f}"
            f"{worst['false_flags_after']:>7.3f}"
        )
    for kind, worst in rows:
        name = f"stable->{kind}"
        emit(
            "shift_delay_calls", name, worst["delay"], worst["baseline_delay"], worst_of=len(seeds)
        )
        emit(
            "shift_false_alarms_3000_calls",
            name,
            worst["false_alarms"],
            worst["baseline_false_alarms"],
        )
        emit(
            "novelty_recall_at_1pct",
            name,
            worst["recall"],
            worst["baseline_recall"],
            false_flags=worst["false_flags"],
            baseline_false_flags=worst["baseline_false_flags"],
            false_flags_after_shift=worst["false_flags_after"],
        )
    if not args.no_classify:
        print_figures(classify_figures(seeds=5))


if __name__ == "__main__":
    main()
