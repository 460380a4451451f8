"""Opt-in calibration of the ``classify`` op on a fixed sample of the user's unlabelled inputs.

The label vectors from descriptions (and examples) sit where the *words* of the
descriptions embed, not where the user's texts do. Given a fixed, unlabelled
sample of texts like those the op will see, :func:`adapt_prototypes` moves each
label's vector toward the texts of the sample nearest to it: every sample text is
assigned to its nearest label vector, and each label vector becomes the weighted mean
of itself, counted as ``prior_count`` texts, and the unit mean of the ``m`` texts it
got (weights ``prior_count / (prior_count + m)`` and ``m / (prior_count + m)``; a label
that got none keeps its vector), for ``rounds`` rounds. The op passes its
``calibration_prior``, 5: a label vector weighs as much as 5 of its texts, so a small
sample moves it little and a large one much. A fixed share did as well with 200 texts
and worse with fewer: on four tasks, with 25 texts a share of 0.3 for the label
vector lost 2-5 points and 0.5 up to 3, where the count of 5 gained 1-3 on three
tasks and lost 3 on one; with 200 texts the count gained 3-12 points, as the shares
did (bench/detect_classify.py). Hard assignment in one round did best across the
bench's tasks; more rounds drift on short, ambiguous texts. Centering (subtracting
the sample's mean, or the descriptions' mean) and templates (``"This text is about
..."``) were measured too and did not help consistently, so they are not offered.

The sample is fixed (texts, or a file of them read once), so the op stays
deterministic; its digest is part of the op's version.

>>> import numpy as np
>>> prototypes = np.array([[1.0, 0.0], [0.0, 1.0]], dtype=np.float32)
>>> sample = np.array([[0.8, 0.6], [0.6, 0.8]], dtype=np.float32)
>>> [[round(float(x), 3) for x in row] for row in adapt_prototypes(prototypes, sample, 1.0, 1)]
[[0.949, 0.316], [0.316, 0.949]]
>>> load_calibration(["a question", "another"])
('a question', 'another')
"""

from __future__ import annotations

import hashlib
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np
import numpy.typing as npt

from weave_stream.errors import OpDefinitionError

__all__ = ["adapt_prototypes", "calibration_digest", "load_calibration"]

Vector = npt.NDArray[np.float32]
Calibration = str | Path | Sequence[str]


def load_calibration(calibration: Calibration) -> tuple[str, ...]:
    """The calibration texts: given as a list, or read from a UTF-8 file of one text a line."""
    if isinstance(calibration, Mapping):
        raise OpDefinitionError(
            f"classify: calibration {dict(calibration)!r} is not a sample of texts; "
            "{first_n: N} (the source's first N calls) is a topology setting: give it in the "
            "params of a column whose op is 'classify' (see the README), or give texts here"
        )
    if isinstance(calibration, str | Path):
        path = Path(calibration)
        try:
            lines = path.read_text(encoding="utf-8").splitlines()
        except (OSError, UnicodeDecodeError) as error:
            raise OpDefinitionError(
                f"classify: cannot read the calibration file {str(path)!r} ({error}); give a "
                f"UTF-8 text file with one unlabelled input text a line, or a list of texts"
            ) from error
        texts = tuple(line.strip() for line in lines if line.strip())
        where = f"the calibration file {str(path)!r}"
    else:
        bad = [i for i, text in enumerate(calibration) if not isinstance(text, str)]
        if bad:
            raise OpDefinitionError(
                f"classify: calibration must be texts; items {bad[:5]} are not strings "
                f"(give a list of unlabelled input texts, or a file of them)"
            )
        texts = tuple(text for text in calibration if text.strip())
        where = "calibration"
    if len(texts) < 2:
        raise OpDefinitionError(
            f"classify: {where} holds {len(texts)} non-empty texts; give a sample of at least "
            f"a few dozen unlabelled inputs like those the op will classify (200 in the bench)"
        )
    return texts


def calibration_digest(texts: Sequence[str]) -> str:
    """A short digest of the calibration texts (part of the op's version)."""
    return hashlib.sha256("\0".join(texts).encode()).hexdigest()[:16]


def adapt_prototypes(prototypes: Vector, sample: Vector, prior_count: float, rounds: int) -> Vector:
    """Move unit ``prototypes`` (labels × dims) toward the unit ``sample`` texts nearest each.

    Each prototype counts as ``prior_count`` texts against the mean of the texts it got.
    """
    adapted = prototypes
    for _ in range(rounds):
        nearest = np.argmax(sample @ adapted.T, axis=1)
        moved = []
        for label in range(len(prototypes)):
            members = sample[nearest == label]
            if not len(members):
                moved.append(adapted[label])
                continue
            mean = _unit(members.mean(axis=0))
            share = prior_count / (prior_count + len(members))
            moved.append(_unit(share * prototypes[label] + (1.0 - share) * mean))
        adapted = np.stack(moved).astype(np.float32)
    return adapted


def _unit(vector: npt.NDArray[np.floating[Any]]) -> Vector:
    norm = float(np.linalg.norm(vector))
    return np.asarray(vector / norm if norm > 0 else vector, dtype=np.float32)
