"""Batched writes to Kafka topics, awaited until the broker has acknowledged them all.

The workers' data topics (valid calls, dead letters, derived values, alerts) and the
collector's calls go through a :class:`RecordSink`, which packs records into one
batch per partition and is awaited as a whole: whoever awaits :meth:`RecordSink.write`
knows every record is on the broker (``acks=all``) before it acknowledges its own
input (a source offset, an HTTP request).
"""

from __future__ import annotations

import asyncio
from collections import defaultdict
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field

from aiokafka import AIOKafkaProducer
from aiokafka.errors import KafkaError
from aiokafka.partitioner import DefaultPartitioner

from weave_stream.broker.probe import explain_producer_error
from weave_stream.errors import BrokerError

__all__ = ["OutgoingRecord", "RecordSink"]

_partitioner = DefaultPartitioner()


@dataclass(frozen=True, slots=True)
class OutgoingRecord:
    """One record to write: key, value, headers, and its partition (None: from the key,
    with Kafka's default partitioner — murmur2, as every Kafka client does)."""

    key: bytes | None
    value: bytes | None  # None: a null value (a tombstone dead-lettered as it came)
    headers: Sequence[tuple[str, bytes]] = field(default_factory=tuple)
    partition: int | None = None


class RecordSink:
    """An aiokafka producer started on first use and stopped with the app.

    Parameters:
        bootstrap_servers: ``host:port[,host:port]``.
        max_request_size: the largest record batch the producer may send, in bytes.
        idempotent: use Kafka's idempotent producer (when the broker accepts it).

    A write the broker refuses for lack of a capability (an idempotent producer on a
    broker without one) raises :class:`BrokerError` saying so and how to fix it.
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
                        # Where the broker accepts it (probed): it drops a retried batch it
                        # already has (the embedded broker cannot: InitProducerId fails).
                        enable_idempotence=self._idempotent,
                    )
                    try:
                        await producer.start()
                    except BaseException:  # unreachable broker, or the caller gave up
                        await producer.stop()
                        raise
                    self._producer = producer
        return self._producer

    async def write(self, topic: str, records: Iterable[OutgoingRecord]) -> int:
        """Write ``records`` to ``topic`` and wait until the broker has acknowledged all.

        Records are packed into one batch per partition (``create_batch``): far cheaper
        per record than ``send``, which matters on the ingest path.
        """
        try:
            return await self._write(topic, records)
        except KafkaError as exc:
            explained = explain_producer_error(
                exc, f"kafka://{self._bootstrap_servers}", self._idempotent
            )
            if explained is None:
                raise
            raise BrokerError(explained) from exc

    async def _write(self, topic: str, records: Iterable[OutgoingRecord]) -> int:
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
