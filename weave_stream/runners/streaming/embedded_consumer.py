"""Faust's Kafka consumer, adapted to the embedded broker's two measured gaps.

* **End offsets.** The embedded broker answers ListOffsets(latest) with the base
  offset of a partition's last record batch + 1, not its end, once batches hold
  several records (shared/BROKER.md). Faust reads a table's changelog up to that
  answer when it recovers, so it would restore all but the tail of each partition
  (2,999 of 3,000 there). The high-water mark of a Fetch response is right, so on
  that broker Faust's consumer gets high-water marks read by Fetch, and producers
  batch changelog records freely instead of sending one per request.
* **Fetch waits.** Faust asks for fetches that wait up to 1.5 s for data. Kafka
  answers one as soon as a record arrives; the embedded broker answered after a
  good part of the wait (a record produced every 130 ms was consumed 128 ms later
  at the median with a 500 ms wait, 28 ms with 100 ms, 4 ms with 20 ms), and every
  stage of a pipeline adds that delay. On that broker fetches wait at most
  ``FETCH_MAX_WAIT_MS``.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Mapping, Sequence
from typing import Any

from faust.transport.drivers.aiokafka import AIOKafkaConsumerThread
from faust.types import TP

from weave_stream.broker.kafka import highwaters
from weave_stream.config import Settings

__all__ = ["FETCH_MAX_WAIT_MS", "adapt_consumers_to_embedded_broker"]

FETCH_MAX_WAIT_MS = 50

_create_worker_consumer = AIOKafkaConsumerThread._create_worker_consumer


def adapt_consumers_to_embedded_broker(settings: Settings) -> None:
    """Make Faust's consumers (in this process) fit the embedded broker: end offsets
    read from Fetch responses, and short fetch waits."""

    async def fetched_highwaters(self: Any, partitions: Sequence[TP]) -> Mapping[TP, int]:
        by_topic: dict[str, list[TP]] = defaultdict(list)
        for tp in partitions:
            by_topic[tp.topic].append(tp)
        ends: dict[TP, int] = {}
        for topic, tps in by_topic.items():
            marks = await highwaters(settings, topic)
            ends.update({tp: marks.get(tp.partition, 0) for tp in tps})
        return ends

    def short_fetch_waits(self: Any, transport: Any) -> Any:
        consumer = _create_worker_consumer(self, transport)
        consumer._fetch_max_wait_ms = FETCH_MAX_WAIT_MS  # read when the consumer starts
        return consumer

    AIOKafkaConsumerThread._highwaters = fetched_highwaters  # type: ignore[method-assign]
    AIOKafkaConsumerThread._create_worker_consumer = short_fetch_waits  # type: ignore[method-assign]
