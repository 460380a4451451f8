"""A column whose values are all errors fails a component of its own (/readyz, status)."""

from __future__ import annotations

import asyncio
from types import SimpleNamespace
from typing import Any

import pytest

from weave_stream.columns.cache import MemoryCache
from weave_stream.columns.derive import derive_batch
from weave_stream.config import Settings
from weave_stream.ingest.call import parse_call_object
from weave_stream.runners.streaming.column_health import ColumnHealth
from weave_stream.runners.streaming.health import HEALTH
from weave_stream.topology.spec import Column, Source, Topology

COMPONENT = "topology/t/columns/faithfulness"


def judged(settings: Settings, count: int, start: int = 0) -> list[Any]:
    """The values of a judge column over ``count`` calls, as a worker computes them."""
    topology = Topology(
        "t",
        [
            Column(
                "faithfulness",
                "judge",
                args={"document": "inputs.document"},
                params={"prompt": "Is this fine? {document}", "retries": 0},
            )
        ],
        source=Source(op_name="x"),
        settings=settings,
    )
    calls = [
        {
            "id": f"c{i}",
            "op_name": "x",
            "started_at": 1795662000 + i,
            "inputs": {"document": f"d{i}"},
        }
        for i in range(start, start + count)
    ]
    # As a worker derives (run_local refuses to start without an endpoint, a worker cannot).
    return asyncio.run(derive_batch(topology, [parse_call_object(c) for c in calls], MemoryCache()))


def test_a_judge_with_no_endpoint_fails_its_column_and_one_answer_mends_it(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Any
) -> None:
    monkeypatch.delenv("OPENAI_BASE_URL", raising=False)
    health = ColumnHealth("t", threshold=10)
    try:
        failing = judged(Settings(data_dir=tmp_path), 9)
        assert all(v.error for v in failing)
        health.observe(failing)
        assert COMPONENT not in HEALTH.snapshot()  # 9 errors: not yet
        health.observe(judged(Settings(data_dir=tmp_path), 1, start=9))
        state = HEALTH.snapshot()[COMPONENT]
        assert state["state"] == "failed"
        assert "the last 10 values of column faithfulness were errors" in state["last_error"]
        assert "the judge has no endpoint" in state["last_error"]
        # An endpoint set and answering: the column's next value is a score.
        answered = [SimpleNamespace(column="faithfulness", error=None, value={"score": 1.0})]
        health.observe(answered)
        assert HEALTH.snapshot()[COMPONENT]["state"] == "ok"
    finally:
        HEALTH.forget(COMPONENT)


def test_a_topics_column_waiting_for_its_map_is_left_to_its_own_component() -> None:
    class Value:
        column, error = "topic", "no topic map for t.e yet"

    health = ColumnHealth("t", skip={"topic"}, threshold=2)
    health.observe([Value()] * 5)
    assert "topology/t/columns/topic" not in HEALTH.snapshot()
