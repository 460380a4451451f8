"""The ingest agent on the real broker: valid calls, dead letters, merges, crash recovery."""

from __future__ import annotations

import asyncio
from collections import Counter
from collections.abc import Callable
from typing import get_args

import orjson

from tests.support.calls import FULL_CALL
from tests.support.records import produce_records, read_all, wait_for_records
from tests.support.waiting import wait_until
from weave_stream.broker.kafka import group_progress
from weave_stream.config import Settings
from weave_stream.demo.samples import (
    MALFORMED_REASONS,
    corpus_documents,
    malformed_records,
    sample_calls,
    split_into_events,
)
from weave_stream.ingest.call import call_from_json, parse_call
from weave_stream.ingest.outcomes import DeadLetter, Outcome
from weave_stream.runners.workers import WorkerProcess


def _keyed(call: dict) -> tuple[bytes, bytes]:
    return call["id"].encode(), orjson.dumps(call)


def _ingest_books(metrics: dict[str, float]) -> tuple[float, float]:
    """``(records given an outcome, halves still held)`` by a worker's /metrics.

    A held half (outcome ``pending``) leaves the merge table merged with its partner
    (outcome ``merged``) or, after the merge timeout, alone (a call of kind start or end
    written to the valid-calls topic).
    """
    outcomes = {
        outcome: metrics.get(f'weave_stream_ingest_records_total{{outcome="{outcome}"}}', 0.0)
        for outcome in get_args(Outcome)
    }
    alone = sum(
        metrics.get(f'weave_stream_calls_ingested_total{{kind="{kind}"}}', 0.0)
        for kind in ("start", "end")
    )
    return sum(outcomes.values()), outcomes["pending"] - outcomes["merged"] - alone


def test_valid_calls_round_trip_every_field(
    make_settings: Callable[..., Settings], start_worker: Callable[..., WorkerProcess]
) -> None:
    settings = make_settings()
    start_worker(settings)
    calls = [FULL_CALL, *sample_calls(corpus_documents("english", ["history", "money"]))]
    produce_records(settings, [_keyed(c) for c in calls])
    records = wait_for_records(settings, settings.topics.valid, lambda r: len(r) >= len(calls))
    assert len(records) == len(calls)
    by_id = {record.key: record for record in records}
    for call in calls:
        record = by_id[call["id"].encode()]
        assert call_from_json(record.value or b"") == parse_call(orjson.dumps(call))
    assert read_all(settings, settings.topics.dlq) == []


def test_bad_records_land_in_the_dead_letter_topic_and_the_books_balance(
    make_settings: Callable[..., Settings], start_worker: Callable[..., WorkerProcess]
) -> None:
    settings = make_settings(max_payload_bytes=64 * 1024)
    worker = start_worker(settings)
    good = sample_calls(corpus_documents("english", ["greetings"]))
    bad = malformed_records(settings.max_payload_bytes)
    records = [_keyed(c) for c in good] + [(None, raw) for _, raw in bad]
    produce_records(settings, records)
    letters = wait_for_records(settings, settings.topics.dlq, lambda r: len(r) >= len(bad))
    valid = wait_for_records(settings, settings.topics.valid, lambda r: len(r) >= len(good))

    assert len(valid) + len(letters) == len(records)  # records in = calls out + dead letters
    decoded = [DeadLetter.from_record(r.value or b"", r.key, r.headers) for r in letters]
    assert Counter(d.reason for d in decoded) == Counter(MALFORMED_REASONS)
    raws = {raw for _, raw in bad}
    for letter in decoded:
        assert letter.raw in raws  # the exact bytes, oversized one included
        assert letter.source_topic == settings.topics.calls
        assert letter.source_partition is not None and letter.source_offset is not None
        assert letter.detail
    metrics = worker.metrics()
    assert metrics['weave_stream_ingest_records_total{outcome="dead_letter"}'] == len(bad)
    assert metrics['weave_stream_ingest_records_total{outcome="valid"}'] == len(good)
    for reason in MALFORMED_REASONS:
        assert metrics[f'weave_stream_dead_letters_total{{reason="{reason}"}}'] == 1


def test_start_and_end_events_merge_and_lone_halves_are_kept_after_the_timeout(
    make_settings: Callable[..., Settings], start_worker: Callable[..., WorkerProcess]
) -> None:
    settings = make_settings(merge_timeout_seconds=2.0)
    worker = start_worker(settings)
    calls = sample_calls(corpus_documents("english", ["food", "sports"]), seed="merge")
    paired, lone_start, lone_end = calls[:-2], calls[-2], calls[-1]
    records = []
    for call in paired:
        start, end = split_into_events(call)
        records += (
            [_keyed(end), _keyed(start)] if len(records) % 3 else [_keyed(start), _keyed(end)]
        )
    records.append(_keyed(split_into_events(lone_start)[0]))
    records.append(_keyed(split_into_events(lone_end)[1]))
    records.append(_keyed(split_into_events(paired[0])[0]))  # a redelivered start
    produce_records(settings, records)

    wait_for_records(settings, settings.topics.valid, lambda r: len(r) >= len(calls))
    # Nothing more can come once every record has its outcome and no half is held: the
    # calls written so far (awaited before they are counted) are all there will be.
    wait_until(
        worker.metrics,
        30,
        "every record to have its outcome and no half to be held (records, held)",
        until=lambda metrics: _ingest_books(metrics) == (len(records), 0),
        describe=_ingest_books,
    )
    valid = read_all(settings, settings.topics.valid)
    assert len(valid) == len(calls)
    out = {call_from_json(r.value or b"").id: call_from_json(r.value or b"") for r in valid}
    for call in paired:
        assert out[call["id"]] == parse_call(orjson.dumps(call))
    assert out[lone_start["id"]].kind == "start" and out[lone_start["id"]].ended_at is None
    assert out[lone_end["id"]].kind == "end" and out[lone_end["id"]].inputs is None
    metrics = worker.metrics()
    assert metrics['weave_stream_calls_unmerged_total{missing="end"}'] == 1
    assert metrics['weave_stream_calls_unmerged_total{missing="start"}'] == 1
    assert metrics['weave_stream_ingest_records_total{outcome="duplicate"}'] == 1


def test_worker_killed_mid_stream_and_restarted_leaves_no_call_unprocessed(
    make_settings: Callable[..., Settings], start_worker: Callable[..., WorkerProcess]
) -> None:
    settings = make_settings(merge_timeout_seconds=600)
    first = start_worker(settings, "victim")
    calls = sample_calls(corpus_documents("english", ["tech_support"])[:1500], seed="crash")
    records = []
    for index, call in enumerate(calls):
        if index % 4 == 0:  # a quarter as start + end events: the merge table must survive
            start, end = split_into_events(call)
            records += [_keyed(start), _keyed(end)]
        else:
            records.append(_keyed(call))
    half = len(records) // 2
    produce_records(settings, records[:half])
    wait_for_records(settings, settings.topics.valid, lambda r: len(r) > len(calls) // 4)
    first.kill()
    produce_records(settings, records[half:])
    start_worker(settings, "successor")
    expected = {call["id"] for call in calls}
    valid = wait_for_records(
        settings,
        settings.topics.valid,
        lambda r: expected <= {call_from_json(x.value or b"").id for x in r},
        timeout=120,
    )
    seen = Counter(call_from_json(r.value or b"").id for r in valid)
    assert set(seen) == expected
    complete = [call_from_json(r.value or b"") for r in valid]
    assert all(call.kind == "complete" for call in complete)  # every pair merged, across the crash


def test_each_id_is_forwarded_once_across_a_restart_and_conflicts_and_tombstones_are_kept(
    make_settings: Callable[..., Settings], start_worker: Callable[..., WorkerProcess]
) -> None:
    settings = make_settings()
    first = start_worker(settings, "before")
    call = sample_calls(corpus_documents("english", ["money"])[:1], seed="once")[0]
    second_version = {**call, "output": "CONFLICTING second version"}
    produce_records(settings, [_keyed(call), _keyed(call), _keyed(second_version)])
    produce_records(settings, [(call["id"].encode(), None)])  # a tombstone
    wait_for_records(settings, settings.topics.dlq, lambda r: len(r) >= 2)
    first.stop()
    # A new worker rebuilds its window from the valid-calls topic: still once, still a conflict.
    second = start_worker(settings, "after")
    third_version = {**call, "output": "a third version"}
    produce_records(settings, [_keyed(call), _keyed(third_version)])
    letters = wait_for_records(settings, settings.topics.dlq, lambda r: len(r) >= 3)
    # Proof that nothing more comes: ingest has committed every record produced (it
    # commits a record only once its forwards and dead letters are written).
    wait_until(
        lambda: asyncio.run(
            group_progress(settings, settings.topics.worker_group, settings.topics.calls)
        )[1],
        60,
        "ingest to commit every record of the calls topic",
        until=lambda lag: lag == 0,
    )
    valid = read_all(settings, settings.topics.valid)
    assert [r.key for r in valid] == [call["id"].encode()]
    decoded = [DeadLetter.from_record(r.value, r.key, r.headers) for r in letters]
    assert Counter(d.reason for d in decoded) == {"conflict": 2, "tombstone": 1}
    (tombstone,) = [r for r, d in zip(letters, decoded, strict=True) if d.reason == "tombstone"]
    assert tombstone.value is None and tombstone.key == call["id"].encode()
    kept = {dict(d.notes)["kept-digest"] for d in decoded if d.reason == "conflict"}
    assert len(kept) == 1  # both conflicts name the one version forwarded
    metrics = second.metrics()
    assert metrics['weave_stream_ingest_records_total{outcome="duplicate"}'] == 1
    assert metrics['weave_stream_ingest_records_total{outcome="conflict"}'] == 1
