"""Late calls: the local runner counts by event time, ``as_streamed`` answers as the stream."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from weave_stream.aggregates.queries import query_tables
from weave_stream.runners.local import local_aggregates
from weave_stream.topology.loader import topology_from_dict

START = datetime(2026, 11, 26, 10, 0, tzinfo=UTC)
TOPOLOGY = topology_from_dict(
    {
        "name": "late",
        "source": {"op_name": "text-extract"},
        "aggregates": [
            {
                "name": "per_minute",
                "window": "1m",
                "grace": "30s",
                "metrics": {"duration_seconds": ["count", "mean"]},
            }
        ],
    }
)


def call(number: int, started: timedelta, took: timedelta) -> dict:
    begin = START + started
    return {
        "id": f"late-{number}",
        "project_id": "acme/extract",
        "op_name": "text-extract",
        "trace_id": f"trace-{number}",
        "started_at": begin.isoformat(),
        "ended_at": (begin + took).isoformat(),
        "inputs": {"document": f"document {number}"},
        "output": "ok",
    }


def test_a_call_that_arrives_after_its_window_closed_counts_locally_not_as_streamed() -> None:
    # In arrival order: quick calls at 10:05, then one that started at 10:00 and took
    # six minutes, so it arrives (ends) at 10:06, long after its window closed (10:01:30).
    calls = [call(n, timedelta(minutes=5, seconds=n), timedelta(seconds=1)) for n in range(8)]
    calls.append(call(99, timedelta(0), timedelta(minutes=6)))

    plans, local = local_aggregates(TOPOLOGY, calls, values=[])
    (by_time,) = query_tables(plans, local)
    plans, streamed = local_aggregates(TOPOLOGY, calls, values=[], as_streamed=4)
    (as_streamed,) = query_tables(plans, streamed)

    assert by_time.late_rows == 0 and int(by_time.frame["rows"].sum()) == 9
    assert as_streamed.late_rows == 1 and int(as_streamed.frame["rows"].sum()) == 8
    first = by_time.frame.iloc[0]
    assert first["window_start"] == START and first["duration_seconds.mean"] == 360.0
    assert as_streamed.frame.iloc[0]["window_start"] == START + timedelta(minutes=5)
