"""Batched writes to data topics, awaited before the batch's source records are acked.

Faust's own producer keeps the app's changelogs; data topics (valid calls, dead
letters, derived values, alerts) go through this sink's producer, which batches
per partition and is awaited as a whole. An
agent awaits :meth:`RecordSink.write` before it moves to its next micro-batch, and
Faust commits a source offset only after that, so a crash can repeat a write but
never lose one.
"""

from __future__ import annotations

import asyncio
from collections import defaultdict
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field

import faust
from aiokafka import AIOKafkaProducer
from aiokafka.partitioner import DefaultPartitioner

from weave_stream.config import Settings

__all__ = ["OutgoingRecord", "RecordSink", "attach_sink"]

_partitioner = DefaultPartitioner()


@dataclass(frozen=True, slots=True)
class OutgoingRecord:
    """One record to write: key, value, headers, and its partition (None: from the key,
    with Kafka's default partitioner — murmur2, as every Kafka client does)."""

    key: bytes | None
    value: bytes | None  # None: a tombstone (compacted topics)
    headers: Sequence[tuple[str, bytes]] = field(default_factory=tuple)
    partition: int | None = None


class RecordSink:
    """An aiokafka producer started on first use and stopped with the app.

    Parameters:
        bootstrap_servers: ``host:port[,host:port]``.
        max_request_size: the largest record batch the producer may send, in bytes.
        idempotent: use Kafka's idempotent producer (a real cluster only).
    """

    def __init__(
        self,
        bootstrap_servers: str,
        max_request_size: int = 4 * 1024 * 1024,
        idempotent: bool = False,
    ) -> None:
        self._bootstrap_servers = bootstrap_servers
        self._max_request_size = max_request_size
        self._idempotent = idempotent
        self._producer: AIOKafkaProducer | None = None
        self._lock = asyncio.Lock()

    async def _ensure_started(self) -> AIOKafkaProducer:
        if self._producer is None:
            async with self._lock:
                if self._producer is None:
                    producer = AIOKafkaProducer(
                        bootstrap_servers=self._bootstrap_servers,
                        acks="all",
                        linger_ms=2,
                        max_batch_size=256 * 1024,
                        max_request_size=self._max_request_size,
                        # On a real cluster: the broker drops a retried batch it already
                        # has (the embedded broker cannot: InitProducerId fails there).
                        enable_idempotence=self._idempotent,
                    )
                    await producer.start()
                    self._producer = producer
        return self._producer

    async def write(self, topic: str, records: Iterable[OutgoingRecord]) -> int:
        """Write ``records`` to ``topic`` and wait until the broker has acknowledged all.

        Records are packed into one batch per partition (``create_batch``): far cheaper
        per record than ``send``, which matters on the ingest path.
        """
        producer = await self._ensure_started()
        by_partition: dict[int, list[OutgoingRecord]] = defaultdict(list)
        partitions = sorted(await producer.partitions_for(topic))
        known = set(partitions)
        for record in records:
            partition = record.partition
            if partition is None or partition not in known:
                partition = _partitioner(record.key, partitions, partitions)
            by_partition[partition].append(record)
        pending = []
        for partition, batch_records in by_partition.items():
            batch = producer.create_batch()
            for record in batch_records:
                if (
                    batch.append(
                        key=record.key,
                        value=record.value,
                        timestamp=None,
                        headers=list(record.headers),
                    )
                    is None
                ):  # full: send it, start the next
                    pending.append(await producer.send_batch(batch, topic, partition=partition))
                    batch = producer.create_batch()
                    batch.append(
                        key=record.key,
                        value=record.value,
                        timestamp=None,
                        headers=list(record.headers),
                    )
            pending.append(await producer.send_batch(batch, topic, partition=partition))
        if pending:
            await asyncio.gather(*pending)
        return sum(len(batch_records) for batch_records in by_partition.values())

    async def stop(self) -> None:
        """Flush and stop the producer (a no-op if it never started)."""
        producer, self._producer = self._producer, None
        if producer is not None:
            await producer.stop()


def attach_sink(app: faust.App, settings: Settings) -> RecordSink:
    """A sink for ``app``'s data topics, stopped (flushed) when the app shuts down."""
    sink = RecordSink(
        settings.broker_address,
        app.conf.producer_max_request_size,
        idempotent=not settings.embedded_broker_quirks,
    )
    app.on_before_shutdown.connect(lambda *args, **kwargs: sink.stop())
    return sink
