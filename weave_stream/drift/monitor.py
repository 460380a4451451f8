"""A drift monitor: novelty, shift detection and storm grouping over batches of embeddings.

This is what a runner wires: build (or load from its snapshot) a
:class:`DriftMonitor` once the reference is complete, then hand it batches of
:class:`Observation` s. :meth:`DriftMonitor.observe` returns one
:class:`~weave_stream.drift.novelty.NoveltyScore` per observation (the derived
column's values) and the findings to raise as alerts, already grouped by the
cool-down. :meth:`DriftMonitor.flush` releases grouped findings whose cool-down
ended while no new finding arrived; call it from a timer.

Scoring is a batched FAISS search; the shift test costs a few microseconds per
call, training the domain classifier after a shift tens of milliseconds: run
``observe`` off the event loop all the same (``asyncio.to_thread``; numpy and
FAISS release the GIL). Group state is bounded: beyond ``max_groups`` the least
recently seen group's window and domain classifier are dropped.
"""

from __future__ import annotations

from collections import OrderedDict, deque
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field, replace
from datetime import datetime
from pathlib import Path
from typing import Any

import numpy as np

from weave_stream.drift.domain import DomainClassifier
from weave_stream.drift.faiss_index import FaissVectorIndex
from weave_stream.drift.findings import Finding, GroupKey
from weave_stream.drift.index import AddResult
from weave_stream.drift.novelty import Calibration, NoveltyScore, NoveltyScorer, calibrate
from weave_stream.drift.observation import Observation, excerpt
from weave_stream.drift.shift import ShiftResult, ShiftTest, ShiftWindow
from weave_stream.drift.snapshot import load_or_rebuild, save_snapshot
from weave_stream.drift.storm import StormGuard
from weave_stream.errors import VectorIndexError
from weave_stream.metrics import ALERTS_GROUPED, ALERTS_RAISED, MONITOR_LEARNED, NOVELTY_DISTANCE
from weave_stream.topology.monitors import Monitor

__all__ = ["DriftMonitor", "MonitorResult"]

# The domain classifier is dropped this many longest-windows after the last alarm.
_DOMAIN_LIFETIME = 4

ExcerptLookup = Callable[[str], str | None]


@dataclass
class MonitorResult:
    """What one batch produced: a score per observation, and the findings to raise."""

    scores: list[NoveltyScore]
    findings: list[Finding] = field(default_factory=list)


@dataclass
class _GroupState:
    window: ShiftWindow
    vectors: deque[np.ndarray]
    call_ids: deque[str]
    novelty: deque[float]
    novel: deque[bool]
    times: deque[datetime]
    domain: DomainClassifier | None = None
    positives: list[np.ndarray] = field(default_factory=list)
    calls_since_shift: int = 0

    @classmethod
    def new(cls, test: ShiftTest) -> _GroupState:
        size = max(test.scales)
        return cls(
            test.window(), deque(maxlen=size), deque(maxlen=size), deque(maxlen=size),
            deque(maxlen=size), deque(maxlen=size),
        )  # fmt: skip


class DriftMonitor:
    """Novelty + shift + storm grouping for one monitor of one topology."""

    def __init__(
        self,
        topology: str,
        spec: Monitor,
        scorer: NoveltyScorer,
        shift_test: ShiftTest | None,
        *,
        excerpt_of: ExcerptLookup | None = None,
        max_groups: int = 10_000,
        stored: Mapping[str, Any] | None = None,
    ) -> None:
        self.topology = topology
        self._stored = dict(stored or {})  # what the snapshot keeps beside the index
        self.spec = spec
        self.scorer = scorer
        self.shift_test = shift_test
        self._reference_halves: tuple[np.ndarray, np.ndarray] | None = None
        self.excerpt_of = excerpt_of
        self.max_groups = max_groups
        self.storm = StormGuard(spec.cooldown, spec.sample_size)
        self._groups: OrderedDict[GroupKey, _GroupState] = OrderedDict()
        self._distance_metric = NOVELTY_DISTANCE.labels(topology, spec.name)

    # -- construction -------------------------------------------------------------

    @classmethod
    def build(
        cls,
        topology: str,
        spec: Monitor,
        ids: Sequence[str],
        vectors: np.ndarray,
        *,
        seed: int = 0,
        excerpt_of: ExcerptLookup | None = None,
    ) -> DriftMonitor:
        """Build the index, calibrate the threshold and the window test from the reference."""
        index, extra = _build_index(spec, ids, vectors, seed)
        return cls._restore(topology, spec, index, extra, seed, excerpt_of)

    @classmethod
    def open(
        cls,
        topology: str,
        spec: Monitor,
        directory: Path,
        *,
        fingerprint: str,
        load_reference: Callable[[], tuple[Sequence[str], np.ndarray]],
        seed: int = 0,
        excerpt_of: ExcerptLookup | None = None,
    ) -> DriftMonitor:
        """Load the monitor's index snapshot from ``directory``, or rebuild it from the reference.

        ``load_reference()`` is only called for a rebuild (snapshot missing, corrupt
        or built from another reference, as ``fingerprint`` tells).
        """
        where = f"topology {topology!r}, monitor {spec.name!r}"

        def rebuild() -> tuple[FaissVectorIndex, Mapping[str, Any]]:
            ids, vectors = load_reference()
            return _build_index(spec, ids, vectors, seed)

        snapshot = load_or_rebuild(directory, fingerprint=fingerprint, rebuild=rebuild, where=where)
        try:
            return cls._restore(topology, spec, snapshot.index, snapshot.extra, seed, excerpt_of)
        except VectorIndexError:
            if snapshot.rebuilt:
                raise
            index, extra = rebuild()  # the snapshot's extra data did not match its index
            save_snapshot(index, directory, fingerprint=fingerprint, extra=extra)
            return cls._restore(topology, spec, index, extra, seed, excerpt_of)

    @classmethod
    def _restore(
        cls,
        topology: str,
        spec: Monitor,
        index: FaissVectorIndex,
        extra: Mapping[str, Any],
        seed: int,
        excerpt_of: ExcerptLookup | None,
    ) -> DriftMonitor:
        calibration = Calibration.from_dict(extra.get("calibration", {}))
        scorer = NoveltyScorer(
            index, calibration.overridden_by(spec.threshold), spec.learning, spec.neighbours
        )
        shift_test = None
        stored = extra.get("shift_test")
        if spec.shift.enabled and isinstance(stored, Mapping):
            shift_test = ShiftTest.fitted(
                spec.shift,
                index.vectors_of(list(stored["fit_ids"])),
                tuple(int(k) for k in stored["scales"]),
                float(stored["scale_norm"]),
                float(stored["threshold"]),
                _spread(stored.get("spread")),
            )
        return cls(topology, spec, scorer, shift_test, excerpt_of=excerpt_of, stored=extra)

    def save(self, directory: Path, *, fingerprint: str) -> None:
        """IndexSnapshot the index (with learned examples) and its calibration to ``directory``."""
        index = self.scorer.index
        if not isinstance(index, FaissVectorIndex):
            raise VectorIndexError(f"cannot snapshot a {type(index).__name__}")
        save_snapshot(index, directory, fingerprint=fingerprint, extra=self._stored)

    # -- scoring ------------------------------------------------------------------

    def observe(self, observations: Sequence[Observation]) -> MonitorResult:
        """Score a batch, run the shift test per group, group the findings."""
        if not observations:
            return MonitorResult([])
        vectors = np.vstack([o.vector for o in observations]).astype(np.float32, copy=False)
        scores = self.scorer.score([o.call_id for o in observations], vectors)
        raw: list[Finding] = []
        for position, observation in enumerate(observations):
            score = scores[position]
            state = self._group_state(observation.group)
            domain = state.domain if state is not None else None
            if domain is not None and not score.novel and domain.flags(observation.vector[None])[0]:
                score = scores[position] = replace(score, novel=True, new_distribution=True)
            self._distance_metric.observe(score.distance)
            if score.novel:
                raw.append(self._novel(observation, score))
            if state is not None:
                raw.extend(self._shift(state, observation, score))
        return MonitorResult(scores, self._group(raw))

    def flush(self, now: datetime) -> list[Finding]:
        """Grouped findings whose cool-down ended by ``now`` (call from a timer)."""
        ready = self.storm.flush(now)
        for finding in ready:
            ALERTS_RAISED.labels(self.topology, finding.kind).inc()
        return ready

    def acknowledge(self, call_ids: Sequence[str]) -> AddResult:
        """Acknowledge novel examples; the learning policy decides whether they become known."""
        result = self.scorer.acknowledge(call_ids)
        for outcome, ids in (
            ("added", result.added),
            ("evicted", result.evicted),
            ("rejected", result.rejected),
        ):
            if ids:
                MONITOR_LEARNED.labels(self.topology, self.spec.name, outcome).inc(len(ids))
        return result

    def _novel(self, observation: Observation, score: NoveltyScore) -> Finding:
        nearest = score.nearest_known_call
        return Finding(
            kind="novel_example",
            monitor=self.spec.name,
            detector="domain_classifier" if score.new_distribution else "nearest_neighbours",
            score=score.novelty,
            threshold=score.threshold,
            call_ids=(observation.call_id,),
            time=observation.time,
            group=observation.group,
            nearest_known_call=nearest,
            excerpt=excerpt(observation.text),
            nearest_known_excerpt=excerpt(self.excerpt_of(nearest))
            if self.excerpt_of and nearest
            else None,
        )

    def _shift(
        self, state: _GroupState, observation: Observation, score: NoveltyScore
    ) -> list[Finding]:
        state.vectors.append(observation.vector)
        state.call_ids.append(observation.call_id)
        state.novelty.append(score.novelty)
        state.novel.append(score.novel)
        state.times.append(observation.time)
        state.calls_since_shift += 1
        longest = max(state.window.test.scales)
        if state.domain is not None and state.calls_since_shift > _DOMAIN_LIFETIME * longest:
            state.domain, state.positives = None, []  # the shift is over (or was learned)
        result = state.window.push(observation.vector)
        if result is None or not result.shifted:
            return []
        finding = self._shift_finding(state, result, observation)
        if self.spec.shift.domain_classifier:
            self._train_domain(state, result.calls)
        for buffer in (state.vectors, state.call_ids, state.novelty, state.novel, state.times):
            buffer.clear()
        state.calls_since_shift = 0
        return [finding]

    def _shift_finding(self, state: _GroupState, result: ShiftResult, last: Observation) -> Finding:
        size = min(result.calls, len(state.call_ids))
        call_ids = list(state.call_ids)[-size:]
        picks = np.linspace(0, size - 1, num=min(size, self.spec.sample_size)).round().astype(int)
        return Finding(
            kind="distribution_shift",
            monitor=self.spec.name,
            detector="sliding_" + self.spec.shift.statistic,  # type: ignore[arg-type]
            score=result.statistic,
            threshold=result.threshold,
            call_ids=tuple(call_ids[i] for i in picks),
            time=last.time,
            group=last.group,
            excerpt=excerpt(last.text),  # the call that tipped the window: of the new kind
            stats={
                "window_size": size,
                "mean_novelty": float(np.mean(list(state.novelty)[-size:])),
                "novel_share": float(np.mean(list(state.novel)[-size:])),
                "window_start": list(state.times)[-size].isoformat(),
                "window_end": last.time.isoformat(),
            },
        )

    def _train_domain(self, state: _GroupState, calls: int) -> None:
        halves = self._halves()
        if halves is None:
            return
        longest = max(state.window.test.scales)
        state.positives = (state.positives + list(state.vectors)[-calls:])[-longest:]
        state.domain = DomainClassifier.train(
            halves[0], halves[1], np.vstack(state.positives), quantile=0.99
        )

    def _halves(self) -> tuple[np.ndarray, np.ndarray] | None:
        """The reference's fitting and held-out halves (the domain classifier's negatives)."""
        if self._reference_halves is None:
            stored = self._stored.get("shift_test")
            if not isinstance(stored, Mapping) or "held_out_ids" not in stored:
                return None
            index = self.scorer.index
            if not isinstance(index, FaissVectorIndex):
                return None
            self._reference_halves = (
                index.vectors_of(list(stored["fit_ids"])),
                index.vectors_of(list(stored["held_out_ids"])),
            )
        return self._reference_halves

    def _group_state(self, group: GroupKey) -> _GroupState | None:
        if self.shift_test is None:
            return None
        state = self._groups.get(group)
        if state is None:
            state = self._groups[group] = _GroupState.new(self.shift_test)
            while len(self._groups) > self.max_groups:
                self._groups.popitem(last=False)
        self._groups.move_to_end(group)
        return state

    def _group(self, raw: list[Finding]) -> list[Finding]:
        ready: list[Finding] = []
        for finding in raw:
            released = self.storm.offer(finding)
            if not any(f is finding for f in released):
                ALERTS_GROUPED.labels(self.topology, finding.kind).inc()
            ready.extend(released)
        for finding in ready:
            ALERTS_RAISED.labels(self.topology, finding.kind).inc()
        return ready


def _build_index(
    spec: Monitor, ids: Sequence[str], vectors: np.ndarray, seed: int
) -> tuple[FaissVectorIndex, dict[str, Any]]:
    matrix = np.ascontiguousarray(vectors, dtype=np.float32)
    index = FaissVectorIndex.build(
        list(ids),
        matrix,
        spec.index,
        pinned=True,
        capacity=len(ids) + spec.learning.capacity,
        eviction=spec.learning.eviction,
        seed=seed,
    )
    calibration = calibrate(
        index,
        list(ids),
        matrix,
        quantile=spec.calibration_quantile,
        sample_size=spec.calibration_sample,
        seed=seed,
        neighbours=spec.neighbours,
    )
    extra: dict[str, Any] = {"calibration": calibration.to_dict()}
    if spec.shift.enabled:
        test = ShiftTest.from_reference(matrix, spec.shift, seed=seed, where=spec.name)
        assert test.fit_rows is not None and test.held_out_rows is not None
        extra["shift_test"] = {
            **test.to_dict(),
            "fit_ids": [ids[int(row)] for row in test.fit_rows],
            "held_out_ids": [ids[int(row)] for row in test.held_out_rows],
        }
    return index, extra


def _spread(stored: Any) -> tuple[float, float] | None:
    """The stored spread statistics (absent from snapshots older than the spread term)."""
    if not isinstance(stored, list | tuple) or len(stored) != 2:
        return None
    return float(stored[0]), float(stored[1])
