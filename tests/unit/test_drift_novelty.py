"""Novelty on real embeddings of real documents: English is known, Japanese is new.

The reference is a random 2/3 of the English conversations of chatterbot-corpus;
the held-out third is in-distribution. At a calibration quantile ``q`` the held-out
documents must be flagged at no more than ``1 - q`` plus TOLERANCE (0.04: about
three binomial standard deviations for ~300 documents at 5 %), and out-of-domain
documents must be flagged almost always.
"""

from __future__ import annotations

import numpy as np
import pytest

from tests.support.drift_corpus import Corpus, corpus
from weave_stream.drift.faiss_index import FaissVectorIndex
from weave_stream.drift.novelty import Calibration, NoveltyScorer, calibrate
from weave_stream.errors import VectorIndexError
from weave_stream.topology.monitors import IndexSpec, LearningSpec

TOLERANCE = 0.04


@pytest.fixture(scope="module")
def documents() -> Corpus:
    return corpus()


def split(documents: Corpus, seed: int) -> tuple[list[str], np.ndarray, np.ndarray]:
    order = np.random.default_rng(seed).permutation(len(documents.english))
    cut = len(order) * 2 // 3
    ids = [f"en-{i}" for i in order[:cut]]
    return ids, documents.english_vectors[order[:cut]], documents.english_vectors[order[cut:]]


def scorer_for(
    ids: list[str], reference: np.ndarray, quantile: float, kind: str = "exact"
) -> NoveltyScorer:
    index = FaissVectorIndex.build(ids, reference, IndexSpec(kind=kind), pinned=True)  # type: ignore[arg-type]
    calibration = calibrate(index, ids, reference, quantile=quantile)
    return NoveltyScorer(index, calibration, LearningSpec(learn_acknowledged=True))


@pytest.mark.parametrize("seed", [0, 1, 2])
@pytest.mark.parametrize("quantile", [0.9, 0.95])
def test_in_distribution_documents_are_flagged_at_the_calibrated_rate(
    documents: Corpus, seed: int, quantile: float
) -> None:
    ids, reference, held_out = split(documents, seed)
    scorer = scorer_for(ids, reference, quantile)

    scores = scorer.score([f"held-{i}" for i in range(len(held_out))], held_out)

    flagged = np.mean([s.novel for s in scores])
    assert flagged <= (1 - quantile) + TOLERANCE, f"{flagged:.3f} flagged at q={quantile}"


@pytest.mark.parametrize("kind", ["exact", "hnsw"])
def test_out_of_domain_documents_are_flagged(documents: Corpus, kind: str) -> None:
    ids, reference, held_out = split(documents, seed=0)
    scorer = scorer_for(ids, reference, quantile=0.95, kind=kind)

    japanese = scorer.score(
        [f"ja-{i}" for i in range(len(documents.japanese))], documents.japanese_vectors
    )
    english = scorer.score([f"en-held-{i}" for i in range(len(held_out))], held_out)

    assert np.mean([s.novel for s in japanese]) >= 0.9
    assert np.mean([s.distance for s in japanese]) > np.mean([s.distance for s in english]) + 0.2


def test_the_nearest_known_call_is_the_exact_nearest_reference_document(documents: Corpus) -> None:
    ids, reference, held_out = split(documents, seed=0)
    scorer = scorer_for(ids, reference, quantile=0.95)

    scores = scorer.score([f"q{i}" for i in range(50)], held_out[:50])

    brute = np.linalg.norm(held_out[:50, None, :] - reference[None, :, :], axis=2)
    assert [s.nearest_known_call for s in scores] == [ids[j] for j in brute.argmin(axis=1)]
    assert np.allclose([s.distance for s in scores], brute.min(axis=1), atol=1e-4)
    assert scores[0].as_value().keys() == {"novelty", "nearest_known_call", "threshold", "novel"}


def test_calibration_is_the_quantile_of_leave_one_out_distances(documents: Corpus) -> None:
    ids, reference, _ = split(documents, seed=0)
    index = FaissVectorIndex.build(ids, reference, pinned=True)

    calibration = calibrate(index, ids, reference, quantile=0.9)

    squared = np.square(reference[:, None, :] - reference[None, :, :]).sum(axis=2)
    np.fill_diagonal(squared, np.inf)
    loo = np.sqrt(squared.min(axis=1))
    assert calibration.threshold == pytest.approx(np.quantile(loo, 0.9), abs=1e-4)
    assert calibration.sample_size == len(ids) and not calibration.overridden
    assert Calibration.from_dict(calibration.to_dict()) == calibration


def test_an_explicit_threshold_overrides_the_calibrated_one(documents: Corpus) -> None:
    ids, reference, held_out = split(documents, seed=0)
    scorer = scorer_for(ids, reference, quantile=0.95)
    scorer.calibration = scorer.calibration.overridden_by(0.0)

    scores = scorer.score(["a", "b"], held_out[:2])

    assert all(s.novel and s.threshold == 0.0 for s in scores) and scorer.calibration.overridden


def test_an_acknowledged_example_becomes_known_and_stops_alerting(documents: Corpus) -> None:
    ids, reference, _ = split(documents, seed=0)
    scorer = scorer_for(ids, reference, quantile=0.95)
    vectors = documents.japanese_vectors
    farthest = int(np.linalg.norm(vectors - vectors[0], axis=1).argmax())  # unlike ja-0
    japanese = vectors[[0, farthest]]

    first = scorer.score(["ja-0", "ja-1"], japanese)
    learned = scorer.acknowledge(["ja-0", "never-flagged"])
    again = scorer.score(["ja-0-again", "ja-1-again"], japanese)

    assert all(s.novel for s in first)
    assert learned.added == ["ja-0"] and learned.rejected == ["never-flagged"]
    assert not again[0].novel and again[0].nearest_known_call == "ja-0"
    assert again[1].novel


def test_without_learning_acknowledged_examples_stay_unknown(documents: Corpus) -> None:
    ids, reference, _ = split(documents, seed=0)
    scorer = scorer_for(ids, reference, quantile=0.95)
    scorer.learning = LearningSpec(learn_acknowledged=False)

    scorer.score(["ja-0"], documents.japanese_vectors[:1])
    result = scorer.acknowledge(["ja-0"])

    assert result.added == [] and result.rejected == ["ja-0"] and "ja-0" not in scorer.index


def test_calibration_needs_at_least_two_reference_examples() -> None:
    index = FaissVectorIndex.build(["only"], np.ones((1, 4), np.float32))

    with pytest.raises(VectorIndexError, match="at least 2"):
        calibrate(index, ["only"], np.ones((1, 4), np.float32), quantile=0.9)
