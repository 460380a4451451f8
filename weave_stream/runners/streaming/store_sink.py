"""The store sink of every worker: valid calls, derived values and alerts into the store.

It reads ``<prefix>.calls.valid``, every ``<prefix>.derived.<topology>.<column>``
and ``<prefix>.subcalls.<topology>`` (a topic pattern: new topologies are picked up),
``<prefix>.alerts`` and ``<prefix>.datasets`` (the calls topologies' ``datasets:``
rules kept) in its own
consumer group (``weave-stream.<prefix>.store``: the workers share the partitions),
batches records by size (``store_batch_rows``) and time (``store_batch_seconds``),
and commits each table's rows with, as Delta application transactions, the highest
offset written per source partition (app id ``<topic>:<partition>``).

**Its offsets live in the store.** On assignment a partition is read from the
table's version + 1, so a restart (graceful or SIGKILL) skips exactly what the
table holds, and nothing it did not write is ever skipped: the Kafka offsets it
commits afterwards only feed the lag metric. A worker that lost a partition while
committing is fenced by Delta (the same app id committed concurrently, or a version
that moved): it drops its buffer for that partition and the new owner carries on.

**A write error stops it loudly.** Disk full, a permission error, an object store
that refuses: the batch stays buffered, the sink stops reading, counts the failure
(``weave_stream_store_sink_failures_total``, ``weave_stream_store_sink_failed``),
reports ``store-sink`` failed (``/readyz`` answers 503 with the reason), logs it,
and retries the same batch with a backoff until it is written.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections import defaultdict
from collections.abc import Iterable
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any

from aiokafka import AIOKafkaConsumer, ConsumerRebalanceListener, TopicPartition
from aiokafka.errors import KafkaError

from weave_stream.config import Settings
from weave_stream.datasets.apply import Candidate, StateCache, apply_candidates
from weave_stream.errors import DeliveryError, StoreError
from weave_stream.metrics import (
    CONSUMER_LAG,
    STORE_SINK_FAILED,
    STORE_SINK_FAILURES,
    STORE_SINK_PENDING,
    UNREADABLE_RECORDS,
)
from weave_stream.notify.alerts import Alert
from weave_stream.runners.streaming.health import HEALTH, describe
from weave_stream.store.rows import alert_row, call_row_from_json, value_row_from_json
from weave_stream.store.subcalls import sub_call_rows_from_json
from weave_stream.store.tables import Store
from weave_stream.store.writer import FencedError, StoreWriter

__all__ = ["StoreSink", "app_id", "register_store_sink"]

log = logging.getLogger(__name__)

COMPONENT = "store-sink"
# On each assignment the writer indexes the identities stored this long ago and since
# (by any worker): a record of a later event is a duplicate only if it is indexed.
WARM_WINDOW = timedelta(minutes=10)
_RETRY_SECONDS = (1.0, 2.0, 5.0, 10.0, 30.0)


def app_id(tp: TopicPartition) -> str:
    """The application-transaction id of a source partition: ``<topic>:<partition>``."""
    return f"{tp.topic}:{tp.partition}"


@dataclass
class _Pending:
    """Records of one table read but not committed, and the offsets they cover."""

    records: list[Any] = field(default_factory=list)
    offsets: dict[TopicPartition, int] = field(default_factory=dict)

    def drop(self, partitions: Iterable[TopicPartition]) -> None:
        gone = set(partitions)
        if gone & set(self.offsets):
            self.records = [r for r in self.records if r[0] not in gone]
            for tp in gone:
                self.offsets.pop(tp, None)


class StoreSink:
    """Reads the worker's output topics into the store (see the module docstring)."""

    def __init__(self, settings: Settings, store: Store | None = None) -> None:
        self.settings = settings
        self.store = store or Store.from_settings(settings)
        self.topics = settings.topics
        self.pending: dict[str, _Pending] = defaultdict(_Pending)
        self.committed: dict[TopicPartition, int | None] = {}  # last version per partition
        self.oldest: float | None = None  # when the oldest pending record was read
        self.failed = False
        self.failures = 0  # write failures in a row (the retry backoff)
        self.lock = asyncio.Lock()  # a rebalance waits for a commit in flight
        self.writer: StoreWriter | None = None
        self.dataset_states: StateCache = {}  # checked against the table at each commit
        self.consumer: AIOKafkaConsumer | None = None

    def table_of(self, topic: str) -> str:
        """The store table a topic's records go to."""
        if topic == self.topics.valid:
            return "calls"
        if topic == self.topics.alerts:
            return "alerts"
        if topic == self.topics.datasets:
            return "datasets"
        if topic.startswith(self.topics.subcalls("")):
            return "subcalls"
        return "values"

    async def run(self) -> None:
        """Read, batch and commit until cancelled (then flush what is buffered)."""
        if HEALTH.snapshot().get(COMPONENT, {}).get("state") == "failed":
            HEALTH.running(COMPONENT)  # restarted after a crash: failed until it reads again
        else:
            HEALTH.starting(COMPONENT)
        while self.writer is None:  # an unreachable store stops the sink loudly, not silently
            try:
                self.writer = await asyncio.to_thread(StoreWriter, self.store)
            except (StoreError, OSError) as exc:
                self._fail("calls", exc)
                await asyncio.sleep(_RETRY_SECONDS[min(self.failures, len(_RETRY_SECONDS)) - 1])
        timeouts = self.settings.consumer_timeouts
        consumer = AIOKafkaConsumer(
            bootstrap_servers=self.settings.broker_address,
            group_id=self.topics.store_group,
            enable_auto_commit=False,
            auto_offset_reset="earliest",
            session_timeout_ms=int(timeouts.session * 1000),
            heartbeat_interval_ms=int(timeouts.heartbeat * 1000),
            rebalance_timeout_ms=int(timeouts.rebalance * 1000),
            metadata_max_age_ms=5000,  # new derived topics are found within seconds
            max_partition_fetch_bytes=max(1024 * 1024, 2 * self.settings.max_payload_bytes),
            # On a real cluster with exactly-once processing, skip aborted records.
            isolation_level="read_uncommitted"
            if self.settings.embedded_broker_quirks
            else "read_committed",
        )
        self.consumer = consumer
        await consumer.start()
        consumer.subscribe(pattern=self.topics.store_pattern(), listener=_Listener(self))
        HEALTH.ok(COMPONENT)
        try:
            while True:
                if self.failed:
                    await self._retry()
                    continue
                batches = await consumer.getmany(
                    timeout_ms=200, max_records=min(5000, self.settings.store_batch_rows)
                )
                for tp, records in batches.items():
                    self._buffer(tp, records)
                self._publish_lag(consumer)
                if self._due():
                    await self.flush()
        finally:
            if not self.failed:
                await self.flush()
            await consumer.stop()

    def _buffer(self, tp: TopicPartition, records: Iterable[Any]) -> None:
        table = self.table_of(tp.topic)
        pending = self.pending[table]
        for record in records:
            # Decoded when committed, in the writer's thread: the event loop (the ingest
            # agent's too) only buffers bytes.
            if record.value is not None:
                pending.records.append((tp, (record.offset, record.value)))
            pending.offsets[tp] = record.offset
            if self.oldest is None:
                self.oldest = time.monotonic()
        STORE_SINK_PENDING.set(sum(len(p.records) for p in self.pending.values()))

    def _due(self) -> bool:
        if self.oldest is None:
            return False
        rows = sum(len(p.records) for p in self.pending.values())
        waited = time.monotonic() - self.oldest
        return rows >= self.settings.store_batch_rows or waited >= self.settings.store_batch_seconds

    async def flush(self) -> None:
        """Commit every table's buffered records with their offsets (raises nothing)."""
        written: dict[TopicPartition, int] = {}
        async with self.lock:
            for table in ("calls", "values", "alerts", "subcalls", "datasets"):
                pending = self.pending.get(table)
                if pending is None or not pending.offsets:
                    continue
                try:
                    written.update(await self._commit(table, pending))
                except FencedError as exc:
                    log.warning("store sink fenced: %s", exc)
                    await self._reseek(list(pending.offsets))
                except (StoreError, OSError) as exc:
                    self._fail(table, exc)
                    return
            self.oldest = None
            STORE_SINK_PENDING.set(0)
            if self.failed or self.failures:
                log.info("store sink: writing again after %d failed attempts", self.failures)
            self.failed, self.failures = False, 0
            STORE_SINK_FAILED.set(0)
            HEALTH.ok(COMPONENT)
        await self._commit_kafka(written)

    async def _commit(self, table: str, pending: _Pending) -> dict[TopicPartition, int]:
        assert self.writer is not None
        offsets = dict(pending.offsets)
        txns = {app_id(tp): offset for tp, offset in offsets.items()}
        expect = {app_id(tp): self.committed.get(tp) for tp in offsets}
        raws = [(tp, offset, raw) for tp, (offset, raw) in pending.records]
        writer = self.writer
        if table == "datasets":  # after calls and values: a dataset row's call is stored
            found = _candidates(raws)
            await asyncio.to_thread(
                lambda: apply_candidates(
                    self.store, found, txns=txns, expect=expect, cache=self.dataset_states
                )
            )
        else:
            await asyncio.to_thread(
                lambda: writer.write_rows(table, _rows(table, raws), txns, expect)
            )
        for tp, offset in offsets.items():
            self.committed[tp] = offset
        self.pending[table] = _Pending()
        return offsets

    async def _commit_kafka(self, offsets: dict[TopicPartition, int]) -> None:
        """Commit the group's offsets too: only for the lag metric and tools (best effort)."""
        consumer = self.consumer
        if consumer is None:
            return
        assigned = consumer.assignment()
        mine = {tp: offset + 1 for tp, offset in offsets.items() if tp in assigned}
        if mine:
            try:
                await asyncio.wait_for(consumer.commit(mine), timeout=5.0)
            except (KafkaError, TimeoutError) as exc:  # a rebalance: the store holds the truth
                log.info("store sink: Kafka offsets not committed (%s); the store has them", exc)

    def _fail(self, table: str, exc: BaseException) -> None:
        reason = f"writing the {table} table failed: {describe(exc)}"
        if not self.failed:
            log.error("store sink stopped: %s (it retries; nothing is skipped)", reason)
        self.failed = True
        self.failures += 1
        STORE_SINK_FAILURES.labels(table).inc()
        STORE_SINK_FAILED.set(1)
        HEALTH.failed(COMPONENT, reason)

    async def _retry(self) -> None:
        await asyncio.sleep(_RETRY_SECONDS[min(self.failures, len(_RETRY_SECONDS)) - 1])
        await self.flush()

    async def assigned(self, partitions: Iterable[TopicPartition]) -> None:
        """Seek each newly assigned partition to just after what the store holds."""
        async with self.lock:
            if self.writer is not None:
                await asyncio.to_thread(self.writer.warm, WARM_WINDOW)
            await self._reseek(list(partitions))

    async def _reseek(self, partitions: list[TopicPartition]) -> None:
        consumer = self.consumer
        assert consumer is not None
        by_table: dict[str, list[TopicPartition]] = defaultdict(list)
        for tp in partitions:
            by_table[self.table_of(tp.topic)].append(tp)
        for table, tps in by_table.items():
            self.pending[table].drop(tps)
            versions = await asyncio.to_thread(
                self.store.transaction_versions, table, [app_id(tp) for tp in tps]
            )
            assigned = consumer.assignment()
            for tp in tps:
                version = versions[app_id(tp)]
                self.committed[tp] = version
                if tp not in assigned:
                    continue
                if version is None:
                    await consumer.seek_to_beginning(tp)
                else:
                    consumer.seek(tp, version + 1)

    async def revoked(self, partitions: Iterable[TopicPartition]) -> None:
        """Forget what is buffered for revoked partitions: their next owner re-reads it
        (after the commit in flight, if any: the lock)."""
        async with self.lock:
            gone = list(partitions)
            for pending in self.pending.values():
                pending.drop(gone)
            for tp in gone:
                self.committed.pop(tp, None)

    def _publish_lag(self, consumer: AIOKafkaConsumer) -> None:
        lags: dict[str, int] = defaultdict(int)
        for tp in consumer.assignment():
            highwater = consumer.highwater(tp)
            if highwater is None:
                continue
            committed = self.committed.get(tp)
            lags[tp.topic] += max(0, highwater - (-1 if committed is None else committed) - 1)
        for topic, lag in lags.items():
            CONSUMER_LAG.labels(self.topics.store_group, topic).set(lag)


class _Listener(ConsumerRebalanceListener):
    def __init__(self, sink: StoreSink) -> None:
        self.sink = sink

    async def on_partitions_revoked(self, revoked: Any) -> None:
        await self.sink.revoked(revoked)

    async def on_partitions_assigned(self, assigned: Any) -> None:
        await self.sink.assigned(assigned)


def _rows(table: str, raws: list[tuple[TopicPartition, int, bytes]]) -> list[dict[str, Any]]:
    """The store rows the messages hold; one that holds none is logged and counted."""
    now = datetime.now(UTC)
    rows = []
    for tp, offset, raw in raws:
        try:
            if table == "calls":
                rows.append(call_row_from_json(raw, now))
            elif table == "values":
                rows.append(value_row_from_json(raw, now))
            elif table == "subcalls":
                rows.extend(sub_call_rows_from_json(raw, now))
            else:
                rows.append(alert_row(Alert.from_json(raw), now))
        except DeliveryError as exc:  # an alert record that is not one
            _unreadable(tp, offset, table, exc)
        except (ValueError, KeyError, TypeError) as exc:  # JSON that is not a call or value
            _unreadable(tp, offset, table, exc)
    return rows


def _candidates(raws: list[tuple[TopicPartition, int, bytes]]) -> list[Candidate]:
    found = []
    for tp, offset, raw in raws:
        try:
            found.append(Candidate.from_json(raw))
        except (ValueError, KeyError, TypeError) as exc:
            _unreadable(tp, offset, "dataset candidate", exc)
    return found


def _unreadable(tp: TopicPartition, offset: int, table: str, exc: BaseException) -> None:
    # Written by weave-stream itself, so a bug or a foreign writer: say where.
    log.error(
        "store sink: %s[%d]@%d is not a %s record (%s); skipped",
        tp.topic,
        tp.partition,
        offset,
        table,
        describe(exc),
    )
    UNREADABLE_RECORDS.labels(tp.topic).inc()


async def run_reporting_crashes(sink: StoreSink) -> None:
    """Run ``sink`` until cancelled; a crash (Kafka unreachable, a bug) fails ``store-sink``
    with the reason, so ``/readyz`` and ``weave-stream status`` show it, and it restarts
    with a backoff (a Faust task that raises would otherwise only be logged)."""
    crashes = 0
    while True:
        try:
            await sink.run()
            return
        except asyncio.CancelledError:
            raise
        except Exception as exc:
            crashes += 1
            HEALTH.failed(COMPONENT, f"crashed: {describe(exc)}")
            log.exception("store sink crashed (restart %d follows)", crashes)
            if sink.consumer is not None:
                with contextlib.suppress(Exception):  # already stopping: nothing to add
                    await sink.consumer.stop()
                sink.consumer = None
            # The store holds the truth: what was buffered is read again after the restart.
            sink.pending.clear()
            sink.committed.clear()
            sink.oldest, sink.failed = None, False
            await asyncio.sleep(_RETRY_SECONDS[min(crashes, len(_RETRY_SECONDS)) - 1])


def register_store_sink(app: Any, settings: Settings) -> StoreSink:
    """Run a store sink in ``app`` (a worker), and the store's maintenance on its leader.

    Every ``store_maintenance_seconds`` the leader compacts small files and, when
    ``store_retention_days`` is set, drops the days beyond it.
    """
    from weave_stream.store.maintenance import apply_retention, compact

    sink = StoreSink(settings)

    @app.task
    async def store_sink() -> None:
        await run_reporting_crashes(sink)

    @app.timer(interval=settings.store_maintenance_seconds, on_leader=True)
    async def store_maintenance() -> None:
        store = sink.store
        try:
            if settings.store_retention_days is not None:
                deleted = await asyncio.to_thread(
                    apply_retention, store, settings.store_retention_days
                )
                log.info("store retention: deleted %s rows", deleted)
            await asyncio.to_thread(compact, store)
        except StoreError as exc:  # the next run tries again; the sink is not affected
            log.error("store maintenance failed: %s", exc)

    return sink
