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


def at(seconds: float) -> datetime:
    return T0 + timedelta(seconds=seconds)


def test_first_n_is_the_first_calls_in_call_order_not_in_arrival_order() -> None:
    # Two source partitions; partition 0 runs ahead: calls 4..7 arrive before 0..3.
    collector = ReferenceCollector(FirstNReference(n=4), partitions=2)
    for second in (4, 5, 6, 7, 4):  # a repeated id counts once
        collector.offer(f"c{second}", np.full(2, second), at(second), partition=0)
    assert not collector.is_complete()  # partition 1 has sent nothing yet
    for second in (0, 1, 2):
        collector.offer(f"c{second}", np.full(2, second), at(second), partition=1)
    assert not collector.is_complete()  # c3 (partition 1) may still come
    collector.progress(1, at(2.5))  # a call without embedding, or one filtered out
    assert not collector.is_complete()
    collector.offer("c3", np.full(2, 3), at(3), partition=1)

    assert collector.is_complete() and collector.ids == ["c0", "c1", "c2", "c3"]
    assert collector.vectors[:, 0].tolist() == [0, 1, 2, 3]
    assert collector.rest() == ["c4", "c5", "c6", "c7"]
    assert "call order" in collector.how and "every one of 2" in collector.how


def test_equal_times_are_ordered_by_id() -> None:
    collector = ReferenceCollector(FirstNReference(n=2))
    for call_id in ("b", "c", "a"):
        collector.offer(call_id, np.ones(2), at(0), partition=0)
    collector.progress(0, at(1))
    assert collector.is_complete() and collector.ids == ["a", "b"]


def test_a_silent_partition_holds_the_reference_back_only_for_a_bounded_number_of_calls() -> None:
    collector = ReferenceCollector(FirstNReference(n=3), partitions=2, wait_calls=5)
    for second in range(7):
        collector.offer(f"c{second}", np.ones(2), at(second), partition=0)
        assert not collector.is_complete()
    collector.offer("c7", np.ones(2), at(7), partition=0)

    assert collector.is_complete() and collector.ids == ["c0", "c1", "c2"]
    assert "partitions [1] had not passed" in collector.how


def test_a_time_range_takes_calls_started_in_it_once_every_partition_passed_its_end() -> None:
    collector = ReferenceCollector(
        TimeRangeReference(start=T0, end=T0 + timedelta(hours=1)), partitions=2
    )
    collector.offer("early", np.ones(2), T0 - timedelta(seconds=1), partition=0)
    collector.offer("in", np.ones(2), T0 + timedelta(minutes=5), partition=0)
    collector.offer("late", np.ones(2), T0 + timedelta(hours=1), partition=0)
    collector.offer("no-time", np.ones(2), None)
    assert not collector.is_complete()  # partition 1 may still send calls of the range
    collector.offer("in-too", np.ones(2), T0 + timedelta(minutes=1), partition=1)
    assert not collector.is_complete()
    collector.progress(1, T0 + timedelta(hours=2))

    assert collector.is_complete() and collector.ids == ["in-too", "in"]
    assert collector.rest() == ["early", "late", "no-time"]


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
    collector.offer("streamed", np.ones(2))
    assert not collector.is_complete()
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


def test_a_quiet_stream_settles_the_reference_with_the_calls_that_came() -> None:
    collector = ReferenceCollector(FirstNReference(n=2), partitions=2)
    collector.offer("c1", np.ones(2), at(1), partition=0)
    assert not collector.settle("quiet")  # not enough calls yet
    collector.offer("c0", np.ones(2), at(0), partition=0)
    collector.offer("c2", np.ones(2), at(2), partition=0)
    assert not collector.is_complete()  # partition 1 never sent anything

    assert collector.settle("no call had arrived for 5 s") and collector.is_complete()
    assert collector.ids == ["c0", "c1"] and "no call had arrived" in collector.how
