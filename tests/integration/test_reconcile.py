"""Reconciliation on the real broker: values lost by the stream are found and repaired."""

from __future__ import annotations

import asyncio
from collections import Counter
from collections.abc import Callable

from tests.support.cli import weave_stream
from tests.support.metrics import wait_for_metric
from tests.support.records import produce_calls, read_all
from tests.support.topologies import (
    WORDY,
    covers,
    documents,
    register_file,
    wait_for_values,
)
from weave_stream.broker.kafka import (
    commit_group_offsets,
    ensure_topics,
    highwaters,
    produce,
)
from weave_stream.columns.cache import MemoryCache
from weave_stream.columns.derive import derive_batch
from weave_stream.columns.values import derived_key
from weave_stream.config import Settings
from weave_stream.ingest.call import parse_call_object
from weave_stream.runners.backfill import WRITER_HEADER
from weave_stream.runners.reconcile import reconcile_partitions
from weave_stream.runners.workers import WorkerProcess
from weave_stream.topology.loader import load_topology

COLUMNS = ["words", "size"]


def lost_calls(settings: Settings, count: int, seed: str) -> list[dict]:
    """``count`` calls on the valid-calls topic, committed by the topology's group as if
    processed, but with no value written: what a commit past a hole leaves behind."""
    calls = documents(["food", "money"], seed, count)
    valid = [parse_call_object(call) for call in calls]
    records = [(c.id.encode(), c.to_json(), ()) for c in valid]
    asyncio.run(produce(settings, settings.topics.valid, records))
    ends = asyncio.run(highwaters(settings, settings.topics.valid))
    group = settings.topics.topology_group("wordy")
    asyncio.run(commit_group_offsets(settings, group, settings.topics.valid, ends))
    return calls


def write_values(settings: Settings, calls: list[dict], columns: list[str]) -> None:
    """Write ``columns`` of ``calls`` as the stream does (no writer header)."""
    topology = load_topology(WORDY)
    parsed = [parse_call_object(call) for call in calls]
    values = asyncio.run(derive_batch(topology, parsed, MemoryCache()))
    for column in columns:
        records = [
            (derived_key(v.call_id, v.trial), v.to_json(), ()) for v in values if v.column == column
        ]
        asyncio.run(produce(settings, settings.topics.derived("wordy", column), records))


def test_a_pass_finds_the_missing_values_and_writes_only_those(
    make_settings: Callable[..., Settings],
) -> None:
    settings = make_settings(reconcile_settle_seconds=0)
    topics = settings.topics
    derived = [topics.derived("wordy", column) for column in COLUMNS]
    asyncio.run(ensure_topics(settings, [topics.valid, *derived]))
    cursor = topics.reconcile_group("wordy")
    asyncio.run(commit_group_offsets(settings, cursor, topics.valid, {0: 0, 1: 0}))
    calls = lost_calls(settings, 10, "reconcile")
    thirteen = {**calls[0], "id": "thirteen", "inputs": {"document": " ".join(["w"] * 13)}}
    calls.append(thirteen)
    records = [(b"thirteen", parse_call_object(thirteen).to_json(), ())]
    asyncio.run(produce(settings, topics.valid, records))
    ends = asyncio.run(highwaters(settings, topics.valid))
    group = topics.topology_group("wordy")
    asyncio.run(commit_group_offsets(settings, group, topics.valid, ends))
    # Written in full: four calls, and "thirteen" (whose size is an error value, an
    # outcome, not a loss). Half written: one call has its words but lost its size.
    write_values(settings, [*calls[:4], thirteen], COLUMNS)
    write_values(settings, calls[4:5], ["words"])

    topology = load_topology(WORDY)
    result = asyncio.run(reconcile_partitions(settings, topology, [0, 1]))

    assert result.checked == 11
    assert result.missing == Counter({"words": 5, "size": 6})
    assert result.repaired == result.missing
    assert sorted(result.missing_calls) == sorted(c["id"] for c in calls[4:10])
    repaired = [r for topic in derived for r in read_all(settings, topic) if r.headers]
    assert {dict(r.headers)[WRITER_HEADER] for r in repaired} == {b"reconciler"}
    assert len(repaired) == 11
    wait_for_values(settings, "wordy", COLUMNS, covers(calls, COLUMNS), timeout=10)
    # The cursor moved past every call: the next pass has nothing to check.
    assert asyncio.run(reconcile_partitions(settings, topology, [0, 1])).checked == 0


def test_calls_not_settled_or_not_processed_wait_for_a_later_pass(
    make_settings: Callable[..., Settings],
) -> None:
    settings = make_settings(reconcile_settle_seconds=3600)
    topics = settings.topics
    asyncio.run(ensure_topics(settings, [topics.valid]))
    cursor = topics.reconcile_group("wordy")
    asyncio.run(commit_group_offsets(settings, cursor, topics.valid, {0: 0, 1: 0}))
    lost_calls(settings, 6, "settling")
    topology = load_topology(WORDY)
    assert asyncio.run(reconcile_partitions(settings, topology, [0, 1])).checked == 0
    # Settled, but the topology has not processed them (its offsets are behind them).
    settings = settings.model_copy(update={"reconcile_settle_seconds": 0.0})
    group = topics.topology_group("wordy")
    asyncio.run(commit_group_offsets(settings, group, topics.valid, {0: 0, 1: 0}))
    assert asyncio.run(reconcile_partitions(settings, topology, [0, 1])).checked == 0


def test_a_worker_repairs_calls_committed_without_values(
    make_settings: Callable[..., Settings], start_worker: Callable[..., WorkerProcess]
) -> None:
    """The loss of issue 19, injected: calls committed by the topology's group with no
    value written. The worker's reconciler finds them and writes their values."""
    settings = make_settings(reconcile_interval_seconds=1, reconcile_settle_seconds=1)
    register_file(settings, WORDY)
    topics = settings.topics
    asyncio.run(ensure_topics(settings, [topics.valid]))
    cursor = topics.reconcile_group("wordy")
    asyncio.run(commit_group_offsets(settings, cursor, topics.valid, {0: 0, 1: 0}))
    lost = lost_calls(settings, 8, "injected")
    worker = start_worker(settings)
    fresh = documents(["greetings"], "fresh", 6)
    produce_calls(settings, fresh)  # the stream's own work goes on meanwhile
    values = wait_for_values(settings, "wordy", COLUMNS, covers(lost + fresh, COLUMNS), 120)
    assert Counter((v.call_id, v.column) for v in values) == Counter(
        {(c["id"], column): 1 for c in lost + fresh for column in COLUMNS}
    )
    missing = 'weave_stream_reconcile_missing_values_total{column="words",topology="wordy"}'
    repaired = 'weave_stream_reconcile_repaired_values_total{column="size",topology="wordy"}'
    wait_for_metric(worker, repaired, lambda count: (count or 0) >= len(lost), timeout=30)
    metrics = worker.metrics()
    assert metrics[missing] == len(lost) and metrics[repaired] == len(lost)
    assert "lost values of 8 calls" in (settings.data_dir / "logs" / "w0.wordy.log").read_text()
    # weave-stream status says it too: 16 values (8 calls, 2 columns) found and repaired.
    flags = ["--broker", settings.broker or "", "--prefix", settings.topic_prefix]
    shown = weave_stream("status", *flags).stdout
    assert "values found missing 16, repaired 16" in shown, shown
