"""The ingest agent's dedupe windows, one per partition, rebuilt from what it forwarded.

A window (``ingest.window.ForwardedWindow``) lives in the worker's memory. The truth it
stands for is the tail of ``<prefix>.calls.valid``: every call ingest forwarded, in
the partition of its source record. So when a worker gets a partition (at start, or
taking it over after a crash) it reads the last ``dedupe_window_calls`` records of
that partition of the valid-calls topic back into the window before it ingests a
record from it: a call redelivered after a crash is then a duplicate, and a second
version of an id forwarded before the crash is still a conflict.

Reading stops at the partition's high-water mark from Fetch responses (the embedded
broker's ListOffsets answer can be low: it only makes the read start a little earlier).
"""

from __future__ import annotations

import logging
import time
from collections.abc import Iterable

from aiokafka import AIOKafkaConsumer, TopicPartition

from weave_stream.config import Settings
from weave_stream.ingest.window import ForwardedWindow, digest
from weave_stream.metrics import INGEST_DEDUPE_IDS

__all__ = ["PartitionWindows"]

log = logging.getLogger(__name__)


class PartitionWindows(dict[int | None, ForwardedWindow]):
    """Windows by source partition; :meth:`ensure` loads the missing ones from the valid topic."""

    def __init__(self, settings: Settings) -> None:
        super().__init__()
        self._settings = settings

    def forget(self, partitions: Iterable[int]) -> None:
        """Drop the windows of revoked partitions (their next owner rebuilds them)."""
        for partition in partitions:
            self.pop(partition, None)
        self._report()

    async def ensure(self, partitions: Iterable[int]) -> None:
        """Load the windows of ``partitions`` that are not in memory yet."""
        missing = sorted({p for p in partitions if p not in self})
        if not missing:
            return
        started = time.monotonic()
        loaded = await _read_tails(self._settings, missing)
        for partition, window in loaded.items():
            self[partition] = window
        log.info(
            "dedupe windows of %s[%s] rebuilt from %s in %.2fs (%d ids)",
            self._settings.topics.calls,
            ",".join(map(str, missing)),
            self._settings.topics.valid,
            time.monotonic() - started,
            sum(len(loaded[p]) for p in missing),
        )
        self._report()

    def _report(self) -> None:
        INGEST_DEDUPE_IDS.set(sum(len(window) for window in self.values()))


async def _read_tails(settings: Settings, partitions: list[int]) -> dict[int, ForwardedWindow]:
    capacity = settings.dedupe_window_calls
    windows = {partition: ForwardedWindow(capacity) for partition in partitions}
    consumer = AIOKafkaConsumer(
        bootstrap_servers=settings.broker_address,
        enable_auto_commit=False,
        max_partition_fetch_bytes=max(1024 * 1024, 2 * settings.max_payload_bytes),
    )
    await consumer.start()
    try:
        topic = settings.topics.valid
        known = consumer.partitions_for_topic(topic)
        if known is None:
            await consumer.topics()
            known = consumer.partitions_for_topic(topic) or set()
        remaining = {TopicPartition(topic, p) for p in partitions if p in known}
        if not remaining:
            return windows
        consumer.assign(sorted(remaining))
        ends = await consumer.end_offsets(sorted(remaining))
        for tp, end in ends.items():
            consumer.seek(tp, max(0, end - capacity))
        deadline = time.monotonic() + 120.0
        while remaining and time.monotonic() < deadline:
            batches = await consumer.getmany(*remaining, timeout_ms=500, max_records=10_000)
            for tp, records in batches.items():
                window = windows[tp.partition]
                for record in records:
                    if record.key is not None and record.value is not None:
                        window.add(record.key.decode(errors="replace"), digest(record.value))
            for tp in list(remaining):
                highwater = consumer.highwater(tp)
                if highwater is not None and await consumer.position(tp) >= highwater:
                    remaining.discard(tp)
        if remaining:
            log.warning("dedupe windows of %s: read stopped before the end", sorted(remaining))
    finally:
        await consumer.stop()
    return windows
