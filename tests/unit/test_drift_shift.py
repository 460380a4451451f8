"""Distribution shift on real embeddings: English is the reference, Italian is the shift.

Italian conversations are the hard case the window test exists for: per example,
only about half of them lie farther from every English document than the
calibrated threshold, yet a window of them is clearly not English.
"""

from __future__ import annotations

import numpy as np
import pytest

from tests.support.drift_corpus import Corpus, corpus
from weave_stream.drift.change import NoveltyChangeDetector
from weave_stream.drift.faiss_index import FaissVectorIndex
from weave_stream.drift.novelty import NoveltyScorer, calibrate
from weave_stream.drift.shift import WindowTest
from weave_stream.errors import TopologyError
from weave_stream.topology.monitors import LearningSpec, ShiftSpec

WINDOW = 50


@pytest.fixture(scope="module")
def documents() -> Corpus:
    return corpus()


@pytest.fixture(scope="module")
def english_split(documents: Corpus) -> tuple[np.ndarray, np.ndarray]:
    order = np.random.default_rng(0).permutation(len(documents.english))
    cut = len(order) * 2 // 3
    return documents.english_vectors[order[:cut]], documents.english_vectors[order[cut:]]


def windows(vectors: np.ndarray, size: int = WINDOW) -> list[np.ndarray]:
    return [vectors[start : start + size] for start in range(0, len(vectors) - size + 1, size)]


SETTINGS = [
    ShiftSpec(window=WINDOW, statistic="mmd", calibration="permutation"),
    ShiftSpec(window=WINDOW, statistic="centroid", calibration="permutation"),
    ShiftSpec(window=WINDOW, statistic="mmd", calibration="held_out", reference_sample=300),
    ShiftSpec(window=WINDOW, statistic="centroid", calibration="held_out", reference_sample=300),
]


@pytest.mark.parametrize("spec", SETTINGS, ids=lambda s: f"{s.statistic}-{s.calibration}")
def test_windows_of_a_new_language_are_flagged_and_english_ones_are_not(
    documents: Corpus, english_split: tuple[np.ndarray, np.ndarray], spec: ShiftSpec
) -> None:
    reference, held_out = english_split
    test = WindowTest.from_reference(reference, spec, seed=0)

    english = [test.test(window) for window in windows(held_out)]
    italian = [test.test(window) for window in windows(documents.italian_vectors)]

    assert len(english) >= 5 and len(italian) >= 5
    assert not any(result.shifted for result in english)
    assert all(result.shifted for result in italian)
    assert all(r.statistic > r.threshold for r in italian)
    if spec.calibration == "permutation":
        assert all(r.p_value is not None and r.p_value <= spec.false_alarm_rate for r in italian)


def test_per_example_novelty_alone_misses_much_of_the_italian_shift(
    documents: Corpus, english_split: tuple[np.ndarray, np.ndarray]
) -> None:
    reference, _ = english_split
    ids = [f"en-{i}" for i in range(len(reference))]
    index = FaissVectorIndex.build(ids, reference, pinned=True)
    scorer = NoveltyScorer(index, calibrate(index, ids, reference, quantile=0.99), LearningSpec())

    scores = scorer.score([f"it-{i}" for i in range(300)], documents.italian_vectors)

    assert np.mean([s.novel for s in scores]) < 0.8  # hence the window test


def novelty_stream(
    documents: Corpus, english_split: tuple[np.ndarray, np.ndarray]
) -> tuple[list[float], list[float]]:
    """Novelty distances of held-out English documents, and of Italian ones."""
    reference, held_out = english_split
    ids = [f"en-{i}" for i in range(len(reference))]
    index = FaissVectorIndex.build(ids, reference, pinned=True)
    english, _ = index.search(held_out)
    italian, _ = index.search(documents.italian_vectors)
    return [float(d) for d in english[:, 0]], [float(d) for d in italian[:, 0]]


@pytest.mark.parametrize("detector", ["adwin", "page_hinkley"])
def test_the_change_detector_flags_the_rise_of_novelty_when_italian_arrives(
    documents: Corpus, english_split: tuple[np.ndarray, np.ndarray], detector: str
) -> None:
    english, italian = novelty_stream(documents, english_split)
    change_detector = NoveltyChangeDetector(ShiftSpec(detector=detector))  # type: ignore[arg-type]

    changes = [(i, c) for i, d in enumerate(english + italian) if (c := change_detector.update(d))]

    assert changes, "no change detected"
    first_at, first = changes[0]
    assert len(english) <= first_at < len(english) + 150
    assert first.mean_after > first.mean_before and first.detector == detector


@pytest.mark.parametrize("detector", ["adwin", "page_hinkley"])
def test_the_change_detector_stays_quiet_on_english_alone(
    documents: Corpus, english_split: tuple[np.ndarray, np.ndarray], detector: str
) -> None:
    english, _ = novelty_stream(documents, english_split)
    rng = np.random.default_rng(1)
    stream = [english[i] for i in rng.permutation(len(english))] + english  # ~600 values
    change_detector = NoveltyChangeDetector(ShiftSpec(detector=detector))  # type: ignore[arg-type]

    assert [d for d in stream if change_detector.update(d)] == []


def test_a_fall_of_novelty_is_not_an_alarm() -> None:
    change_detector = NoveltyChangeDetector(ShiftSpec(detector="adwin"))
    rng = np.random.default_rng(0)
    stream = list(rng.normal(0.9, 0.05, 400)) + list(rng.normal(0.5, 0.05, 400))

    assert [d for d in stream if change_detector.update(float(d))] == []


def test_held_out_calibration_refuses_a_reference_too_small_for_its_windows() -> None:
    reference = np.random.default_rng(0).normal(size=(200, 8)).astype(np.float32)

    with pytest.raises(TopologyError, match="too small for held_out calibration"):
        WindowTest.from_reference(
            reference, ShiftSpec(window=50, calibration="held_out"), where="m"
        )


def test_too_few_permutations_for_the_false_alarm_rate_are_refused() -> None:
    with pytest.raises(TopologyError, match="use at least 999 permutations"):
        ShiftSpec(calibration="permutation", permutations=499, false_alarm_rate=0.001)
