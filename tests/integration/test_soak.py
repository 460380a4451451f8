"""A small kill -9 soak (bench/soak.py is the large one): repeated SIGKILLs, none lost."""

from __future__ import annotations

import asyncio
import threading
import time
from collections import Counter, defaultdict
from collections.abc import Callable

from tests.support.records import produce_calls, wait_until_committed
from tests.support.topologies import (
    WORDY,
    covers,
    documents,
    register_file,
    wait_for_values,
)
from weave_stream.broker.kafka import read_topic
from weave_stream.columns.derive import DerivedValue
from weave_stream.columns.values import first_values, identity
from weave_stream.config import Settings
from weave_stream.runners.backfill import WRITER_HEADER
from weave_stream.runners.workers import WorkerProcess

COLUMNS = ["words", "size"]


async def every_value(settings: Settings) -> tuple[list[DerivedValue], int]:
    """Every value written, and how many the reconciler wrote (values the stream lost)."""
    values, repaired = [], 0
    for column in COLUMNS:
        async for record in read_topic(settings, settings.topics.derived("wordy", column)):
            if record.value is not None:
                values.append(DerivedValue.from_json(record.value))
                repaired += dict(record.headers).get(WRITER_HEADER) == b"reconciler"
    return values, repaired


def test_workers_killed_mid_stream_and_during_a_rebalance_lose_no_value(
    make_settings: Callable[..., Settings], start_worker: Callable[..., WorkerProcess]
) -> None:
    """Two SIGKILLs while calls flow: one mid-stream (its restart joins while the other
    worker takes its partitions over), one while that restarted worker's topology child
    joins (its partitions move again, revoked mid-batch). bench/soak.py repeats this at
    random moments for minutes; this is its short form."""
    settings = make_settings(partitions=4, batch_size=16)
    workers = {name: start_worker(settings, name) for name in ("a", "b")}
    register_file(settings, WORDY)
    calls = documents(["tech_support", "trivia", "food"], "soak", 300)
    producer = threading.Thread(
        target=lambda: [
            (produce_calls(settings, calls[i : i + 20]), time.sleep(0.4))
            for i in range(0, len(calls), 20)
        ]
    )
    producer.start()
    wait_for_values(settings, "wordy", ["words"], lambda v: len(v) >= 40, timeout=120)
    workers["a"].kill()
    workers["a"] = start_worker(settings, "a")  # joins while b takes over a's partitions
    workers["b"].kill()  # while a's topology child joins: a rebalance
    producer.join()

    wait_for_values(settings, "wordy", COLUMNS, covers(calls, COLUMNS), timeout=240)
    wait_until_committed(settings, settings.topics.topology_group("wordy"), timeout=120)
    values, repaired = asyncio.run(every_value(settings))
    assert Counter((v.call_id, v.column) for v in first_values(values)) == Counter(
        {(c["id"], column): 1 for c in calls for column in COLUMNS}
    )
    assert repaired == 0  # every value came from the stream: the reconciler found no loss
    variants: dict[tuple[str, str, str, int], set[str]] = defaultdict(set)
    for value in values:
        variants[identity(value)].add(repr((value.value, value.error)))
    assert all(len(seen) == 1 for seen in variants.values())  # repeats agree
