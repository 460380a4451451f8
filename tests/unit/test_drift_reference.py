"""References: gathered from the stream (first N, time range) or read from a JSONL file."""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta
from pathlib import Path

import numpy as np
import pytest

from weave_stream.drift.reference import (
    ReferenceCollector,
    read_reference_calls,
    reference_fingerprint,
)
from weave_stream.errors import TopologyError
from weave_stream.topology.monitors import (
    FirstNReference,
    JsonlReference,
    Monitor,
    TimeRangeReference,
)

T0 = datetime(2026, 11, 1, tzinfo=UTC)


def test_first_n_takes_the_first_distinct_calls_and_then_is_complete() -> None:
    collector = ReferenceCollector(FirstNReference(n=3))

    taken = [collector.offer(cid, np.full(4, i)) for i, cid in enumerate("aabcd")]

    assert taken == [True, False, True, True, False]
    assert collector.is_complete() and collector.ids == ["a", "b", "c"]
    assert collector.vectors.shape == (3, 4) and collector.vectors[2, 0] == 3


def test_a_time_range_takes_calls_started_in_it_and_completes_when_time_passes_its_end() -> None:
    collector = ReferenceCollector(TimeRangeReference(start=T0, end=T0 + timedelta(hours=1)))

    taken = [
        collector.offer("early", np.ones(2), T0 - timedelta(seconds=1)),
        collector.offer("in", np.ones(2), T0 + timedelta(minutes=5)),
        collector.offer("late", np.ones(2), T0 + timedelta(hours=1)),
        collector.offer("no-time", np.ones(2), None),
    ]

    assert taken == [False, True, False, False] and collector.ids == ["in"]
    assert not collector.is_complete(T0 + timedelta(minutes=59))
    assert collector.is_complete(T0 + timedelta(hours=1))


def write_jsonl(path: Path, records: list[object]) -> JsonlReference:
    path.write_text("\n".join(json.dumps(r) for r in records) + "\n\n")
    return JsonlReference(path=path)


def test_a_jsonl_reference_yields_complete_and_merged_calls(tmp_path: Path) -> None:
    spec = write_jsonl(
        tmp_path / "known.jsonl",
        [
            {
                "id": "k1",
                "started_at": "2026-11-01T00:00:00Z",
                "ended_at": "2026-11-01T00:00:01Z",
                "inputs": {"document": "Invoice 1"},
            },
            {"id": "k2", "started_at": "2026-11-01T00:00:00Z", "inputs": {"document": "Invoice 2"}},
            {"end": {"id": "k2", "ended_at": "2026-11-01T00:00:02Z", "summary": {}}},
            {"id": "k3", "started_at": "2026-11-01T00:00:00Z", "inputs": {"document": "Invoice 3"}},
        ],
    )

    calls = read_reference_calls(spec)

    assert [(c.id, c.kind) for c in calls] == [
        ("k1", "complete"),
        ("k2", "complete"),
        ("k3", "start"),
    ]
    assert calls[2].inputs == {"document": "Invoice 3"}
    collector = ReferenceCollector(spec)
    assert not collector.offer("streamed", np.ones(2)) and not collector.is_complete()
    collector.add([c.id for c in calls], np.eye(3, 2))
    assert collector.is_complete() and collector.ids == ["k1", "k2", "k3"]


def test_a_bad_line_in_a_jsonl_reference_names_the_file_line_and_reason(tmp_path: Path) -> None:
    spec = write_jsonl(
        tmp_path / "known.jsonl", [{"id": "k1", "started_at": 1795000000}, {"no": "id"}]
    )

    with pytest.raises(TopologyError, match=r"known.jsonl, line 2: missing_id"):
        read_reference_calls(spec, where="monitor 'm'")


def test_a_missing_jsonl_reference_says_so(tmp_path: Path) -> None:
    with pytest.raises(TopologyError, match="cannot be read"):
        read_reference_calls(JsonlReference(path=tmp_path / "absent.jsonl"))


def test_the_fingerprint_changes_with_the_reference_and_the_spec() -> None:
    spec = Monitor(name="m", column="e", reference=FirstNReference(n=2))
    other = Monitor(name="m", column="e", reference=FirstNReference(n=2), calibration_quantile=0.9)

    base = reference_fingerprint(spec, ["a", "b"])

    assert base == reference_fingerprint(spec, ["a", "b"])
    assert base != reference_fingerprint(spec, ["a", "c"])
    assert base != reference_fingerprint(other, ["a", "b"])
    assert base != reference_fingerprint(spec, ["a", "b"], source="topic@42")
