"""The ``classify`` op: a document into user-given labels, with a confidence.

Zero-shot by default: each label is described in words (one description or a
list of them), and a document gets the label whose description vector is nearest
(cosine). A label's vector is the mean of the unit vectors of its descriptions, and
the parts of a description (``"money, banking and finance"``: ``money``, ``banking``,
``finance``) share half of its vector: on chat turns in 10 topics that beat the
description alone by 2.4 points, and on sections of the Python reference it cost 1.7
where parts counted as whole phrases cost 4.5; prefixing the label name
(``"money: ..."``, the former default) lost 1-5 (bench/detect_classify.py). Given
labelled ``examples``, it learns:
``method="centroid"`` mixes each label's description vector with the mean of its
examples (``prior_weight`` for the description, 0.5 by default: 3 examples a class
gained 6-15 points over the description alone, and the worst of five draws stayed
within 3 points of the mean, where examples alone varied by 5), ``method="river"``
trains a river online softmax regression on the embeddings. Either way
:meth:`Classify.learn` keeps learning from feedback.

Opt-in ``calibration``: a fixed sample of the user's unlabelled inputs (texts, or a
file of one a line) to which the label vectors adapt (:mod:`.calibration`): on the
bench's three tasks (200 texts), zero-shot rose to 3-12 points above the
cosine-to-description baseline (-2 to +2 without it), and few-shot moved -1 to +5.
No data-free change to the label vectors did as well (bench/classify_alternatives.py;
README, "Monitor and classifier settings", lists what was tried). In a topology the
sample may be the first N calls of the column's source, ``calibration: {first_n: N}``
(:mod:`weave_stream.topology.calibration`), resolved to texts before this op is built.

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
import re
import threading
from collections.abc import Mapping, Sequence
from typing import Any, Literal

import numpy as np
import numpy.typing as npt

from weave_stream.errors import OpDefinitionError, OpError
from weave_stream.ops.base import CostEstimate, OpResult
from weave_stream.ops.calibration import (
    Calibration,
    adapt_prototypes,
    calibration_digest,
    load_calibration,
)
from weave_stream.ops.decorator import op
from weave_stream.ops.embed import encode_sync, estimate_seconds, run_on_model_thread, text_problem

__all__ = ["Classify"]

Method = Literal["centroid", "river"]
Described = str | Sequence[str]  # one description of a label, or several
Vector = npt.NDArray[np.float32]


class ClassifyOp:
    """Classify ``text`` into one of ``labels``: ``{"label": ..., "confidence": ...}``.

    ``labels`` maps each label to a description or a list of descriptions (or lists
    labels, each its own description); ``examples`` maps labels to example texts;
    ``prior_weight`` is the description's share of a label's vector once it has
    examples (``centroid``); ``calibration`` is a fixed sample of unlabelled inputs
    (texts or a file path) the label vectors adapt to, over ``calibration_rounds``
    rounds, each label vector counting as ``calibration_prior`` texts against the mean
    of the calibration texts it attracts.
    """

    def __init__(
        self,
        labels: Mapping[str, Described] | Sequence[str],
        examples: Mapping[str, Sequence[str]] | None = None,
        method: Method = "centroid",
        temperature: float = 0.05,
        prior_weight: float = 0.5,
        calibration: Calibration | None = None,
        calibration_rounds: int = 1,
        calibration_prior: float = 5.0,
    ) -> None:
        self.labels = _check_labels(labels)
        if calibration is not None and method != "centroid":
            raise OpDefinitionError(
                f"classify: calibration adapts label vectors and needs method='centroid', "
                f"got method={method!r} (drop calibration, or use the centroid method)"
            )
        if not isinstance(calibration_rounds, int) or not 1 <= calibration_rounds <= 10:
            raise OpDefinitionError(
                f"classify: calibration_rounds must be an integer from 1 to 10 (1 measured "
                f"best), got {calibration_rounds!r}"
            )
        self.calibration = load_calibration(calibration) if calibration is not None else ()
        self.calibration_rounds = calibration_rounds
        if not 0.0 <= calibration_prior <= 1000.0:
            raise OpDefinitionError(
                f"classify: calibration_prior must be from 0 to 1000 (how many calibration "
                f"texts a label's own vector counts as; 5 measured best), got "
                f"{calibration_prior!r}"
            )
        self.calibration_prior = calibration_prior
        self._calibration_vectors: Vector | None = None
        if not 0.0 <= prior_weight <= 1.0:
            raise OpDefinitionError(
                f"classify: prior_weight must be in [0, 1] (the weight of the label "
                f"descriptions against the examples), got {prior_weight!r}"
            )
        self.prior_weight = prior_weight
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
        self._sums: dict[str, Vector] | None = None  # sums of example embeddings
        self._counts: dict[str, int] = {}
        self._described: dict[str, Vector] = {}  # unit description vector per label
        self._river: Any = None

    def version_state(self) -> Mapping[str, str] | None:
        """Digests of the calibration texts and of the feedback learned so far (or None)."""
        state = {"calibration": calibration_digest(self.calibration)} if self.calibration else {}
        if self._feedback_digest:
            state["feedback"] = self._feedback_digest
        return state or None

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
        phrases = [
            (phrase, label, number)
            for label in self.labels
            for number, description in enumerate(self._descriptions(label))
            for phrase in _phrases(description)
        ]
        phrase_vectors = encode_sync([phrase for phrase, *_ in phrases])
        for label in self.labels:
            wholes: list[Vector] = []
            for number in range(len(self._descriptions(label))):
                rows = [i for i, (_, *key) in enumerate(phrases) if key == [label, number]]
                whole, parts = phrase_vectors[rows[0]], phrase_vectors[rows[1:]]
                if len(parts):  # the whole description keeps half the weight (see _PARTS_SHARE)
                    whole = _PARTS_SHARE * _unit(parts.mean(axis=0)) + (1 - _PARTS_SHARE) * whole
                wholes.append(_unit(whole))
            self._described[label] = _unit(np.mean(wholes, axis=0))
        described = [(self._descriptions(label)[0], label) for label in self.labels]
        examples = [(text, label) for label, texts in self.examples.items() for text in texts]
        vectors = encode_sync([text for text, _ in examples]) if examples else phrase_vectors[:0]
        size = phrase_vectors.shape[1]
        if self.calibration:
            self._calibration_vectors = encode_sync(self.calibration)
        self._sums = {label: np.zeros(size, dtype=np.float32) for label in self.labels}
        self._counts = dict.fromkeys(self.labels, 0)
        pairs = examples
        if self.method == "river":  # descriptions are its first examples
            pairs = described + examples
            vectors = np.vstack(
                [np.stack([self._described[name] for _, name in described]), vectors]
            )
        if self.method == "river":
            from river import linear_model, optim

            self._river = linear_model.SoftmaxRegression(optimizer=optim.SGD(0.5))
        for _ in range(3 if self.method == "river" else 1):  # a few passes: few examples
            for (_, label), vector in zip(pairs, vectors, strict=True):
                self._learn_vector(vector, label)

    def _descriptions(self, label: str) -> list[str]:
        described = self.labels[label]
        return [described] if isinstance(described, str) else list(described)

    def _learn_vector(self, vector: Vector, label: str) -> None:
        assert self._sums is not None
        self._sums[label] = self._sums[label] + vector
        self._counts[label] = self._counts.get(label, 0) + 1
        if self._river is not None:
            self._river.learn_one(_features(vector), label)

    # -- predicting --------------------------------------------------------------------
    def _centroid_results(self, vectors: Vector) -> list[OpResult]:
        assert self._sums is not None
        names = list(self._sums)
        centroids = np.stack([self._prototype(name) for name in names])
        if self._calibration_vectors is not None:
            centroids = adapt_prototypes(
                centroids,
                self._calibration_vectors,
                self.calibration_prior,
                self.calibration_rounds,
            )
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

    def _prototype(self, label: str) -> Vector:
        """The description vector, mixed with the examples' mean once there are examples."""
        assert self._sums is not None
        described = self._described[label]
        if not self._counts.get(label):
            return described
        examples = _unit(self._sums[label])
        return _unit(self.prior_weight * described + (1.0 - self.prior_weight) * examples)

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
    depends=(adapt_prototypes,),  # the adaptation decides values; its module is not followed
)(ClassifyOp)


_PARTS = re.compile(r",|;|/|\band\b|\bor\b")
# The parts' share of a description's vector. Parts help where a description lists
# synonyms ("money, banking and finance": +2.3 points on the chat topics) and hurt
# where the whole phrase is the meaning ("special method names such as __init__ and
# __add__": the parts alone cost 4.5 points on the Python-docs task, half-weight 1.7).
_PARTS_SHARE = 0.5


def _phrases(description: str) -> list[str]:
    """A description, then its parts (split at commas, semicolons, slashes, and, or).

    >>> _phrases("money, banking and finance")
    ['money, banking and finance', 'money', 'banking', 'finance']
    >>> _phrases("a joke")
    ['a joke']
    """
    parts = [part.strip() for part in _PARTS.split(description) if part.strip()]
    return [description, *(parts if len(parts) > 1 else [])]


def _unit(vector: npt.NDArray[np.floating[Any]]) -> Vector:
    norm = float(np.linalg.norm(vector))
    return np.asarray(vector / norm if norm > 0 else vector, dtype=np.float32)


def _features(vector: Vector) -> dict[int, float]:
    return dict(enumerate(vector.tolist()))


def _check_labels(labels: Mapping[str, Described] | Sequence[str]) -> dict[str, Described]:
    if isinstance(labels, str):
        raise OpDefinitionError(
            f"classify: labels must be a list or a mapping, got the string {labels!r}"
        )
    described: dict[str, Any] = (
        dict(labels) if isinstance(labels, Mapping) else {str(x): str(x) for x in labels}
    )
    if len(described) < 2:
        raise OpDefinitionError(f"classify: give at least two labels, got {sorted(described)}")

    def good(text: object) -> bool:
        return isinstance(text, str) and bool(text.strip())

    bad = [
        label
        for label, desc in described.items()
        if not (good(desc) or (isinstance(desc, list | tuple) and desc and all(map(good, desc))))
    ]
    if bad:
        raise OpDefinitionError(
            f"classify: labels {bad} need a non-empty text description (or a list of them)"
        )
    return {
        str(label): desc if isinstance(desc, str) else tuple(desc)
        for label, desc in described.items()
    }
