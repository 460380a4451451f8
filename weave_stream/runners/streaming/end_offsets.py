"""Table recovery on the embedded broker: true end offsets from Fetch, not ListOffsets.

The embedded broker answers ListOffsets(latest) with the base offset of a partition's
last record batch + 1, not its end, once batches hold several records
(shared/BROKER.md). Faust reads a table's changelog up to that answer when it
recovers, so it would restore all but the tail of each partition (2,999 of 3,000
there). The high-water mark of a Fetch response is right, so on that broker Faust's
consumer is given high-water marks read by Fetch; its producer can then batch
changelog records freely instead of sending one per request.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Mapping, Sequence
from typing import Any

from faust.transport.drivers.aiokafka import AIOKafkaConsumerThread
from faust.types import TP

from weave_stream.config import Settings
from weave_stream.topics import highwaters

__all__ = ["use_fetch_high_water_marks"]


def use_fetch_high_water_marks(settings: Settings) -> None:
    """Make Faust's consumers (in this process) read end offsets from Fetch responses."""

    async def fetched_highwaters(self: Any, partitions: Sequence[TP]) -> Mapping[TP, int]:
        by_topic: dict[str, list[TP]] = defaultdict(list)
        for tp in partitions:
            by_topic[tp.topic].append(tp)
        ends: dict[TP, int] = {}
        for topic, tps in by_topic.items():
            marks = await highwaters(settings, topic)
            ends.update({tp: marks.get(tp.partition, 0) for tp in tps})
        return ends

    AIOKafkaConsumerThread._highwaters = fetched_highwaters  # type: ignore[method-assign]
