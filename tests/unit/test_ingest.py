"""The ingest stage: one outcome per record, the merge buffer, dead-letter records."""

from __future__ import annotations

import orjson

from weave_stream.demo.samples import corpus_documents, sample_calls, split_into_events
from weave_stream.ingest.outcomes import DeadLetter, expire_pending, ingest_record


def _events(index: int = 0) -> tuple[bytes, bytes, dict]:
    call = sample_calls(corpus_documents("english", ["food"]), seed="ingest")[index]
    start, end = split_into_events(call)
    return orjson.dumps(start), orjson.dumps({"end": end}), call


def test_complete_call_is_valid_and_passes_through_without_state() -> None:
    pending: dict = {}
    _, _, call = _events()
    result = ingest_record(orjson.dumps(call), pending, now=0.0)
    assert result.outcome == "valid"
    assert result.call is not None and result.call.id == call["id"]
    assert pending == {}


def test_start_then_end_merge_in_either_order() -> None:
    for first, second in ((0, 1), (1, 0)):
        start, end, call = _events()
        halves = (start, end)
        pending: dict = {}
        assert ingest_record(halves[first], pending, now=0.0).outcome == "pending"
        result = ingest_record(halves[second], pending, now=1.0)
        assert result.outcome == "merged"
        assert result.call is not None and result.call.kind == "complete"
        assert result.call.inputs == call["inputs"] and result.call.output == call["output"]


def test_redelivered_halves_are_duplicates_before_and_after_the_merge() -> None:
    start, end, _ = _events()
    pending: dict = {}
    assert ingest_record(start, pending, now=0.0).outcome == "pending"
    assert ingest_record(start, pending, now=0.5).outcome == "duplicate"
    assert ingest_record(end, pending, now=1.0).outcome == "merged"
    assert ingest_record(end, pending, now=1.5).outcome == "duplicate"
    assert ingest_record(start, pending, now=2.0).outcome == "duplicate"


def test_halves_whose_partner_never_comes_are_forwarded_after_the_timeout() -> None:
    start, _, _ = _events(0)
    _, end, _ = _events(1)
    pending: dict = {}
    ingest_record(start, pending, now=0.0)
    ingest_record(end, pending, now=5.0)
    assert list(expire_pending(pending, now=9.0, timeout=10.0)) == []
    expired = list(expire_pending(pending, now=10.5, timeout=10.0))
    assert [call.kind for call in expired] == ["start"]
    expired = list(expire_pending(pending, now=15.5, timeout=10.0))
    assert [call.kind for call in expired] == ["end"]
    assert pending == {}


def test_merge_markers_expire_silently_so_state_stays_bounded() -> None:
    start, end, _ = _events()
    pending: dict = {}
    ingest_record(start, pending, now=0.0)
    ingest_record(end, pending, now=1.0)
    assert len(pending) == 1
    assert list(expire_pending(pending, now=20.0, timeout=10.0)) == []
    assert pending == {}


def test_bad_record_becomes_a_dead_letter_with_its_source() -> None:
    result = ingest_record(b'{"id": "x y"}', {}, now=3.0, key=b"k", source=("weave.calls", 2, 41))
    letter = result.dead_letter
    assert result.outcome == "dead_letter" and letter is not None
    assert (letter.reason, letter.raw, letter.key) == ("malformed_id", b'{"id": "x y"}', b"k")
    assert (letter.source_topic, letter.source_partition, letter.source_offset) == (
        "weave.calls",
        2,
        41,
    )


def test_dead_letter_headers_round_trip() -> None:
    letter = DeadLetter(
        "wrong_type", "inputs: not a dict", b"\x00raw", b"key", "p.calls", 1, 7, 9.5
    )
    headers = letter.headers()
    assert all(name.startswith("weave-stream.") for name, _ in headers)
    assert DeadLetter.from_record(b"\x00raw", b"key", headers) == letter
