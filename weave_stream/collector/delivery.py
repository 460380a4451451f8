"""Getting a request's calls onto Kafka before the collector answers 2xx.

:meth:`Delivery.send` returns only once the broker has acknowledged every record
(``acks=all``), so a 2xx means the calls are in Kafka. When Kafka does not acknowledge
within ``collector_ack_timeout_seconds`` (down, unreachable, or without its topics),
it raises :class:`CollectorRequestError` 503 with a ``Retry-After``: the weave client
retries 5xx answers with backoff (and requeues a batch that still fails). For
``Retry-After`` seconds after such a failure, requests are refused at once instead of
piling more records into the producer; the first request after that tries again.

A record of a refused request may still reach Kafka later (it was already in the
producer's buffer): the client's retry then writes it twice, and the ingest agent
counts the second copy as a ``duplicate``. Nothing acknowledged is ever lost.
"""

from __future__ import annotations

import asyncio
import logging
import math
import time
from collections.abc import Iterable

from weave_stream.broker.kafka import ensure_topics
from weave_stream.broker.sink import OutgoingRecord, RecordSink
from weave_stream.config import Settings
from weave_stream.errors import CollectorRequestError
from weave_stream.metrics import COLLECTOR_REFUSED

__all__ = ["Delivery"]

log = logging.getLogger(__name__)


class Delivery:
    """The collector's producer: acknowledged writes, or a 503 saying when to retry."""

    def __init__(self, settings: Settings) -> None:
        self._settings = settings
        self._timeout = settings.collector_ack_timeout_seconds
        self._retry_after = max(1.0, settings.collector_retry_after_seconds)
        self._sink = RecordSink(
            settings.broker_address,
            max(4 * 1024 * 1024, 2 * settings.max_payload_bytes),
            idempotent=settings.idempotent,  # probed: see weave_stream.broker.probe
        )
        self._topics_ready = False
        self._refuse_until = 0.0

    @property
    def available(self) -> bool:
        """False while requests are being refused after Kafka failed to acknowledge."""
        return time.monotonic() >= self._refuse_until

    async def send(self, topic: str, records: Iterable[tuple[bytes | None, bytes]]) -> int:
        """Write ``records`` to ``topic``; return once all are acknowledged, or raise 503."""
        batch = [OutgoingRecord(key, value) for key, value in records]
        if not batch:
            return 0
        if not self.available:
            COLLECTOR_REFUSED.labels("kafka_unavailable").inc()
            raise self._unavailable("Kafka did not acknowledge a recent write")
        try:
            return await asyncio.wait_for(self._write(topic, batch), self._timeout)
        except Exception as exc:  # a timeout, or any of aiokafka's errors: the same answer
            self._refuse_until = time.monotonic() + self._retry_after
            COLLECTOR_REFUSED.labels("kafka_unavailable").inc()
            reason = "timed out" if isinstance(exc, TimeoutError) else f"{type(exc).__name__}"
            log.warning(
                "Kafka did not acknowledge %d records (%s); answering 503", len(batch), reason
            )
            raise self._unavailable(f"Kafka did not acknowledge the write ({reason})") from None

    async def _write(self, topic: str, batch: list[OutgoingRecord]) -> int:
        if not self._topics_ready:
            topics = self._settings.topics
            await ensure_topics(self._settings, [topics.calls, topics.valid, topics.dlq])
            await ensure_topics(self._settings, [topics.objects], {"cleanup.policy": "compact"})
            self._topics_ready = True
        return await self._sink.write(topic, batch)

    def _unavailable(self, what: str) -> CollectorRequestError:
        wait = math.ceil(max(1.0, self._refuse_until - time.monotonic()))
        return CollectorRequestError(
            503,
            f"{what}; nothing of this request is acknowledged: retry in {wait} s "
            f"(broker {self._settings.broker_address})",
            retry_after=wait,
        )

    async def stop(self) -> None:
        """Flush and stop the producer."""
        await self._sink.stop()
