"""The call record: shapes, validation reasons, timestamps, the start/end merge."""

from __future__ import annotations

from datetime import UTC, datetime

import orjson
import pytest

from tests.support.calls import FULL_CALL
from weave_stream.demo.samples import (
    corpus_documents,
    malformed_records,
    sample_calls,
    split_into_events,
)
from weave_stream.errors import CallValidationError, IngestError
from weave_stream.ingest.call import Call, call_from_json, parse_call, parse_timestamp
from weave_stream.ingest.merge import merge


def test_complete_call_round_trips_every_field() -> None:
    call = parse_call(orjson.dumps(FULL_CALL))
    assert call.kind == "complete"
    again = orjson.loads(call.to_json())
    for field, value in FULL_CALL.items():
        if value is None:
            assert field not in again  # nulls are omitted, and read back as None
            assert getattr(call, field) is None
        elif field in ("started_at", "ended_at"):
            assert parse_timestamp(again[field]) == parse_timestamp(value)
        else:
            assert again[field] == value, field
    assert call_from_json(call.to_json()) == call


@pytest.mark.parametrize(
    ("record", "kind"),
    [
        ({"id": "c1", "started_at": 1795662000}, "start"),
        ({"start": {"id": "c1", "started_at": 1795662000}}, "start"),
        ({"id": "c1", "ended_at": 1795662000, "summary": {}}, "end"),
        ({"end": {"id": "c1", "ended_at": 1795662000, "summary": {}}}, "end"),
        ({"id": "c1", "started_at": 1795662000, "ended_at": 1795662000}, "complete"),
    ],
)
def test_shape_is_detected_per_record(record: dict, kind: str) -> None:
    assert parse_call(orjson.dumps(record)).kind == kind


@pytest.mark.parametrize(
    ("value", "expected"),
    [
        ("2026-11-26T03:15:32.123456Z", datetime(2026, 11, 26, 3, 15, 32, 123456, tzinfo=UTC)),
        ("2026-11-26T04:15:32+01:00", datetime(2026, 11, 26, 3, 15, 32, tzinfo=UTC)),
        ("2026-11-26T03:15:32", datetime(2026, 11, 26, 3, 15, 32, tzinfo=UTC)),  # naive: UTC
        (1795662000, datetime(2026, 11, 26, 3, 0, tzinfo=UTC)),
        (1795662000.25, datetime(2026, 11, 26, 3, 0, 0, 250000, tzinfo=UTC)),
    ],
)
def test_timestamps_are_iso_or_epoch_seconds_in_utc(value: object, expected: datetime) -> None:
    assert parse_timestamp(value) == expected


@pytest.mark.parametrize(
    ("raw", "reason", "mentions"),
    [
        (b"{not json", "invalid_json", "not valid JSON"),
        (b"42", "not_an_object", "number"),
        (b'{"end": [1]}', "not_an_object", "'end'"),
        (b'{"started_at": 1795662000}', "missing_id", "'id'"),
        (b'{"id": null, "started_at": 1795662000}', "missing_id", "'id'"),
        (b'{"id": 17, "started_at": 1795662000}', "malformed_id", "17"),
        (b'{"id": "", "started_at": 1795662000}', "malformed_id", "''"),
        (b'{"id": "a b", "started_at": 1795662000}', "malformed_id", "'a b'"),
        (b'{"id": "c", "started_at": 1795662000, "inputs": [1]}', "wrong_type", "inputs"),
        (b'{"id": "c", "started_at": 1795662000, "wb_run_step": "x"}', "wrong_type", "wb_run_step"),
        (
            b'{"id": "c", "ended_at": 1795662000, "summary": {"usage": {"m": {"requests": "x"}}}}',
            "wrong_type",
            "summary.usage.m.requests",
        ),
        (b'{"id": "c", "started_at": "soon"}', "bad_timestamp", "'soon'"),
        (b'{"id": "c", "started_at": 1795662000000}', "bad_timestamp", "milliseconds"),
        (b'{"id": "c", "started_at": "1999-01-01T00:00:00Z"}', "bad_timestamp", "2000..2200"),
        (b'{"id": "c", "started_at": true}', "bad_timestamp", "boolean"),
        (
            b'{"id": "c", "started_at": 1795662001, "ended_at": 1795662000}',
            "bad_timestamp",
            "before started_at",
        ),
        (b'{"id": "c", "op_name": "x"}', "unknown_shape", "neither started_at nor ended_at"),
        (b'{"start": {"id": "c", "ended_at": 1795662000}}', "wrong_type", "no started_at"),
    ],
)
def test_each_bad_record_gets_a_reason_and_a_message_that_names_it(
    raw: bytes, reason: str, mentions: str
) -> None:
    with pytest.raises(CallValidationError) as caught:
        parse_call(raw)
    assert caught.value.reason == reason
    assert mentions in caught.value.detail


def test_payload_over_the_limit_is_refused_before_parsing() -> None:
    raw = orjson.dumps({"id": "c", "started_at": 1795662000, "inputs": {"d": "x" * 2000}})
    with pytest.raises(CallValidationError) as caught:
        parse_call(raw, max_payload_bytes=1024)
    assert caught.value.reason == "too_large"
    assert str(len(raw)) in caught.value.detail
    assert parse_call(raw, max_payload_bytes=len(raw)).id == "c"


def test_sample_malformed_records_each_fail_with_the_reason_they_stand_for() -> None:
    for reason, raw in malformed_records(max_payload_bytes=4096):
        with pytest.raises(CallValidationError) as caught:
            parse_call(raw, max_payload_bytes=4096)
        assert caught.value.reason == reason


def test_merge_joins_start_and_end_events_into_the_complete_call() -> None:
    complete = sample_calls(corpus_documents("english", ["food"])[:1])[0]
    start, end = split_into_events(complete)
    merged = merge(parse_call(orjson.dumps(start)), parse_call(orjson.dumps({"end": end})))
    assert merged.kind == "complete"
    assert merged == parse_call(orjson.dumps(complete))


def test_merge_refuses_halves_of_different_calls() -> None:
    start = Call.model_validate({"id": "a", "started_at": 1795662000})
    end = Call.model_validate({"id": "b", "ended_at": 1795662000})
    with pytest.raises(IngestError, match="ids differ"):
        merge(start, end)
