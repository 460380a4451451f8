"""The strict commit rules installed on Faust: never past an unprocessed offset."""

from __future__ import annotations

import asyncio
from collections import defaultdict
from collections.abc import AsyncIterator, Mapping
from types import SimpleNamespace
from typing import Any

import pytest
from faust.streams import Stream
from faust.transport.consumer import Consumer, ThreadDelegateConsumer
from faust.types import TP
from faust.types.tuples import ConsumerMessage

from weave_stream.runners.streaming import commit_guard
from weave_stream.runners.streaming.commit_guard import (
    commit_only_processed_offsets,
    known_committed,
)

PARTITION = TP("calls.valid", 0)
CHANGELOG = TP("group-results-changelog", 0)


def consumer(committed: int | None, acked: list[int]) -> SimpleNamespace:
    """The mappings the commit rule reads, as Faust keeps them; ``committed`` is the
    offset the broker confirmed (None: not known to this consumer)."""
    state = SimpleNamespace(
        _acked=defaultdict(list, {PARTITION: list(acked)}),
        _acked_index=defaultdict(set, {PARTITION: set(acked)}),
        _committed_offset=defaultdict(lambda: None, {PARTITION: committed}),
    )
    if committed is not None:
        known_committed(state)[PARTITION] = committed
    return state


@pytest.fixture(autouse=True)
def strict_commits() -> None:
    commit_only_processed_offsets()


def test_a_record_missing_at_the_head_holds_the_commit_until_it_is_processed() -> None:
    state = consumer(committed=2585, acked=[2586, 2587, 2588, 2589])  # 2585 in flight or lost
    assert Consumer._new_offset(state, PARTITION) is None
    assert state._acked[PARTITION] == [2586, 2587, 2588, 2589]  # kept for later
    state._acked[PARTITION].append(2585)  # processed at last
    assert Consumer._new_offset(state, PARTITION) == 2590


def test_the_commit_stops_before_a_hole_in_the_middle() -> None:
    state = consumer(committed=10, acked=[10, 11, 12, 15, 16])
    assert Consumer._new_offset(state, PARTITION) == 13


def test_offsets_below_the_committed_one_are_forgotten() -> None:
    state = consumer(committed=13, acked=[10, 11, 12, 13, 15])
    assert Consumer._new_offset(state, PARTITION) == 14
    assert state._acked[PARTITION] == [13, 15]
    assert state._acked_index[PARTITION] == {13, 15}


def test_a_skipped_offset_is_not_recorded_as_a_gap_to_commit_over() -> None:
    state = consumer(committed=10, acked=[10, 14])
    state._gap = defaultdict(list)
    asyncio.run(Consumer._add_gap(state, PARTITION, 11, 14))
    assert state._gap == {}
    assert Consumer._new_offset(state, PARTITION) == 11


def test_without_a_known_committed_offset_nothing_is_committed() -> None:
    """Issue 19's loss: a hole held at offset 24, then a revocation made Faust forget the
    committed offset, and the first run of acknowledged offsets (25...) was committed."""
    state = consumer(committed=None, acked=[25, 26, 27])
    assert Consumer._new_offset(state, PARTITION) is None
    known_committed(state)[PARTITION] = 24  # the seek after the next assignment
    assert Consumer._new_offset(state, PARTITION) is None
    state._acked[PARTITION].append(24)
    assert Consumer._new_offset(state, PARTITION) == 28


def test_a_revoked_partition_forgets_its_committed_offset(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    async def faust_revoked(self: Any, revoked: set[TP]) -> None:
        # Faust's own: it waits for the batches in flight and commits what they acked.
        assert known_committed(self) == {PARTITION: 24}

    committed: list[bool] = []

    async def commit() -> bool:  # what was acknowledged so far, before Faust forgets it
        committed.append(True)
        return True

    monkeypatch.setattr(commit_guard, "_faust_revoked", faust_revoked)
    commit_only_processed_offsets()
    state = consumer(committed=24, acked=[25])
    state.commit = commit
    asyncio.run(Consumer.on_partitions_revoked(state, {PARTITION}))  # type: ignore[arg-type]
    assert committed == [True] and known_committed(state) == {}


def fake_commit(refused: bool) -> Any:
    async def commit_offsets(self: Any, offsets: Mapping[TP, int], new: bool = True) -> bool:
        self._committed_offset.update(offsets)  # as Faust does, refused or not
        return not refused

    return commit_offsets


@pytest.mark.parametrize("refused", [False, True])
def test_only_a_commit_the_broker_took_moves_the_known_offset(
    monkeypatch: pytest.MonkeyPatch, refused: bool
) -> None:
    monkeypatch.setattr(commit_guard, "_faust_commit_offsets", fake_commit(refused))
    commit_only_processed_offsets()
    state = consumer(committed=10, acked=[10, 11])
    state.assignment = lambda: {PARTITION}
    assert asyncio.run(Consumer._commit_offsets(state, {PARTITION: 12})) is not refused
    expected = 10 if refused else 12
    assert known_committed(state)[PARTITION] == expected
    assert state._committed_offset[PARTITION] == expected


def test_the_seek_to_committed_offsets_teaches_the_guard(monkeypatch: pytest.MonkeyPatch) -> None:
    fresh = TP("calls.valid", 1)

    async def faust_seek(self: Any) -> dict[TP, int | None]:
        return {PARTITION: 40, fresh: None, CHANGELOG: None}

    async def position(tp: TP) -> int:
        return {fresh: 0}[tp]  # nothing committed: the group reads from the reset offset

    monkeypatch.setattr(commit_guard, "_faust_seek_to_committed", faust_seek)
    commit_only_processed_offsets()
    state = consumer(committed=None, acked=[])
    state.position = position
    state.app = SimpleNamespace(
        topics=SimpleNamespace(acks_enabled_for=lambda topic: topic == "calls.valid")
    )
    asyncio.run(ThreadDelegateConsumer.seek_to_committed(state))  # type: ignore[arg-type]
    assert known_committed(state) == {PARTITION: 40, fresh: 0}


class Acks:
    """A consumer that records final acknowledgements."""

    def __init__(self) -> None:
        self.offsets: list[int] = []

    def ack(self, message: ConsumerMessage) -> bool:
        self.offsets.append(message.offset)
        message.acked = True
        return True


def faust_batches(acks: Acks, batches: list[list[int]]) -> Any:
    """Faust's take_events in miniature: a batch is acknowledged in a ``finally``."""

    async def take_events(self: Any, max_: int, within: float) -> AsyncIterator[list[Any]]:
        for offsets in batches:
            events = []
            for offset in offsets:
                message = ConsumerMessage("calls.valid", 0, offset, 0.0, 0, None, b"k", b"v", None)
                message.incref()  # the conductor's reference for this stream
                events.append(SimpleNamespace(message=message))
            try:
                yield events
            finally:
                for event in events:
                    event.message.ack(acks)

    return take_events


@pytest.mark.parametrize("failure", [RuntimeError("op crashed"), asyncio.CancelledError()])
def test_a_batch_is_acknowledged_only_when_the_agent_finished_it(
    monkeypatch: pytest.MonkeyPatch, failure: BaseException
) -> None:
    acks = Acks()
    monkeypatch.setattr(commit_guard, "_faust_take_events", faust_batches(acks, [[0, 1], [2, 3]]))
    commit_only_processed_offsets()

    async def agent() -> None:
        async for events in Stream.take_events(None, 2, 0.1):  # type: ignore[arg-type]
            if events[0].message.offset == 2:
                raise failure  # mid-batch: its values were never written

    async def run() -> None:
        with pytest.raises(type(failure)):
            await agent()
        await asyncio.sleep(0)  # let the abandoned generators' finalizers run

    asyncio.run(run())
    assert acks.offsets == [0, 1]  # the finished batch, never the failed one


def test_a_commit_asks_the_broker_where_a_partition_stands_when_its_seek_failed(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """Held commits must not wait forever: a partition with acknowledged offsets and no
    known committed offset learns it from the broker at the next commit."""
    asked: list[TP] = []

    async def broker_committed(consumer: Any, tp: TP) -> int:
        asked.append(tp)
        return 24

    async def faust_force_commit(self: Any, topics: Any, new: bool) -> bool:
        return Consumer._new_offset(self, PARTITION) == 26

    monkeypatch.setattr(commit_guard, "_broker_committed", broker_committed)
    monkeypatch.setattr(commit_guard, "_faust_force_commit", faust_force_commit)
    commit_only_processed_offsets()
    state = consumer(committed=None, acked=[24, 25])
    state.app = SimpleNamespace(rebalancing=True)
    state.assignment = lambda: {PARTITION}
    assert asyncio.run(Consumer.force_commit(state)) is False  # mid-rebalance: not yet
    assert asked == []
    state.app.rebalancing = False
    assert asyncio.run(Consumer.force_commit(state)) is True
    assert asked == [PARTITION] and known_committed(state) == {PARTITION: 24}
