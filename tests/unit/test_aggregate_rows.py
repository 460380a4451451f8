"""Rows for the windowed aggregates from calls and derived values (both runners use them)."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

import pytest

from weave_stream.aggregates.rows import DURATION, RowBuilder, field_of, primary_value
from weave_stream.columns.derive import DerivedValue
from weave_stream.errors import TopologyError
from weave_stream.ingest.call import parse_call_object
from weave_stream.ops import op
from weave_stream.topology.aggregates import parse_aggregates
from weave_stream.topology.spec import Column, Source, Topology

AT = datetime(2026, 11, 26, 3, 0, tzinfo=UTC)


@op
def label(text: str) -> dict[str, Any]:
    return {"label": "long" if len(text) > 10 else "short", "confidence": 0.5}


@op(deterministic=False)
def judge(text: str) -> dict[str, Any]:
    return {"score": 0.5, "reason": "fine"}


def topology(**source: Any) -> Topology:
    return Topology(
        "t",
        [
            Column("doc_class", label, args={"text": "inputs.document"}),
            Column("quality", judge, args={"text": "inputs.document"}, trials=3),
        ],
        source=Source(**source) if source else Source(),
    )


def builder(metrics: dict[str, list[str]], group_by: list[str], **source: Any) -> RowBuilder:
    entry = {"name": "q", "window": "1h", "group_by": group_by, "metrics": metrics}
    return RowBuilder(topology(**source), parse_aggregates([entry], "t"))


def call(call_id: str, **fields: Any) -> dict[str, Any]:
    data = {
        "id": call_id,
        "op_name": "text-extract",
        "trace_id": f"trace-{call_id}",
        "started_at": "2026-11-26T03:00:00Z",
        "ended_at": "2026-11-26T03:00:01.5Z",
        "attributes": {"model": "gpt-4o-mini"},
        "inputs": {"document": "a long enough document"},
        "summary": {"usage": {"gpt-4o-mini": {"prompt_tokens": 120}}},
        **fields,
    }
    return parse_call_object(data).to_dict()


def value(call_id: str, column: str, content: Any, trial: int = 0, **extra: Any) -> DerivedValue:
    return DerivedValue(
        call_id=call_id,
        topology="t",
        column=column,
        op_ref=f"{column}:v1",
        trial=trial,
        value=content,
        computed_at=AT,
        **extra,
    )


def test_primary_values_are_the_label_the_score_or_the_value_and_fields_reach_inside() -> None:
    assert primary_value({"label": "money", "confidence": 0.9}) == "money"
    assert primary_value({"score": 0.25, "reason": "x"}) == 0.25
    assert primary_value([1, 2]) == [1, 2]
    assert field_of({"label": "money", "confidence": 0.9}, "confidence") == 0.9
    assert field_of({"a": [{"b": 3}]}, "a.0.b") == 3
    assert field_of({"a": 1}, "missing") is None


def test_call_fields_columns_and_fields_inside_columns_become_keys_and_values() -> None:
    rows_of = builder(
        {
            "quality": ["mean", "cost_sum", "error_rate"],
            "doc_class.confidence": ["mean"],
            "summary.usage.gpt-4o-mini.prompt_tokens": ["sum"],
            DURATION: ["mean"],
        },
        ["doc_class", "attributes.model", "op_name"],
    )
    values = [
        value("c1", "doc_class", {"label": "long", "confidence": 0.75}),
        value("c1", "quality", {"score": 0.8}, cost=0.002),
    ]
    (row,) = rows_of.rows([call("c1")], values)
    assert row.call_id == "c1" and row.trace_id == "trace-c1" and row.trial == 0
    assert row.event_time == AT.timestamp()
    assert row.fields == {
        "doc_class": "long",
        "attributes.model": "gpt-4o-mini",
        "op_name": "text-extract",
    }
    assert row.values == {
        "quality": 0.8,
        "doc_class.confidence": 0.75,
        "summary.usage.gpt-4o-mini.prompt_tokens": 120,
        DURATION: 1.5,
    }
    assert row.costs == {"quality": 0.002}
    assert row.op_refs == {"quality": "quality:v1", "doc_class.confidence": "doc_class:v1"}
    assert row.errors == ()


def test_trials_make_one_row_each_with_group_keys_from_the_nearest_trial_counted_once() -> None:
    rows_of = builder({"quality": ["mean"], "doc_class": ["counts"]}, ["doc_class"])
    values = [value("c1", "doc_class", {"label": "long"})]
    values += [value("c1", "quality", {"score": 0.1 * t}, trial=t) for t in range(3)]
    rows = rows_of.rows([call("c1")], values)
    assert [r.trial for r in rows] == [0, 1, 2]
    assert [r.fields["doc_class"] for r in rows] == ["long"] * 3  # grouped by every trial
    assert [r.values.get("doc_class") for r in rows] == ["long", None, None]  # counted once
    assert [r.values["quality"] for r in rows] == pytest.approx([0.0, 0.1, 0.2])


def test_a_failed_op_is_an_error_of_its_column_and_an_empty_group_key() -> None:
    rows_of = builder({"quality": ["mean", "error_rate"]}, ["doc_class"])
    values = [
        value("c1", "doc_class", None, error="model unavailable"),
        value("c1", "quality", None, error="timeout", cost=0.001),
    ]
    (row,) = rows_of.rows([call("c1")], values)
    assert row.fields == {"doc_class": None}
    assert row.errors == ("quality",) and "quality" not in row.values
    assert row.costs == {"quality": 0.001}  # a failed judge still cost money


def test_only_calls_the_source_selects_make_rows_and_a_call_without_values_still_counts() -> None:
    rows_of = builder(
        {"quality": ["mean"]},
        ["attributes.model"],
        op_name="text-extract",
        filter={"attributes.model": "gpt-4o-mini"},
    )
    calls = [
        call("kept"),
        call("other-op", op_name="summarize"),
        call("other-model", attributes={"model": "llama"}),
    ]
    rows = rows_of.rows(calls, [])
    assert [r.call_id for r in rows] == ["kept"]
    assert rows[0].values == {} and rows[0].fields == {"attributes.model": "gpt-4o-mini"}


def test_an_end_event_whose_start_never_came_is_placed_by_its_end_time() -> None:
    rows_of = builder({DURATION: ["mean"]}, [])
    data = call("c1")
    del data["started_at"]
    (row,) = rows_of.rows([data], [])
    assert row.event_time == datetime(2026, 11, 26, 3, 0, 1, 500000, tzinfo=UTC).timestamp()
    assert row.values == {DURATION: None}


def test_call_objects_and_their_json_data_give_the_same_rows() -> None:
    rows_of = builder({"quality": ["mean"], DURATION: ["mean"]}, ["attributes.model"])
    data = call("c1")
    values = [value("c1", "quality", {"score": 0.3})]
    assert rows_of.rows([parse_call_object(data)], values) == rows_of.rows([data], values)


def test_a_key_that_is_neither_a_column_nor_a_call_field_is_refused_at_load_time() -> None:
    with pytest.raises(TopologyError, match=r"'doc_klass' is neither a column.*doc_class"):
        builder({"quality": ["mean"]}, ["doc_klass"])
