"""Novelty: an embedding's mean distance to its nearest known ones, against a calibrated threshold.

The score of an example is its mean distance to its ``neighbours`` nearest known
examples (10 by default). Against a varied reference this separates a new kind of
document from an unusual old one better than the distance to the single nearest
known example (bench/detect.py: at 1 % false flags, 0.6 against 0.5 of news, 0.5
against 0.3 of encyclopedia articles; local-density ratios (LOF) and per-cluster
thresholds did worse, since a new kind forms a dense region of its own). The
nearest known example and its distance stay in the value, for drill-down.

The threshold is a quantile of the reference's *leave-one-out* scores: for each
reference vector (or a sample of them), the score among the *other* reference
vectors. A new example from the reference's distribution scores that high with the
same probability, so a ``q`` quantile flags about ``1 - q`` of in-distribution
examples (the calibrated false-positive rate).

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
    neighbours: int = 1,
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
    k = min(neighbours, len(ids) - 1)
    distances, hits = index.search(np.asarray(vectors)[rows], k=k + 1)
    # The nearest neighbours other than the example itself: drop its own hit, or the
    # last one when it was not found (a duplicate under another id, or an
    # approximate search that missed the example itself).
    loo = np.empty(len(rows))
    for position, (found, row) in enumerate(zip(hits, rows, strict=True)):
        own = ids[int(row)]
        others = [d for d, hit in zip(distances[position], found, strict=True) if hit != own]
        loo[position] = np.mean(others[:k])
    loo = loo[np.isfinite(loo)]
    p50, p90, p99, threshold = np.quantile(loo, [0.5, 0.9, 0.99, quantile])
    return Calibration(float(threshold), quantile, len(loo), float(p50), float(p90), float(p99))


@dataclass(frozen=True)
class NoveltyScore:
    """One example's novelty: the derived column value of a monitor.

    ``novelty`` is the score compared with ``threshold``; ``distance`` the distance
    to ``nearest_known_call``. ``new_distribution`` is set when, after a detected
    shift, the domain classifier says the example belongs to the new distribution
    (it is then ``novel`` too).
    """

    call_id: str
    novelty: float
    distance: float
    nearest_known_call: str | None
    threshold: float
    novel: bool
    new_distribution: bool = False

    def as_value(self) -> dict[str, Any]:
        """The value written to the derived column (JSON-compatible)."""
        return {
            "novelty": self.novelty,
            "distance": self.distance,
            "nearest_known_call": self.nearest_known_call,
            "threshold": self.threshold,
            "novel": self.novel,
            "new_distribution": self.new_distribution,
        }


class NoveltyScorer:
    """Scores batches against the known set and learns acknowledged examples.

    Novel examples are remembered (at most ``learning.pending_capacity``, oldest
    forgotten first) so that acknowledging one later can add its vector.
    """

    def __init__(
        self,
        index: VectorIndex,
        calibration: Calibration,
        learning: LearningSpec,
        neighbours: int = 1,
    ) -> None:
        self.index = index
        self.neighbours = neighbours
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
        distances, neighbours = self.index.search(matrix, k=self.neighbours)
        threshold = self.threshold
        scores = []
        for position, call_id in enumerate(call_ids):
            row = distances[position]
            finite = row[np.isfinite(row)]
            novelty = float(finite.mean()) if len(finite) else float("inf")
            novel = novelty > threshold
            scores.append(
                NoveltyScore(
                    call_id, novelty, float(row[0]), neighbours[position][0], threshold, novel
                )
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
