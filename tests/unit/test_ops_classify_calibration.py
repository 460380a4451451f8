"""The classify op's opt-in calibration on a fixed sample of unlabelled inputs, on real text.

Six kinds of real text (tests/assets/corpora.jsonl.gz): chat turns, trivia and
coding questions, programmer jokes, news and movie reviews. Told only a one-line
description of each kind, the op places 20 texts of each; given 20 *other*
unlabelled texts of each kind as ``calibration``, its label vectors move to where
such texts embed. Measured: 0.68 without, 0.80 with (bench/detect_classify.py
measures it on 10-class tasks); the bar asks for 5 points of the 12.
"""

from __future__ import annotations

import asyncio
from pathlib import Path

import numpy as np
import pytest

from tests.support.corpora import texts
from weave_stream.errors import OpDefinitionError
from weave_stream.ops import Classify, run_op
from weave_stream.ops.calibration import adapt_prototypes

KINDS = {
    "chat": "small talk with a chatbot",
    "trivia": "a trivia quiz question",
    "coding": "a request to write a program",
    "jokes": "a joke about programmers",
    "news": "a news report",
    "reviews": "a movie review",
}


def labelled() -> list[tuple[str, str]]:
    return [(text, kind) for kind in KINDS for text in texts(kind).texts[:20]]


def sample() -> list[str]:
    """Unlabelled texts of the same kinds, none of them among those classified."""
    return [text for kind in KINDS for text in texts(kind).texts[80:100]]


def predict(classifier: object, documents: list[str]) -> list[str]:
    results = asyncio.run(run_op(classifier, [{"text": d} for d in documents]))  # type: ignore[arg-type]
    assert all(r.error is None for r in results)
    return [r.value["label"] for r in results]


def test_calibration_moves_predictions_toward_the_truth_and_stays_deterministic() -> None:
    documents, truth = zip(*labelled(), strict=True)
    plain = predict(Classify(labels=KINDS), list(documents))
    calibrated_op = Classify(labels=KINDS, calibration=sample())
    calibrated = predict(calibrated_op, list(documents))
    correct = [sum(p == t for p, t in zip(run, truth, strict=True)) for run in (plain, calibrated)]
    assert correct[1] >= correct[0] + 0.05 * len(truth), correct
    assert calibrated != plain  # it changed predictions, and for the better overall
    # Same inputs, same sample: the same values, from a fresh op too (every 4th text).
    again = predict(Classify(labels=KINDS, calibration=sample()), list(documents[::4]))
    assert again == calibrated[::4]


def test_the_calibration_set_is_part_of_the_version(tmp_path: Path) -> None:
    texts_a = sample()
    plain = Classify(labels=KINDS)
    with_a = Classify(labels=KINDS, calibration=texts_a)
    with_b = Classify(labels=KINDS, calibration=texts_a[:-1])
    assert len({plain.ref, with_a.ref, with_b.ref}) == 3
    assert Classify(labels=KINDS, calibration=list(texts_a)).ref == with_a.ref
    # A file: its texts count, not its name, so editing the file gives a new version.
    path = tmp_path / "sample.txt"
    path.write_text("\n".join(t.replace("\n", " ") for t in texts_a[:50]), encoding="utf-8")
    first = Classify(labels=KINDS, calibration=str(path)).own_version
    path.write_text("\n".join(t.replace("\n", " ") for t in texts_a[50:100]), encoding="utf-8")
    assert Classify(labels=KINDS, calibration=str(path)).own_version != first
    assert Classify(labels=KINDS, calibration=sample(), calibration_rounds=2).ref != with_a.ref
    assert Classify(labels=KINDS, calibration=sample(), calibration_prior=10.0).ref != with_a.ref


def test_bad_calibration_is_refused_with_the_fix(tmp_path: Path) -> None:
    with pytest.raises(OpDefinitionError, match=r"cannot read the calibration file .*missing"):
        Classify(labels=KINDS, calibration=str(tmp_path / "missing.txt"))
    (tmp_path / "short.txt").write_text("one text\n\n", encoding="utf-8")
    with pytest.raises(OpDefinitionError, match="holds 1 non-empty texts"):
        Classify(labels=KINDS, calibration=tmp_path / "short.txt")
    with pytest.raises(OpDefinitionError, match=r"items \[1\] are not strings"):
        Classify(labels=KINDS, calibration=["a text", 3])
    with pytest.raises(OpDefinitionError, match="needs method='centroid'"):
        Classify(labels=KINDS, calibration=sample(), method="river")
    with pytest.raises(OpDefinitionError, match="calibration_rounds must be an integer"):
        Classify(labels=KINDS, calibration=sample(), calibration_rounds=0)
    with pytest.raises(OpDefinitionError, match=r"calibration_prior must be from 0 to 1000"):
        Classify(labels=KINDS, calibration=sample(), calibration_prior=-1.0)


def test_a_label_moves_by_how_many_texts_it_attracts() -> None:
    """A label vector counts as ``prior_count`` texts: few texts move it little, many much."""
    labels = np.array([[1.0, 0.0, 0.0], [0.0, 1.0, 0.0]], dtype=np.float32)
    toward = np.array([0.6, 0.0, 0.8], dtype=np.float32)  # nearer the first label
    one, many = toward[None, :], np.repeat(toward[None, :], 45, axis=0)
    moved_by_one = adapt_prototypes(labels, one, 5.0, 1)
    moved_by_many = adapt_prototypes(labels, many, 5.0, 1)
    # 1 text against a prior of 5: a sixth of the way; 45 texts: nine tenths.
    assert moved_by_one[0] @ toward < moved_by_many[0] @ toward
    expected = labels[0] * 5 / 50 + toward * 45 / 50
    assert np.allclose(moved_by_many[0], expected / np.linalg.norm(expected), atol=1e-6)
    expected = labels[0] * 5 / 6 + toward / 6
    assert np.allclose(moved_by_one[0], expected / np.linalg.norm(expected), atol=1e-6)
    assert np.array_equal(moved_by_many[1], labels[1])  # attracted none: unchanged
    assert np.allclose(adapt_prototypes(labels, many, 0.0, 1)[0], toward)  # no prior: the texts
