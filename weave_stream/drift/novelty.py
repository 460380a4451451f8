"""Novelty: each embedding's distance to the nearest known one, against a calibrated threshold.

The threshold is a quantile of the reference's *leave-one-out* nearest-neighbour
distances: for each reference vector (or a sample of them), the distance to the
nearest *other* reference vector. A new example from the reference's distribution
lies that far from its nearest known example with the same probability, so a
``q`` quantile flags about ``1 - q`` of in-distribution examples (the calibrated
false-positive rate) and every example farther from the known set than nearly all
known examples are from each other.

>>> import numpy as np
>>> from weave_stream.drift.faiss_index import FaissVectorIndex
>>> from weave_stream.topology.monitors import LearningSpec
>>> rng = np.random.default_rng(0)
>>> known = rng.normal(size=(500, 8)).astype(np.float32)
>>> ids = [f"k{i}" for i in range(500)]
>>> index = FaissVectorIndex.build(ids, known, pinned=True)
>>> calibration = calibrate(index, ids, known, quantile=0.95)
>>> scorer = NoveltyScorer(index, calibration, LearningSpec(learn_acknowledged=True))
>>> far = known[:1] + 10
>>> [s.novel for s in scorer.score(["near", "far"], np.vstack([known[:1] + 0.01, far]))]
[False, True]
>>> scorer.acknowledge(["far"]).added, scorer.score(["again"], far)[0].nearest_known_call
(['far'], 'far')
"""

from __future__ import annotations

from collections import OrderedDict
from collections.abc import Mapping, Sequence
from dataclasses import asdict, dataclass, replace
from typing import Any

import numpy as np

from weave_stream.drift.index import AddResult, VectorIndex
from weave_stream.errors import VectorIndexError
from weave_stream.topology.monitors import LearningSpec

__all__ = ["Calibration", "NoveltyScore", "NoveltyScorer", "calibrate"]


@dataclass(frozen=True)
class Calibration:
    """The novelty threshold and how it was obtained (stored with the index snapshot)."""

    threshold: float
    quantile: float
    sample_size: int
    loo_p50: float
    loo_p90: float
    loo_p99: float
    overridden: bool = False

    def to_dict(self) -> dict[str, Any]:
        """Plain data, for the snapshot's metadata."""
        return asdict(self)

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> Calibration:
        """Read :meth:`to_dict` output back (raises :class:`VectorIndexError` if malformed)."""
        try:
            return cls(**{name: data[name] for name in cls.__dataclass_fields__})
        except (KeyError, TypeError) as exc:
            raise VectorIndexError(
                f"stored calibration {dict(data)!r} is malformed: {exc}"
            ) from None

    def overridden_by(self, threshold: float | None) -> Calibration:
        """This calibration with the spec's explicit threshold, if any, in force."""
        if threshold is None:
            return self
        return replace(self, threshold=threshold, overridden=True)


def calibrate(
    index: VectorIndex,
    ids: Sequence[str],
    vectors: np.ndarray,
    *,
    quantile: float,
    sample_size: int = 20_000,
    seed: int = 0,
) -> Calibration:
    """Calibrate the threshold from leave-one-out nearest-neighbour distances of the reference.

    ``ids``/``vectors`` are the reference, already in ``index``; at most
    ``sample_size`` of them (a seeded random sample) are searched.
    """
    if len(ids) < 2:
        raise VectorIndexError(
            f"cannot calibrate a novelty threshold from {len(ids)} reference example(s); "
            "give the monitor a reference of at least 2 (better: hundreds of) examples, "
            "or set its threshold explicitly"
        )
    rng = np.random.default_rng(seed)
    rows = np.arange(len(ids))
    if len(ids) > sample_size:
        rows = np.sort(rng.choice(len(ids), sample_size, replace=False))
    distances, neighbours = index.search(np.asarray(vectors)[rows], k=2)
    # The nearest neighbour other than the example itself: the second hit when the
    # first is the example, else the first (a duplicate under another id, or an
    # approximate search that missed the example itself).
    first_is_self = np.array(
        [hits[0] == ids[int(row)] for hits, row in zip(neighbours, rows, strict=True)]
    )
    loo = np.where(first_is_self, distances[:, 1], distances[:, 0]).astype(np.float64)
    loo = loo[np.isfinite(loo)]
    p50, p90, p99, threshold = np.quantile(loo, [0.5, 0.9, 0.99, quantile])
    return Calibration(float(threshold), quantile, len(loo), float(p50), float(p90), float(p99))


@dataclass(frozen=True)
class NoveltyScore:
    """One example's novelty: the derived column value of a monitor."""

    call_id: str
    distance: float
    nearest_known_call: str | None
    threshold: float
    novel: bool

    def as_value(self) -> dict[str, Any]:
        """The value written to the derived column (JSON-compatible)."""
        return {
            "novelty": self.distance,
            "nearest_known_call": self.nearest_known_call,
            "threshold": self.threshold,
            "novel": self.novel,
        }


class NoveltyScorer:
    """Scores batches against the known set and learns acknowledged examples.

    Novel examples are remembered (at most ``learning.pending_capacity``, oldest
    forgotten first) so that acknowledging one later can add its vector.
    """

    def __init__(
        self, index: VectorIndex, calibration: Calibration, learning: LearningSpec
    ) -> None:
        self.index = index
        self.calibration = calibration
        self.learning = learning
        self._pending: OrderedDict[str, np.ndarray] = OrderedDict()

    @property
    def threshold(self) -> float:
        """The novelty threshold in force."""
        return self.calibration.threshold

    def score(self, call_ids: Sequence[str], vectors: np.ndarray) -> list[NoveltyScore]:
        """Score a batch (one batched search); novel examples are remembered for acknowledgement."""
        matrix = np.asarray(vectors, dtype=np.float32)
        if len(call_ids) != len(matrix):
            raise VectorIndexError(f"scoring: {len(call_ids)} call ids for {len(matrix)} vectors")
        distances, neighbours = self.index.search(matrix, k=1)
        threshold = self.threshold
        scores = []
        for position, call_id in enumerate(call_ids):
            distance = float(distances[position, 0])
            novel = distance > threshold
            scores.append(
                NoveltyScore(call_id, distance, neighbours[position][0], threshold, novel)
            )
            if novel and self.learning.pending_capacity:
                self._remember(call_id, matrix[position])
        return scores

    def _remember(self, call_id: str, vector: np.ndarray) -> None:
        self._pending[call_id] = vector.copy()
        self._pending.move_to_end(call_id)
        while len(self._pending) > self.learning.pending_capacity:
            self._pending.popitem(last=False)

    def acknowledge(self, call_ids: Sequence[str]) -> AddResult:
        """Mark novel examples as known: they join the index if the policy learns them.

        Ids that were never flagged (or were forgotten) and, when the policy does not
        learn, all ids come back in ``rejected``.
        """
        if not self.learning.learn_acknowledged:
            return AddResult(rejected=list(call_ids))
        known = [cid for cid in call_ids if cid in self._pending]
        unknown = [cid for cid in call_ids if cid not in self._pending]
        if not known:
            return AddResult(rejected=unknown)
        result = self.learn(known, np.vstack([self._pending.pop(cid) for cid in known]))
        return AddResult(result.added, result.evicted, result.rejected + unknown)

    def learn(self, call_ids: Sequence[str], vectors: np.ndarray) -> AddResult:
        """Add examples to the known set (unpinned: subject to capacity and eviction)."""
        return self.index.add(list(call_ids), vectors, pinned=False)
