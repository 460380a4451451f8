"""The strict commit rule installed on Faust's consumer: never past an unprocessed offset."""

from __future__ import annotations

import asyncio
from collections import defaultdict
from types import SimpleNamespace

import pytest
from faust.transport.consumer import Consumer
from faust.types import TP

from weave_stream.runners.streaming.commit_guard import commit_only_processed_offsets

PARTITION = TP("calls.valid", 0)


def consumer(committed: int | None, acked: list[int]) -> SimpleNamespace:
    """The three mappings ``_new_offset`` reads, as Faust keeps them."""
    return SimpleNamespace(
        _acked=defaultdict(list, {PARTITION: list(acked)}),
        _acked_index=defaultdict(set, {PARTITION: set(acked)}),
        _committed_offset=defaultdict(lambda: None, {PARTITION: committed}),
    )


@pytest.fixture(autouse=True)
def strict_commits() -> None:
    commit_only_processed_offsets()


def test_a_record_missing_at_the_head_holds_the_commit_until_it_is_processed() -> None:
    state = consumer(committed=2585, acked=[2586, 2587, 2588, 2589])  # 2585 in flight or lost
    assert Consumer._new_offset(state, PARTITION) is None
    assert state._acked[PARTITION] == [2586, 2587, 2588, 2589]  # kept for later
    state._acked[PARTITION].append(2585)  # processed at last
    assert Consumer._new_offset(state, PARTITION) == 2590
    assert state._acked[PARTITION] == [] and state._acked_index[PARTITION] == set()


def test_the_commit_stops_before_a_hole_in_the_middle() -> None:
    state = consumer(committed=10, acked=[10, 11, 12, 15, 16])
    assert Consumer._new_offset(state, PARTITION) == 13
    assert state._acked[PARTITION] == [15, 16]


def test_a_skipped_offset_is_not_recorded_as_a_gap_to_commit_over() -> None:
    state = consumer(committed=10, acked=[10, 14])
    state._gap = defaultdict(list)
    asyncio.run(Consumer._add_gap(state, PARTITION, 11, 14))
    assert state._gap == {}
    assert Consumer._new_offset(state, PARTITION) == 11


def test_without_a_committed_offset_the_first_run_is_committed() -> None:
    assert Consumer._new_offset(consumer(committed=None, acked=[3, 4, 5]), PARTITION) == 6
