"""Drift monitors: is a new embedding far from every known one, has the stream shifted?

::

    reference (first N calls | time range | JSONL file)        reference.py
        └─► FAISS index (exact | HNSW | IVF by size)    index.py, faiss_*.py, snapshot.py
              ├─► threshold = quantile of leave-one-out NN distances     novelty.py
              ▼
    observations (observation.py)
    batch of embeddings ─► novelty score (distance, nearest known call) ─► derived column
        │                        └─► above threshold: novel_example finding
        ├─► window vs reference (MMD / centroid, calibrated)  ─┐           shift.py
        └─► ADWIN / Page-Hinkley over the novelty stream      ─┴─► distribution_shift  change.py
                                                                   findings
    findings ─► storm grouping (one per group per cool-down) ─► alerts       storm.py

:class:`DriftMonitor` (monitor.py) wires these for one monitor of one topology;
the spec of a monitor (:class:`~weave_stream.topology.monitors.Monitor`) is a
topology's ``monitors:`` entry.
Everything here is plain Python: no broker, no event loop.
"""

from __future__ import annotations

from weave_stream.drift.change import NoveltyChange, NoveltyChangeDetector
from weave_stream.drift.faiss_index import FaissVectorIndex
from weave_stream.drift.findings import AlertKind, Finding, GroupKey, group_key
from weave_stream.drift.index import AddResult, VectorIndex, choose_kind
from weave_stream.drift.monitor import DriftMonitor, MonitorResult
from weave_stream.drift.novelty import Calibration, NoveltyScore, NoveltyScorer, calibrate
from weave_stream.drift.observation import Observation, observation_from_call
from weave_stream.drift.reference import (
    ReferenceCollector,
    read_reference_calls,
    reference_fingerprint,
)
from weave_stream.drift.shift import WindowResult, WindowTest
from weave_stream.drift.snapshot import IndexSnapshot, load_or_rebuild, load_snapshot, save_snapshot
from weave_stream.drift.storm import StormGuard

__all__ = [
    "AddResult",
    "AlertKind",
    "Calibration",
    "DriftMonitor",
    "FaissVectorIndex",
    "Finding",
    "GroupKey",
    "IndexSnapshot",
    "MonitorResult",
    "NoveltyChange",
    "NoveltyChangeDetector",
    "NoveltyScore",
    "NoveltyScorer",
    "Observation",
    "ReferenceCollector",
    "StormGuard",
    "VectorIndex",
    "WindowResult",
    "WindowTest",
    "calibrate",
    "choose_kind",
    "group_key",
    "load_or_rebuild",
    "load_snapshot",
    "observation_from_call",
    "read_reference_calls",
    "reference_fingerprint",
    "save_snapshot",
]
