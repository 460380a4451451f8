"""A drift monitor: novelty, shift detection and storm grouping over batches of embeddings.

This is what a runner wires: build (or load from its snapshot) a
:class:`DriftMonitor` once the reference is complete, then hand it batches of
:class:`Observation` s. :meth:`DriftMonitor.observe` returns one
:class:`~weave_stream.drift.novelty.NoveltyScore` per observation (the derived
column's values) and the findings to raise as alerts, already grouped by the
cool-down. :meth:`DriftMonitor.flush` releases grouped findings whose cool-down
ended while no new finding arrived; call it from a timer.

Window tests cost up to a few hundred milliseconds (permutation MMD): run
``observe`` off the event loop (``asyncio.to_thread``; numpy and FAISS release the
GIL). Group state is bounded: beyond ``max_groups`` the least recently seen
group's partial window and change detector are dropped.
"""

from __future__ import annotations

from collections import OrderedDict
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path
from typing import Any

import numpy as np

from weave_stream.drift.change import NoveltyChangeDetector
from weave_stream.drift.faiss_index import FaissVectorIndex
from weave_stream.drift.findings import Finding, GroupKey
from weave_stream.drift.index import AddResult
from weave_stream.drift.novelty import Calibration, NoveltyScore, NoveltyScorer, calibrate
from weave_stream.drift.observation import Observation, excerpt
from weave_stream.drift.shift import WindowTest
from weave_stream.drift.snapshot import load_or_rebuild, save_snapshot
from weave_stream.drift.storm import StormGuard
from weave_stream.errors import VectorIndexError
from weave_stream.metrics import ALERTS_GROUPED, ALERTS_RAISED, MONITOR_LEARNED, NOVELTY_DISTANCE
from weave_stream.topology.monitors import Monitor

__all__ = ["DriftMonitor", "MonitorResult"]

ExcerptLookup = Callable[[str], str | None]


@dataclass
class MonitorResult:
    """What one batch produced: a score per observation, and the findings to raise."""

    scores: list[NoveltyScore]
    findings: list[Finding] = field(default_factory=list)


@dataclass
class _GroupState:
    vectors: list[np.ndarray] = field(default_factory=list)
    call_ids: list[str] = field(default_factory=list)
    distances: list[float] = field(default_factory=list)
    novel: int = 0
    start: datetime | None = None
    detector: NoveltyChangeDetector | None = None


class DriftMonitor:
    """Novelty + shift + storm grouping for one monitor of one topology."""

    def __init__(
        self,
        topology: str,
        spec: Monitor,
        scorer: NoveltyScorer,
        window_test: WindowTest | None,
        *,
        excerpt_of: ExcerptLookup | None = None,
        max_groups: int = 10_000,
        stored: Mapping[str, Any] | None = None,
    ) -> None:
        self.topology = topology
        self._stored = dict(stored or {})  # what the snapshot keeps beside the index
        self.spec = spec
        self.scorer = scorer
        self.window_test = window_test
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
        scorer = NoveltyScorer(index, calibration.overridden_by(spec.threshold), spec.learning)
        window_test = None
        stored = extra.get("window_test")
        if spec.shift.enabled and isinstance(stored, Mapping):
            base = index.vectors_of(list(stored.get("base_ids", [])))
            window_test = WindowTest(
                base,
                spec.shift,
                bandwidth=float(stored["bandwidth"]),
                threshold=stored.get("threshold"),
                seed=seed,
            )
        return cls(topology, spec, scorer, window_test, excerpt_of=excerpt_of, stored=extra)

    def save(self, directory: Path, *, fingerprint: str) -> None:
        """IndexSnapshot the index (with learned examples) and its calibration to ``directory``."""
        index = self.scorer.index
        if not isinstance(index, FaissVectorIndex):
            raise VectorIndexError(f"cannot snapshot a {type(index).__name__}")
        save_snapshot(index, directory, fingerprint=fingerprint, extra=self._stored)

    # -- scoring ------------------------------------------------------------------

    def observe(self, observations: Sequence[Observation]) -> MonitorResult:
        """Score a batch, run the shift detectors per group, group the findings."""
        if not observations:
            return MonitorResult([])
        vectors = np.vstack([o.vector for o in observations]).astype(np.float32, copy=False)
        scores = self.scorer.score([o.call_id for o in observations], vectors)
        raw: list[Finding] = []
        for observation, score in zip(observations, scores, strict=True):
            self._distance_metric.observe(score.distance)
            if score.novel:
                raw.append(self._novel(observation, score))
            raw.extend(self._shift(observation, score))
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
            detector="nearest_neighbour",
            score=score.distance,
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

    def _shift(self, observation: Observation, score: NoveltyScore) -> list[Finding]:
        shift = self.spec.shift
        if not shift.enabled:
            return []
        state = self._group_state(observation.group)
        findings = []
        if state.detector is not None:
            change = state.detector.update(score.distance)
            if change is not None:
                findings.append(
                    Finding(
                        kind="distribution_shift",
                        monitor=self.spec.name,
                        detector="adwin" if change.detector == "adwin" else "page_hinkley",
                        score=change.mean_after,
                        threshold=change.mean_before,
                        call_ids=(
                            *state.call_ids[-(self.spec.sample_size - 1) :],
                            observation.call_id,
                        )
                        if self.spec.sample_size > 1
                        else (observation.call_id,),
                        time=observation.time,
                        group=observation.group,
                        stats={
                            "mean_before": change.mean_before,
                            "mean_after": change.mean_after,
                            "observations": change.observations,
                        },
                    )
                )
        if self.window_test is None:
            return findings
        state.vectors.append(observation.vector)
        state.call_ids.append(observation.call_id)
        state.distances.append(score.distance)
        state.novel += int(score.novel)
        state.start = state.start or observation.time
        if len(state.vectors) >= shift.window:
            finding = self._test_window(state, observation)
            if finding is not None:
                findings.append(finding)
            state.vectors, state.call_ids, state.distances = [], [], []
            state.novel, state.start = 0, None
        return findings

    def _test_window(self, state: _GroupState, last: Observation) -> Finding | None:
        assert self.window_test is not None
        result = self.window_test.test(np.vstack(state.vectors))
        if not result.shifted:
            return None
        size = len(state.call_ids)
        picks = np.linspace(0, size - 1, num=min(size, self.spec.sample_size)).round().astype(int)
        return Finding(
            kind="distribution_shift",
            monitor=self.spec.name,
            detector="window_mmd" if self.spec.shift.statistic == "mmd" else "window_centroid",
            score=result.statistic,
            threshold=result.threshold,
            call_ids=tuple(state.call_ids[i] for i in picks),
            time=last.time,
            group=last.group,
            stats={
                "window_size": size,
                "p_value": result.p_value,
                "mean_novelty": float(np.mean(state.distances)),
                "novel_share": state.novel / size,
                "window_start": (state.start or last.time).isoformat(),
                "window_end": last.time.isoformat(),
            },
        )

    def _group_state(self, group: GroupKey) -> _GroupState:
        state = self._groups.get(group)
        if state is None:
            detector = None
            if self.spec.shift.detector != "none":
                detector = NoveltyChangeDetector(self.spec.shift)
            state = self._groups[group] = _GroupState(detector=detector)
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
    )
    extra: dict[str, Any] = {"calibration": calibration.to_dict()}
    if spec.shift.enabled:
        test = WindowTest.from_reference(matrix, spec.shift, seed=seed, where=spec.name)
        base_rows = test.base_rows if test.base_rows is not None else np.arange(0)
        extra["window_test"] = {**test.to_dict(), "base_ids": [ids[int(row)] for row in base_rows]}
    return index, extra
