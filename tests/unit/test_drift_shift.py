"""The shift test and the post-shift classifier on real text: varied prompts, then news.

Stable traffic is a mix of chat turns, trivia and coding questions and programmer
jokes (tests/support/corpora.py); the new kind is news articles. Each document of the new
kind lies near *some* known prompt often enough that nearest-neighbour novelty
flags only part of them; the sequential test sees the stream move within a few
calls, and the classifier trained after it flags most of the rest.
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import numpy as np
import pytest

from tests.support.corpora import texts
from weave_stream.drift.monitor import DriftMonitor
from weave_stream.drift.novelty import NoveltyScore
from weave_stream.drift.observation import Observation
from weave_stream.drift.shift import ShiftTest
from weave_stream.errors import TopologyError
from weave_stream.topology.monitors import Monitor, ShiftSpec

STABLE = {"chat": 500, "trivia": 150, "coding": 96, "jokes": 150}
T0 = datetime(2026, 11, 26, tzinfo=UTC)


@pytest.fixture(scope="module")
def corpus() -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """A reference of 500 stable prompts, the other stable prompts, and 80 news passages."""
    stable = np.vstack([texts(kind).vectors_of(count) for kind, count in STABLE.items()])
    order = np.random.default_rng(0).permutation(len(stable))
    return stable[order[:500]], stable[order[500:]], texts("news").vectors_of(80)


def stream(vectors: np.ndarray, size: int, seed: int) -> np.ndarray:
    rng = np.random.default_rng(seed)
    rows = np.concatenate([rng.permutation(len(vectors)) for _ in range(size // len(vectors) + 1)])
    return vectors[rows[:size]]


@pytest.mark.parametrize("kind", ["news", "encyclopedia"])
def test_the_shift_is_alerted_within_15_calls_and_stable_traffic_raises_none(
    corpus: tuple[np.ndarray, np.ndarray, np.ndarray], kind: str
) -> None:
    # Encyclopedia passages move the mean little: the spread term finds them.
    reference, held, _ = corpus
    window = ShiftTest.from_reference(reference, ShiftSpec()).window()
    stable = [window.push(v) for v in stream(held, 3_000, seed=1)]
    assert [r for r in stable if r is not None and r.shifted] == []
    shifted = [window.push(v) for v in texts(kind).vectors_of(40)]
    first = next(i for i, r in enumerate(shifted) if r is not None and r.shifted)
    assert first < 15


def test_the_monitor_flags_most_of_the_new_kind_and_few_stable_calls(
    corpus: tuple[np.ndarray, np.ndarray, np.ndarray],
) -> None:
    reference, held, news = corpus
    spec = Monitor.model_validate(
        {"name": "m", "column": "e", "reference": {"first_n": 500}, "cooldown": 0}
    )
    monitor = DriftMonitor.build("t", spec, [f"r{i}" for i in range(500)], reference)

    def observe(vectors: np.ndarray, prefix: str) -> list[NoveltyScore]:
        calls = [
            Observation(f"{prefix}{i}", v, T0 + timedelta(seconds=i)) for i, v in enumerate(vectors)
        ]
        return monitor.observe(calls).scores

    stable = observe(stream(held, 800, seed=2), "s")
    alone = np.mean([s.novel for s in monitor.scorer.score([f"x{i}" for i in range(80)], news)])
    scores = observe(news, "n")
    flagged = np.mean([s.novel for s in scores])
    assert np.mean([s.novel for s in stable]) <= 0.02
    # Nearest-neighbour novelty alone flags part of the news; after the shift alert the
    # domain classifier flags most of the rest.
    assert flagged >= 0.5 and flagged > alone + 0.2
    assert any(s.new_distribution for s in scores)


def test_calls_spread_where_the_reference_is_narrow_are_a_shift_though_the_mean_stays() -> None:
    # The reference varies along 4 of 16 directions; the new calls have the same mean
    # but vary along the other 12 too: the spread term sees it, the mean term alone
    # (spread: false) barely does.
    rng = np.random.default_rng(3)
    scale = np.r_[np.ones(4), np.full(12, 0.2)]
    reference = rng.normal(size=(800, 16)) * scale
    new = rng.normal(size=(60, 16)) * np.r_[np.ones(4), np.full(12, 0.45)]

    def first_alarm(spread: bool) -> int | None:
        window = ShiftTest.from_reference(reference, ShiftSpec(spread=spread)).window()
        for v in rng.normal(size=(1_000, 16)) * scale:
            result = window.push(v)
            assert result is None or not result.shifted
        alarms = [i for i, v in enumerate(new) if (r := window.push(v)) and r.shifted]
        return alarms[0] + 1 if alarms else None

    with_spread, mean_only = first_alarm(True), first_alarm(False)
    assert with_spread is not None and with_spread <= 15
    assert mean_only is None or mean_only > 2 * with_spread


def test_a_reference_too_small_for_the_shift_test_is_refused() -> None:
    with pytest.raises(TopologyError, match="too small for shift detection: it needs at least 28"):
        ShiftTest.from_reference(np.random.default_rng(0).normal(size=(24, 8)), ShiftSpec())


def test_the_former_window_key_is_accepted_with_a_warning() -> None:
    with pytest.warns(FutureWarning, match="shift.window is deprecated"):
        spec = ShiftSpec.model_validate({"window": 50})
    assert spec.calls == 50
    with pytest.warns(FutureWarning, match="ignored"):
        assert ShiftSpec.model_validate({"detector": "adwin"}).calls == 80
