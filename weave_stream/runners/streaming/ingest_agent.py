"""The ingest agent: raw records from ``<prefix>.calls`` → valid calls or dead letters.

Each record gets exactly one outcome (see :mod:`weave_stream.ingest.outcomes`), counted in
``weave_stream_ingest_records_total``. Valid and merged calls go to
``<prefix>.calls.valid`` keyed by call id; dead letters (conflicts included) go to
``<prefix>.calls.dlq`` with the raw bytes as value (a tombstone's null as null) and the
reason in headers. Held start/end halves live in a changelog-backed table, so a crash
loses none; a timer forwards halves whose partner did not come within
``merge_timeout_seconds``. The ids forwarded lately live in per-partition dedupe
windows, rebuilt from the valid-calls topic when a partition is taken
(:mod:`.ingest_windows`).
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections import Counter
from typing import Any

import faust
from faust.types import TP, EventT

from weave_stream.config import Settings
from weave_stream.ingest.outcomes import DeadLetter, IngestResult, expire_held, ingest_record
from weave_stream.metrics import (
    CALLS_INGESTED,
    CALLS_UNMERGED,
    DEAD_LETTERS,
    INGEST_BATCH_SECONDS,
    INGEST_RECORDS,
    MERGE_CONFLICTS,
    NON_FINITE_NUMBERS,
)
from weave_stream.runners.streaming.health import HEALTH, describe, watched_agent
from weave_stream.runners.streaming.hot_path import lighten_hot_path
from weave_stream.runners.streaming.ingest_windows import PartitionWindows
from weave_stream.runners.streaming.sink import OutgoingRecord, RecordSink, attach_sink
from weave_stream.topics import TopicNames

__all__ = ["INGEST_COMPONENT", "register_ingest"]

INGEST_COMPONENT = "ingest"

log = logging.getLogger(__name__)

Forward = tuple[str, bytes, str, int | None]  # call id, canonical JSON, kind, partition


def register_ingest(app: faust.App, settings: Settings) -> None:
    """Declare the ingest topics, the merge table, the agent and the expiry timer on ``app``."""
    topics = settings.topics
    calls_topic = app.topic(
        topics.calls, key_serializer="raw", value_serializer="raw", partitions=settings.partitions
    )
    for name in (topics.valid, topics.dlq):  # declared (created) with the app's partitions
        app.topic(
            name, key_serializer="raw", value_serializer="raw", partitions=settings.partitions
        )
    # Keys are call ids; records on the calls topic are keyed by call id with Kafka's
    # default partitioner, so the table's partitioner puts each key where its calls are.
    pending = app.Table(
        "pending-merges",
        default=None,
        partitions=settings.partitions,
        schema=faust.Schema(key_type=str, key_serializer="raw", value_serializer="json"),
        use_partitioner=True,
    )
    max_payload = settings.max_payload_bytes
    sink = attach_sink(app, settings)
    windows = PartitionWindows(settings)

    def on_revoked(revoked: set[TP]) -> None:
        windows.forget(tp.partition for tp in revoked if tp.topic == topics.calls)

    app.on_partitions_revoked.connect(lambda *args, **_: on_revoked(args[1]))

    batch_size = settings.batch_size * 8
    max_wait = settings.batch_max_wait_seconds
    held: list[EventT] = []
    held_since = [0.0]
    one_at_a_time = asyncio.Lock()  # the agent's flush and the timer's never interleave

    async def flush() -> None:
        """Ingest the held events, write what they give, then ack them (offsets commit)."""
        async with one_at_a_time:
            if not held:
                return
            started = time.perf_counter()
            events = list(held)
            held.clear()
            await windows.ensure({event.message.partition for event in events})
            outcomes: Counter[str] = Counter()
            forwarded: list[Forward] = []
            letters: list[DeadLetter] = []
            for event in events:
                message = event.message
                source = (message.topic, message.partition, message.offset)
                window = windows[message.partition]
                result = _ingest_safely(
                    message.value, message.key, source, pending, max_payload, window
                )
                outcomes[result.outcome] += 1
                _note(result, forwarded, letters, message.partition)
            await _write(sink, topics, forwarded, letters)
            for event in events:
                event.ack()
            for outcome, count in outcomes.items():
                INGEST_RECORDS.labels(outcome).inc(count)
            INGEST_BATCH_SECONDS.observe(time.perf_counter() - started)
            HEALTH.ok(INGEST_COMPONENT)

    # Events one by one, unacked, ingested in batches: cheaper per event than Faust's
    # take_events buffering (bench/ingest.py). Faust commits an offset only once its
    # event is acked, after the batch's writes: a crash repeats a batch, never loses one.
    @app.agent(calls_topic, name=watched_agent(topics.ingest_agent, INGEST_COMPONENT))
    async def ingest(stream: faust.StreamT[bytes]) -> None:
        HEALTH.running(INGEST_COMPONENT)
        async for event in stream.noack().events():  # type: ignore[attr-defined]
            if not held:
                held_since[0] = time.monotonic()
            held.append(event)
            if len(held) >= batch_size:
                await flush()

    @app.task
    async def flush_waiting() -> None:
        """Ingest the events that waited ``batch_max_wait_seconds`` (a quiet stream).

        A loop, not a Faust timer: a flush may take longer than the interval, which a
        timer reports as a warning every time.
        """
        while True:
            await asyncio.sleep(max_wait)
            if held and time.monotonic() - held_since[0] >= max_wait:
                try:
                    await flush()
                except Exception as exc:  # unacked, so never committed: a restart reads them
                    log.exception("ingest: a batch failed; its records stay unacknowledged")
                    # Never only a log line: /readyz fails with the reason until a batch works.
                    HEALTH.failed(INGEST_COMPONENT, f"a batch failed: {describe(exc)}")

    lighten_hot_path(app)

    @app.timer(interval=max(1.0, min(30.0, settings.merge_timeout_seconds / 4)))
    async def expire_merges() -> None:
        forwarded: list[Forward] = []
        letters: list[DeadLetter] = []
        now = time.time()
        for result in expire_held(pending, now, settings.merge_timeout_seconds, windows):
            _note(result, forwarded, letters, None)
            if result.call is not None:
                missing = "end" if result.call.kind == "start" else "start"
                CALLS_UNMERGED.labels(missing).inc()
                log.info("call %s: no %s event within the merge timeout", result.call.id, missing)
        await _write(sink, topics, forwarded, letters)


def _note(
    result: IngestResult,
    forwarded: list[Forward],
    letters: list[DeadLetter],
    partition: int | None,
) -> None:
    """File ``result`` under what to forward or dead-letter, and count its side facts."""
    if result.dead_letter is not None:
        letters.append(result.dead_letter)
    elif result.call is not None and result.payload is not None:
        forwarded.append((result.call.id, result.payload, result.call.kind, partition))
    for conflict in result.conflicts:
        MERGE_CONFLICTS.labels(conflict.field).inc()
    if result.non_finite:
        NON_FINITE_NUMBERS.inc(result.non_finite)


async def _write(
    sink: RecordSink,
    topics: TopicNames,
    calls: list[Forward],
    letters: list[DeadLetter],
) -> None:
    """Forward calls and dead letters, each to the partition of its source record.

    The valid-calls topic has the calls topic's partitions, and calls are keyed by id
    with Kafka's default partitioner, so the source partition is the one the key
    hashes to: no need to hash again (6 µs a key). Calls without a source record (a
    half forwarded after the merge timeout) are partitioned by key.
    """
    if calls:
        await sink.write(
            topics.valid,
            (OutgoingRecord(i.encode(), payload, partition=p) for i, payload, _, p in calls),
        )
        for kind, count in Counter(kind for _, _, kind, _ in calls).items():
            CALLS_INGESTED.labels(kind).inc(count)
    if letters:
        await sink.write(
            topics.dlq,
            (OutgoingRecord(d.key, d.raw, d.headers(), d.source_partition) for d in letters),
        )
        for reason, count in Counter(d.reason for d in letters).items():
            DEAD_LETTERS.labels(reason).inc(count)


def _ingest_safely(
    value: Any,
    key: Any,
    source: tuple[str, int, int],
    pending: Any,
    max_payload: int,
    window: Any,
) -> IngestResult:
    """:func:`ingest_record`, turning any unexpected failure into a dead letter."""
    raw = value if value is None or isinstance(value, bytes) else bytes(value)
    try:
        return ingest_record(raw, pending, None, max_payload, key, source, window)
    except Exception as exc:  # a bug must not lose the record or crash the worker
        log.exception("ingest failed on %s[%d]@%d", *source)
        letter = DeadLetter(
            "internal_error",
            f"{type(exc).__name__}: {exc} (a weave-stream bug: please report it with this "
            "record; re-ingest it with `weave-stream dlq reingest` once fixed)",
            raw,
            key,
            *source,
            dead_lettered_at=time.time(),
        )
        return IngestResult("dead_letter", dead_letter=letter)
