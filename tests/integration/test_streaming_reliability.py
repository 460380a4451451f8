"""Two workers in one group on the real broker: a SIGKILL loses no value; timeouts are values."""

from __future__ import annotations

import asyncio
import threading
from collections import Counter, defaultdict
from collections.abc import Callable

from tests.support.records import group_progress_now, produce_calls, wait_until_committed
from tests.support.servers.openai import FakeOpenAI, stall
from tests.support.topologies import (
    ASSETS,
    WORDY,
    covers,
    documents,
    register_file,
    wait_for_values,
)
from tests.support.waiting import wait_until
from weave_stream.columns.values import read_derived
from weave_stream.config import Settings
from weave_stream.runners.workers import WorkerProcess

TOPOLOGY_CALLS = 'weave_stream_topology_calls_total{topology="wordy"}'


def test_killing_one_of_two_workers_mid_stream_loses_no_value(
    make_settings: Callable[..., Settings], start_worker: Callable[..., WorkerProcess]
) -> None:
    settings = make_settings(partitions=4, batch_size=16)
    victim = start_worker(settings, "victim")
    survivor = start_worker(settings, "survivor")
    register_file(settings, WORDY)
    calls = documents(["tech_support", "trivia"], "failover", 1600)
    producer = threading.Thread(
        target=lambda: [
            produce_calls(settings, calls[i : i + 40]) for i in range(0, len(calls), 40)
        ]
    )
    producer.start()
    wait_for_values(settings, "wordy", ["words"], lambda v: len(v) >= 300)
    before = victim.metrics().get(TOPOLOGY_CALLS, 0.0)
    survivor_before = survivor.metrics().get(TOPOLOGY_CALLS, 0.0)
    assert before > 0 and survivor_before > 0, "both workers should have had partitions"
    victim.kill()
    producer.join()

    values = wait_for_values(
        settings, "wordy", ["words", "size"], covers(calls, ["words", "size"]), timeout=180
    )
    # After deduplication by identity: exactly one value per call and column, none lost.
    assert Counter((v.call_id, v.column) for v in values) == Counter(
        {(c["id"], column): 1 for c in calls for column in ("words", "size")}
    )
    # Repeats (re-processed after the takeover) carry the same value: nothing diverged.
    everything = asyncio.run(read_derived(settings, "wordy", ["words", "size"], deduplicate=False))
    seen: dict[tuple, set] = defaultdict(set)
    for value in everything:
        seen[(value.call_id, value.column, value.op_ref, value.trial)].add(repr(value.value))
    assert all(len(variants) == 1 for variants in seen.values())
    # The survivor owns every partition after the kill and carries each to its end: no
    # partition stays uncommitted (a worker whose commits stall is restarted).
    wait_until_committed(settings, settings.topics.topology_group("wordy"), timeout=120)


def test_op_timeouts_become_error_values(
    make_settings: Callable[..., Settings], start_worker: Callable[..., WorkerProcess]
) -> None:
    with FakeOpenAI() as judge_server:
        judge_server.on("", stall(30))
        settings = make_settings(judge_base_url=judge_server.base_url)
        start_worker(settings)
        register_file(settings, ASSETS / "judged_timeout.yaml")
        calls = documents(["food"], "timeouts")
        produce_calls(settings, calls)
        values = wait_for_values(
            settings, "judged_timeout", ["helpful"], covers(calls, ["helpful"]), timeout=120
        )
        assert all(v.value is None and v.error for v in values)
        assert all(
            "timed out" in (v.error or "").lower() or "timeout" in (v.error or "").lower()
            for v in values
        )


def test_a_restarted_worker_restores_every_result_of_its_table(
    make_settings: Callable[..., Settings], start_worker: Callable[..., WorkerProcess]
) -> None:
    """Changelog records are batched; recovery must still read each partition to its end
    (the embedded broker's ListOffsets stops short of it: weave-stream reads Fetch
    high-water marks). A replay after a SIGKILL and a restart then computes nothing."""
    settings = make_settings(batch_size=200)
    first = start_worker(settings, "first")
    register_file(settings, WORDY)
    calls = documents(["tech_support", "trivia"], "recovery", 900)
    produce_calls(settings, calls)
    wait_for_values(settings, "wordy", ["words"], covers(calls, ["words"]), timeout=120)
    computed = (
        'weave_stream_derived_values_total{column="words",outcome="computed",topology="wordy"}'
    )
    cached = 'weave_stream_derived_values_total{column="words",outcome="cached",topology="wordy"}'
    assert first.metrics()[computed] == len(calls)
    first.kill()

    second = start_worker(settings, "second")
    produce_calls(settings, calls)  # the same calls again (and those not committed: again)
    group = settings.topics.topology_group("wordy")
    wait_until(
        lambda: (
            group_progress_now(settings, group, settings.topics.valid)[1],
            second.metrics().get(cached, 0),
        ),
        120,
        f"{group} to commit every call and the second worker to re-emit them cached (lag, cached)",
        until=lambda state: state[0] == 0 and state[1] >= len(calls),
        interval=0.5,
    )
    assert second.metrics()[cached] >= len(calls)
    assert second.metrics().get(computed, 0) == 0  # nothing lost from the table's tail
