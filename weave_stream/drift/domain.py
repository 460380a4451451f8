"""After a shift: which calls belong to the new distribution (a domain classifier).

Once the sequential test (shift.py) has found that the latest calls moved away
from the reference, a logistic regression learns to tell the reference (label 0)
from those calls (label 1). Calls of the new kind lie where the recent calls are
dense and the reference is not, so the classifier scores them high; calls like the
reference's score low even when they were among the recent calls. Its threshold is
the ``quantile`` of its scores on reference examples it was *not* trained on, so it
flags about ``1 - quantile`` of reference-like traffic. Nearest-neighbour novelty
flags a new kind only where it lies far from every known kind; this flags it
because it is many (bench/detect.py: 0.8 of news and reviews, 0.99 of Spanish at
about 1 % of stable traffic, from 20 calls of the new kind).

>>> import numpy as np
>>> rng = np.random.default_rng(0)
>>> reference = rng.normal(size=(400, 8))
>>> recent = rng.normal(size=(30, 8)) + 1.5
>>> domain = DomainClassifier.train(reference[:200], reference[200:], recent)
>>> bool(domain.flags(rng.normal(size=(50, 8)) + 1.5).mean() > 0.8)
True
>>> bool(domain.flags(rng.normal(size=(500, 8))).mean() < 0.03)
True
"""

from __future__ import annotations

import numpy as np
from sklearn.linear_model import LogisticRegression

__all__ = ["DomainClassifier"]

_MAX_REFERENCE = 2_000


class DomainClassifier:
    """A trained reference-against-recent classifier and its calibrated threshold."""

    def __init__(self, model: LogisticRegression, threshold: float, trained_on: int) -> None:
        self.model = model
        self.threshold = threshold
        self.trained_on = trained_on  # recent calls it learned from

    @classmethod
    def train(
        cls,
        reference: np.ndarray,
        held_out: np.ndarray,
        recent: np.ndarray,
        *,
        quantile: float = 0.99,
        seed: int = 0,
    ) -> DomainClassifier:
        """Train on ``reference`` against ``recent``; calibrate on ``held_out`` reference rows."""
        rng = np.random.default_rng(seed)
        if len(reference) > _MAX_REFERENCE:
            reference = reference[rng.choice(len(reference), _MAX_REFERENCE, replace=False)]
        features = np.vstack([reference, recent]).astype(np.float64)
        labels = np.r_[np.zeros(len(reference)), np.ones(len(recent))]
        # Balanced weights: a few dozen recent calls against a reference of hundreds.
        model = LogisticRegression(C=0.3, class_weight="balanced", max_iter=500)
        model.fit(features, labels)
        held_scores = model.decision_function(np.asarray(held_out, dtype=np.float64))
        threshold = max(0.0, float(np.quantile(held_scores, quantile)))
        return cls(model, threshold, len(recent))

    def scores(self, vectors: np.ndarray) -> np.ndarray:
        """Log-odds that each vector belongs to the recent distribution."""
        return np.asarray(self.model.decision_function(np.asarray(vectors, dtype=np.float64)))

    def flags(self, vectors: np.ndarray) -> np.ndarray:
        """True for the vectors that belong to the new distribution."""
        return self.scores(vectors) > self.threshold
