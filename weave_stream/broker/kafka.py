"""Kafka topics from outside the workers: create them, produce to them, read them to the end.

Reading "to the end" uses the high-water mark of Fetch responses, not ListOffsets:
the embedded broker answers a wrong end offset after multi-record batches
(shared/BROKER.md), while a fetch's high-water mark is right on every broker.
"""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections.abc import AsyncIterator, Iterable, Sequence
from dataclasses import dataclass

from aiokafka import AIOKafkaConsumer, AIOKafkaProducer, ConsumerRecord, TopicPartition
from aiokafka.admin import AIOKafkaAdminClient, NewTopic
from aiokafka.errors import TopicAlreadyExistsError

from weave_stream.config import Settings
from weave_stream.errors import BrokerError

__all__ = [
    "COMPACTED",
    "Record",
    "commit_group_offsets",
    "ensure_topics",
    "group_offsets",
    "group_progress",
    "highwaters",
    "offsets_at",
    "produce",
    "read_topic",
    "start_group_at",
    "topic_partitions",
]


@dataclass(frozen=True)
class Record:
    """A record read back from a topic."""

    topic: str
    partition: int
    offset: int
    key: bytes | None
    value: bytes | None
    headers: tuple[tuple[str, bytes], ...]
    timestamp_ms: int

    @classmethod
    def from_consumer(cls, record: ConsumerRecord[bytes, bytes]) -> Record:
        return cls(
            record.topic,
            record.partition,
            record.offset,
            record.key,
            record.value,
            tuple(record.headers),
            record.timestamp,
        )


COMPACTED = {"cleanup.policy": "compact"}


async def ensure_topics(
    settings: Settings,
    names: Iterable[str],
    configs: dict[str, str] | None = None,
    partitions: int | None = None,
) -> None:
    """Create the topics that do not exist yet (``partitions`` default: the settings')."""
    admin = AIOKafkaAdminClient(bootstrap_servers=settings.broker_address)
    await admin.start()
    try:
        existing = set(await admin.list_topics())
        missing = [
            NewTopic(
                name,
                partitions or settings.partitions,
                settings.replication_factor,
                topic_configs=dict(configs or {}),
            )
            for name in names
            if name not in existing
        ]
        if missing:
            # Another process may create one between list and create: what we wanted.
            with contextlib.suppress(TopicAlreadyExistsError):
                await admin.create_topics(missing)
    finally:
        await admin.close()


async def produce(
    settings: Settings,
    topic: str,
    records: Iterable[tuple[bytes | None, bytes | None, Sequence[tuple[str, bytes]]]],
    *,
    rate: float | None = None,
    on_sent: object = None,
) -> int:
    """Produce ``(key, value, headers)`` records, optionally at ``rate`` records/s.

    ``on_sent``, if callable, is called with the running count after each record.
    Returns the number of records acknowledged by the broker.
    """
    producer = AIOKafkaProducer(
        bootstrap_servers=settings.broker_address,
        linger_ms=5,
        max_batch_size=256 * 1024,
        max_request_size=max(4 * 1024 * 1024, 2 * settings.max_payload_bytes),
    )
    await producer.start()
    sent = 0
    started = time.monotonic()
    futures = []
    try:
        for key, value, headers in records:
            futures.append(await producer.send(topic, value, key=key, headers=list(headers)))
            sent += 1
            if callable(on_sent):
                on_sent(sent)
            if rate:
                ahead = sent / rate - (time.monotonic() - started)
                if ahead > 0:
                    await asyncio.sleep(ahead)
        await asyncio.gather(*futures)
    finally:
        await producer.stop()
    return sent


async def topic_partitions(settings: Settings, topic: str) -> list[TopicPartition]:
    """The partitions of ``topic`` (empty when it does not exist)."""
    consumer = AIOKafkaConsumer(bootstrap_servers=settings.broker_address)
    await consumer.start()
    try:
        partitions = await _partitions_for(consumer, topic)
    finally:
        await consumer.stop()
    return [TopicPartition(topic, p) for p in sorted(partitions)]


async def read_topic(
    settings: Settings,
    topic: str,
    *,
    start_offsets: dict[int, int] | None = None,
    end_offsets: dict[int, int] | None = None,
    idle_timeout: float = 10.0,
) -> AsyncIterator[Record]:
    """Yield every record of ``topic`` from ``start_offsets`` (default: the beginning) to its end.

    The end is each partition's high-water mark at the time it is reached, or its
    offset in ``end_offsets`` (exclusive; then only those partitions are read); a
    partition that returns nothing for ``idle_timeout`` seconds is taken as ended.
    """
    consumer = AIOKafkaConsumer(
        bootstrap_servers=settings.broker_address,
        enable_auto_commit=False,
        auto_offset_reset="earliest",
        max_partition_fetch_bytes=max(1024 * 1024, 2 * settings.max_payload_bytes),
        fetch_max_bytes=max(50 * 1024 * 1024, 4 * settings.max_payload_bytes),
    )
    await consumer.start()
    try:
        partitions = [TopicPartition(topic, p) for p in await _partitions_for(consumer, topic)]
        if end_offsets is not None:
            partitions = [tp for tp in partitions if tp.partition in end_offsets]
        if not partitions:
            return
        consumer.assign(partitions)
        for tp in partitions:
            offset = (start_offsets or {}).get(tp.partition)
            if offset is None:
                await consumer.seek_to_beginning(tp)
            else:
                consumer.seek(tp, offset)
        remaining = set(partitions)
        last_data = time.monotonic()
        while remaining:
            batches = await consumer.getmany(*remaining, timeout_ms=200, max_records=2000)
            for records in batches.values():
                for record in records:
                    if end_offsets is None or record.offset < end_offsets[record.partition]:
                        yield Record.from_consumer(record)
            for tp in list(remaining):
                end = consumer.highwater(tp)
                if end_offsets is not None:
                    end = end_offsets[tp.partition]
                if end is not None and await consumer.position(tp) >= end:
                    remaining.discard(tp)
            if batches:
                last_data = time.monotonic()
            elif time.monotonic() - last_data > idle_timeout:
                break
    finally:
        await consumer.stop()


async def _partitions_for(consumer: AIOKafkaConsumer, topic: str) -> set[int]:
    partitions = consumer.partitions_for_topic(topic)
    if partitions is None:
        await consumer.topics()  # refresh metadata
        partitions = consumer.partitions_for_topic(topic)
    return set(partitions or ())


async def group_progress(settings: Settings, group: str, topic: str) -> tuple[int, int]:
    """``(records consumed, lag)`` of consumer ``group`` on ``topic``, summed over partitions.

    Consumed is the committed offsets' sum (a group that reads from the start has
    consumed that many records); lag is high-water mark minus committed offset.
    """
    marks = await highwaters(settings, topic)
    committed = await group_offsets(settings, group, topic, marks)
    consumed = sum(offset or 0 for offset in committed.values())
    lag = sum(max(0, mark - (committed[p] or 0)) for p, mark in marks.items())
    return consumed, lag


async def group_offsets(
    settings: Settings, group: str, topic: str, partitions: Iterable[int]
) -> dict[int, int | None]:
    """The offsets ``group`` committed on ``partitions`` of ``topic`` (None: none yet)."""
    # OffsetFetch through a consumer of the group that never joins it (the embedded
    # broker drops the admin client's variant of that request).
    consumer = AIOKafkaConsumer(
        bootstrap_servers=settings.broker_address, group_id=group, enable_auto_commit=False
    )
    await consumer.start()
    try:
        return {p: await consumer.committed(TopicPartition(topic, p)) for p in partitions}
    finally:
        await consumer.stop()


async def commit_group_offsets(
    settings: Settings, group: str, topic: str, offsets: dict[int, int]
) -> None:
    """Commit ``offsets`` (partition: next offset to read) for ``group``, which must have
    no members (a cursor kept by one process, as the reconciler's)."""
    if not offsets:
        return
    consumer = AIOKafkaConsumer(
        bootstrap_servers=settings.broker_address, group_id=group, enable_auto_commit=False
    )
    await consumer.start()
    try:
        consumer.assign([TopicPartition(topic, p) for p in offsets])
        await consumer.commit({TopicPartition(topic, p): o for p, o in offsets.items()})
    finally:
        await consumer.stop()


async def offsets_at(settings: Settings, topic: str, moment: float) -> dict[int, int]:
    """Per partition, the first offset written at or after ``moment`` (Unix seconds);
    partitions with nothing that late are left out.

    The embedded broker answers by its own write time, not by record timestamps
    (shared/BROKER.md): right for records stamped when written, as derived values are.
    """
    consumer = AIOKafkaConsumer(bootstrap_servers=settings.broker_address)
    await consumer.start()
    try:
        partitions = await _partitions_for(consumer, topic)
        stamp = int(moment * 1000)
        found = await consumer.offsets_for_times(
            {TopicPartition(topic, p): stamp for p in partitions}
        )
        return {tp.partition: at.offset for tp, at in found.items() if at is not None}
    finally:
        await consumer.stop()


async def highwaters(settings: Settings, topic: str, timeout: float = 5.0) -> dict[int, int]:
    """High-water marks from Fetch responses (ListOffsets is wrong on the embedded broker)."""
    consumer = AIOKafkaConsumer(bootstrap_servers=settings.broker_address, enable_auto_commit=False)
    await consumer.start()
    try:
        partitions = [TopicPartition(topic, p) for p in await _partitions_for(consumer, topic)]
        if not partitions:
            return {}
        consumer.assign(partitions)
        await consumer.seek_to_beginning(*partitions)
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            marks = {tp.partition: consumer.highwater(tp) for tp in partitions}
            if all(mark is not None for mark in marks.values()):
                return {p: int(mark or 0) for p, mark in marks.items()}
            await consumer.getmany(timeout_ms=200, max_records=1)
        raise BrokerError(
            f"no high-water mark for every partition of {topic} in {timeout}s; is the broker "
            f"at {settings.broker_address} up and are the topic's partition leaders available?"
        )
    finally:
        await consumer.stop()


async def start_group_at(
    settings: Settings, group: str, topic: str, moment: float
) -> dict[int, int] | None:
    """Give a new consumer group its first offsets: the first records written from ``moment``
    (a time already past: the records appended after this call are all newer).

    A group that has committed offsets already is left alone (returns None). On a real
    cluster the offsets come from ``offsets_for_times``; the embedded broker answers
    that wrongly for times after its last record (shared/BROKER.md), so there the
    partitions' record timestamps are scanned.
    """
    consumer = AIOKafkaConsumer(
        bootstrap_servers=settings.broker_address, group_id=group, enable_auto_commit=False
    )
    await consumer.start()
    try:
        partitions = [
            TopicPartition(topic, p) for p in sorted(await _partitions_for(consumer, topic))
        ]
        if not partitions:
            return None
        committed = [await consumer.committed(tp) for tp in partitions]
        if any(offset is not None for offset in committed):
            return None
        # The ends first: a partition with no record from ``moment`` yet starts at its end,
        # and a record appended while the offsets are looked up must lie past that end.
        # (Read after the look-up, an end skipped the calls written in between: a new
        # topology, registered just before its first calls came, lost a few of them.)
        ends = await highwaters(settings, topic)
        if settings.embedded_broker_quirks:
            offsets = await _first_offsets_at(settings, topic, moment, ends)
        else:
            stamp = int(moment * 1000)
            found = await consumer.offsets_for_times({tp: stamp for tp in partitions})
            offsets = dict(ends)
            for tp, at in found.items():
                if at is not None:
                    offsets[tp.partition] = min(at.offset, ends[tp.partition])
        consumer.assign(partitions)
        await consumer.commit({TopicPartition(topic, p): o for p, o in offsets.items()})
        return offsets
    finally:
        await consumer.stop()


async def _first_offsets_at(
    settings: Settings, topic: str, moment: float, ends: dict[int, int]
) -> dict[int, int]:
    """Each partition's first record from ``moment`` below ``ends``, else its end."""
    stamp = int(moment * 1000)
    first: dict[int, int] = {}
    async for record in read_topic(settings, topic, end_offsets=ends):
        if record.timestamp_ms >= stamp and record.partition not in first:
            first[record.partition] = record.offset
    return {partition: first.get(partition, end) for partition, end in ends.items()}
