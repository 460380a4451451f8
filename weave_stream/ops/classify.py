"""The ``classify`` op: a document into user-given labels, with a confidence.

Zero-shot by default: each label is described in words, and a document gets the
label whose description embedding is nearest (cosine). Given labelled
``examples``, it learns: ``method="centroid"`` keeps one running mean embedding
per label (the description counts as one example), ``method="river"`` trains a
river online softmax regression on the embeddings. Either way
:meth:`Classify.learn` keeps learning from feedback.

Confidence is the softmax of the cosine similarities divided by ``temperature``
(centroid) or the river model's probability. What the op has learned is part of
its version: feedback gives a new ref, so values computed before it stay
distinguishable from values computed after it.

>>> clf = Classify(labels={"invoice": "a bill asking for payment", "poem": "a poem"})
>>> clf.name, clf.signature.required, clf.deterministic
('classify', ('text',), True)
"""

from __future__ import annotations

import hashlib
import threading
from collections.abc import Mapping, Sequence
from typing import Any, Literal

import numpy as np
import numpy.typing as npt

from weave_stream.errors import OpDefinitionError, OpError
from weave_stream.ops.base import CostEstimate, OpResult
from weave_stream.ops.decorator import op
from weave_stream.ops.embed import encode_sync, estimate_seconds, run_on_model_thread, text_problem

__all__ = ["Classify"]

Method = Literal["centroid", "river"]
Vector = npt.NDArray[np.float32]


class ClassifyOp:
    """Classify ``text`` into one of ``labels``: ``{"label": ..., "confidence": ...}``.

    ``labels`` maps each label to a description (or lists labels, each its own
    description); ``examples`` maps labels to example texts.
    """

    def __init__(
        self,
        labels: Mapping[str, str] | Sequence[str],
        examples: Mapping[str, Sequence[str]] | None = None,
        method: Method = "centroid",
        temperature: float = 0.05,
    ) -> None:
        self.labels = _check_labels(labels)
        self.examples = {label: list(texts) for label, texts in (examples or {}).items()}
        unknown = sorted(set(self.examples) - set(self.labels))
        if unknown:
            raise OpDefinitionError(
                f"classify: examples are given for unknown labels {unknown}; the labels are "
                f"{sorted(self.labels)} (add them to labels, or fix the example keys)"
            )
        if method not in ("centroid", "river"):
            raise OpDefinitionError(
                f"classify: method must be 'centroid' or 'river', got {method!r}"
            )
        if not temperature > 0:
            raise OpDefinitionError(f"classify: temperature must be > 0, got {temperature!r}")
        self.method: Method = method
        self.temperature = temperature
        self._feedback_digest = ""
        self._pending: list[tuple[str, str]] = []  # feedback not yet folded into the model
        self._lock = threading.Lock()
        self._sums: dict[str, Vector] | None = None
        self._river: Any = None

    def version_state(self) -> Mapping[str, str] | None:
        """A digest of the feedback learned so far (None before any)."""
        return {"feedback": self._feedback_digest} if self._feedback_digest else None

    def estimate(self, inputs: Sequence[Mapping[str, Any]]) -> CostEstimate:
        """No dollars; the time of embedding each text."""
        return CostEstimate(0, 0.0, sum(estimate_seconds(item.get("text")) for item in inputs))

    def learn(self, text: str, label: str) -> None:
        """Learn that ``text`` is a ``label`` (feedback); the op's version changes."""
        if label not in self.labels:
            raise OpError(
                f"classify: cannot learn unknown label {label!r}; labels: {sorted(self.labels)}"
            )
        problem = text_problem(text)
        if problem:
            raise OpError(f"classify: cannot learn from this text: {problem}")
        with self._lock:
            self._pending.append((text, label))
            chained = f"{self._feedback_digest}\0{label}\0{text}".encode()
            self._feedback_digest = hashlib.sha256(chained).hexdigest()[:16]

    async def __call__(self, text: list[Any]) -> list[OpResult]:
        problems = [text_problem(item) for item in text]
        valid = [item for item, problem in zip(text, problems, strict=True) if problem is None]
        predictions = iter(await run_on_model_thread(self.predict_sync, valid) if valid else ())
        return [OpResult.failure(problem) if problem else next(predictions) for problem in problems]

    def predict_sync(self, texts: Sequence[str]) -> list[OpResult]:
        """Classify ``texts`` on this thread (the op runs it on the model thread)."""
        self._fold_feedback()
        vectors = encode_sync(texts)
        if self.method == "river":
            return [self._river_result(vector) for vector in vectors]
        return self._centroid_results(vectors)

    # -- learning ----------------------------------------------------------------------
    def _fold_feedback(self) -> None:
        with self._lock:
            if self._sums is None:
                self._initialise()
            pending, self._pending = self._pending, []
        if pending:
            vectors = encode_sync([text for text, _ in pending])
            with self._lock:
                for (_, label), vector in zip(pending, vectors, strict=True):
                    self._learn_vector(vector, label)

    def _initialise(self) -> None:
        described = [
            (f"{label}: {desc}" if desc != label else label, label)
            for label, desc in self.labels.items()
        ]
        examples = [(text, label) for label, texts in self.examples.items() for text in texts]
        pairs = described + examples
        vectors = encode_sync([text for text, _ in pairs])
        self._sums = {label: np.zeros(vectors.shape[1], dtype=np.float32) for label in self.labels}
        if self.method == "river":
            from river import linear_model, optim

            self._river = linear_model.SoftmaxRegression(optimizer=optim.SGD(0.5))
        for _ in range(3 if self.method == "river" else 1):  # a few passes: few examples
            for (_, label), vector in zip(pairs, vectors, strict=True):
                self._learn_vector(vector, label)

    def _learn_vector(self, vector: Vector, label: str) -> None:
        assert self._sums is not None
        self._sums[label] = self._sums[label] + vector
        if self._river is not None:
            self._river.learn_one(_features(vector), label)

    # -- predicting --------------------------------------------------------------------
    def _centroid_results(self, vectors: Vector) -> list[OpResult]:
        assert self._sums is not None
        names = list(self._sums)
        centroids = np.stack([self._sums[name] for name in names])
        centroids /= np.maximum(np.linalg.norm(centroids, axis=1, keepdims=True), 1e-12)
        similarities = vectors @ centroids.T
        logits = similarities / self.temperature
        probabilities = np.exp(logits - logits.max(axis=1, keepdims=True))
        probabilities /= probabilities.sum(axis=1, keepdims=True)
        results = []
        for row, probs in zip(similarities, probabilities, strict=True):
            best = int(np.argmax(row))
            value = {"label": names[best], "confidence": round(float(probs[best]), 6)}
            scores = {name: round(float(s), 6) for name, s in zip(names, row, strict=True)}
            results.append(OpResult(value=value, details={"similarities": scores}))
        return results

    def _river_result(self, vector: Vector) -> OpResult:
        probabilities = self._river.predict_proba_one(_features(vector))
        label = max(probabilities, key=probabilities.get)
        value = {"label": label, "confidence": round(float(probabilities[label]), 6)}
        scores = {name: round(float(p), 6) for name, p in probabilities.items()}
        return OpResult(value=value, details={"probabilities": scores})


Classify = op(
    name="classify",
    batched=True,
    batch_size=256,
    timeout=300.0,
    retries=1,
    distributions=("sentence-transformers", "transformers", "torch"),  # it embeds the text
    higher_is_worse=False,  # a confidence: the least confident are the worst
)(ClassifyOp)


def _features(vector: Vector) -> dict[int, float]:
    return dict(enumerate(vector.tolist()))


def _check_labels(labels: Mapping[str, str] | Sequence[str]) -> dict[str, str]:
    if isinstance(labels, str):
        raise OpDefinitionError(
            f"classify: labels must be a list or a mapping, got the string {labels!r}"
        )
    described = dict(labels) if isinstance(labels, Mapping) else {str(x): str(x) for x in labels}
    if len(described) < 2:
        raise OpDefinitionError(f"classify: give at least two labels, got {sorted(described)}")
    bad = [
        label for label, desc in described.items() if not isinstance(desc, str) or not desc.strip()
    ]
    if bad:
        raise OpDefinitionError(f"classify: labels {bad} need a non-empty text description")
    return {str(label): desc for label, desc in described.items()}
