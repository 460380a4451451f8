"""Never commit a source offset that was not processed: Faust's commit rules, made strict.

Faust commits, per partition, the end of the first run of consecutive acknowledged
offsets. Three things let that commit pass an offset no agent processed:

* **An unknown starting point.** Faust forgets a partition's committed offset when
  the partition is revoked (before it waits for the batches in flight and commits
  what they acknowledged), and knows none after an assignment until its recovery
  has sought the partitions to their committed offsets. With no committed offset to
  start from, the first run of acknowledged offsets is committed, whatever lies
  before it. This was the loss of issue 19: a record dropped after a restart (see
  the next point) left a hole at the head of its partition, the strict rule below
  held the commit there — until the next rebalance, whose revocation forgot the
  committed offset and committed the run after the hole. The record was never
  read again; nothing said so.
* **Gaps.** A single missing offset at the head is taken for a compacted-topic gap
  and committed over (faust-streaming#606), and offsets the fetch loop sees skipped
  are recorded as a gap and committed over as if acknowledged. Both happen after a
  restart, when recovery resumes fetching before it seeks the partitions back to
  their committed offsets (faust-streaming#596): records of the first fetch race
  the seek, and some are dropped as already read.
* **Batches acknowledged unfinished.** ``Stream.take_events`` acknowledges a batch in
  a ``finally``: when the agent body raises, or is cancelled mid-batch (every
  graceful stop cancels the agents before the consumer's last commit), the batch is
  acknowledged although its values were never written.

The rules here, installed on every Faust consumer and stream of the process:

* a partition commits only from the committed offset the broker confirmed to this
  consumer (read when recovery seeks the partitions, or written by a commit that
  succeeded), and only up to its first offset not acknowledged; a partition whose
  committed offset is not known (just revoked, not yet sought) does not commit until
  it is (if a seek failed, the next commit asks the broker for it);
* skipped offsets are never gaps: weave-stream's source topics are neither
  compacted nor transactional under ``at_least_once``, so they have no real gaps;
* a ``take_events`` batch is acknowledged only when the agent asks for the next
  batch, i.e. after its body finished the previous one.

A dropped record then holds its partition's commits back instead of vanishing; the
stall watchdog (:mod:`~weave_stream.runners.streaming.watchdog`) reads it again.
Under ``exactly_once`` (real Kafka, transaction markers make real gaps) Faust's own
rules stay.
"""

from __future__ import annotations

import logging
from collections.abc import AsyncIterator, Mapping
from typing import Any

from aiokafka import TopicPartition
from faust.streams import Stream
from faust.transport.consumer import Consumer, ThreadDelegateConsumer
from faust.types import TP
from faust.utils.functional import consecutive_numbers

__all__ = ["commit_only_processed_offsets", "known_committed", "next_commit"]

log = logging.getLogger(__name__)

_faust_revoked = Consumer.on_partitions_revoked
_faust_commit_offsets = Consumer._commit_offsets
_faust_seek_to_committed = ThreadDelegateConsumer.seek_to_committed
_faust_take_events = Stream.take_events
_faust_force_commit = Consumer.force_commit


def next_commit(acked: list[int], committed: int | None) -> tuple[int | None, list[int]]:
    """The offset to commit after ``acked`` (the next one to read), and the acknowledged
    offsets already committed (to forget); None while the offset the partition is
    committed at (``committed``) is unknown or not acknowledged yet. Sorts ``acked``.

    >>> next_commit([12, 10, 11], committed=10)
    (13, [])
    >>> next_commit([11, 12], committed=10)  # offset 10 was never processed
    (None, [])
    >>> next_commit([10, 11, 13], committed=10)
    (12, [])
    >>> next_commit([8, 9, 10, 11], committed=10)  # 8 and 9 are committed: forget them
    (12, [8, 9])
    >>> next_commit([25, 26], committed=None)  # where does the partition stand? hold
    (None, [])
    """
    if committed is None:
        return None, []
    acked.sort()
    stale = [offset for offset in acked if offset < committed]
    pending = acked[len(stale) :]
    if not pending or pending[0] != committed:
        return None, stale
    run = next(consecutive_numbers(pending))
    return run[-1] + 1, stale


def known_committed(consumer: Any) -> dict[TP, int]:
    """``{partition: committed offset}`` as the broker confirmed it to ``consumer``."""
    known: dict[TP, int] | None = consumer.__dict__.get("_weave_known_committed")
    if known is None:
        known = consumer.__dict__["_weave_known_committed"] = {}
    return known


def _learn(consumer: Any, offsets: Mapping[TP, int]) -> None:
    known = known_committed(consumer)
    for tp, offset in offsets.items():
        # Committed offsets only move forward while a partition stays assigned, so a
        # lower answer is an older one (a read racing a commit of ours).
        known[tp] = max(offset, known.get(tp, offset))


async def _broker_committed(consumer: Any, tp: TP) -> int | None:
    """The offset the broker holds for ``tp`` (the reset position when none is committed)."""
    thread = consumer._thread
    client = thread._ensure_consumer()
    offset = await thread.call_thread(client.committed, TopicPartition(tp.topic, tp.partition))
    if offset is None or offset < 0:
        offset = await consumer.position(tp)
    return None if offset is None else int(offset)


async def _learn_unknown(consumer: Any) -> None:
    """Ask the broker for the committed offsets of assigned partitions with acknowledged
    offsets and none known (their seek failed): held commits must not wait forever."""
    if consumer.app.rebalancing:
        return  # recovery seeks every partition once the assignment settles
    known = known_committed(consumer)
    assigned = consumer.assignment()
    for tp, acked in list(consumer._acked.items()):
        if acked and tp not in known and tp in assigned:
            try:
                offset = await _broker_committed(consumer, tp)
            except Exception as exc:  # a rebalance began: the seek after it teaches us
                log.info("committed offset of %s not read (%r); asking again later", tp, exc)
                continue
            if offset is not None:
                _learn(consumer, {tp: offset})


def commit_only_processed_offsets() -> None:
    """Make every Faust consumer and stream in this process commit only processed offsets."""

    def _new_offset(self: Any, tp: TP) -> int | None:
        acked: list[int] = self._acked[tp]
        if not acked:
            return None
        offset, stale = next_commit(acked, known_committed(self).get(tp))
        if stale:
            del acked[: len(stale)]
            self._acked_index[tp].difference_update(stale)
        return offset

    async def _add_gap(self: Any, tp: TP, offset_from: int, offset_to: int) -> None:
        """A skipped offset is one not processed yet, never a gap to commit over."""

    async def _commit_offsets(
        self: Any, offsets: Mapping[TP, int], start_new_transaction: bool = True
    ) -> bool:
        assignment = self.assignment()
        before = {tp: self._committed_offset.get(tp) for tp in offsets}
        did_commit = bool(await _faust_commit_offsets(self, offsets, start_new_transaction))
        if did_commit:
            _learn(self, {tp: o for tp, o in offsets.items() if tp in assignment})
        else:  # Faust records the offsets as committed even when the broker refused them
            self._committed_offset.update(before)
        return did_commit

    async def seek_to_committed(self: Any) -> Mapping[TP, int]:
        committed: Mapping[TP, int | None] = await _faust_seek_to_committed(self)
        learnt = {}
        for tp, offset in committed.items():
            if not self.app.topics.acks_enabled_for(tp.topic):
                continue  # a table's changelog: read by recovery, never committed
            if offset is None or offset < 0:  # nothing committed: reading starts at the reset
                offset = await self.position(tp)
            if offset is not None:
                learnt[tp] = offset
        _learn(self, learnt)
        return committed  # type: ignore[return-value]

    async def force_commit(
        self: Any, topics: Any = None, start_new_transaction: bool = True
    ) -> bool:
        await _learn_unknown(self)
        return bool(await _faust_force_commit(self, topics, start_new_transaction))

    async def on_partitions_revoked(self: Any, revoked: set[TP]) -> None:
        # Faust forgets what was acknowledged since the last commit before it waits for
        # the batches in flight: commit it first, or the next owner processes it again.
        await self.commit()
        try:
            await _faust_revoked(self, revoked)  # waits for batches in flight, commits
        finally:
            known = known_committed(self)
            for tp in revoked:
                known.pop(tp, None)  # another member may commit it now

    async def take_events(self: Any, max_: int, within: float) -> AsyncIterator[Any]:
        """Faust's ``take_events``, acknowledging a batch only once the agent finished it."""
        batches = _faust_take_events(self, max_, within)
        try:
            async for events in batches:
                for event in events:
                    event.message.incref()  # Faust's own ack, on any exit, leaves this one
                yield events
                # Reached only when the agent asks for the next batch: this one is done.
                for event in events:
                    event.message.decref()
        finally:
            await batches.aclose()

    Consumer._new_offset = _new_offset  # type: ignore[method-assign]
    Consumer._add_gap = _add_gap  # type: ignore[method-assign]
    Consumer._commit_offsets = _commit_offsets  # type: ignore[method-assign]
    Consumer.force_commit = force_commit  # type: ignore[method-assign]
    Consumer.on_partitions_revoked = on_partitions_revoked  # type: ignore[method-assign]
    ThreadDelegateConsumer.seek_to_committed = seek_to_committed  # type: ignore[method-assign]
    Stream.take_events = take_events  # type: ignore[assignment,method-assign]
