"""Consumer lag on a worker's /metrics: a stuck topology shows its backlog, a healthy one none.

Lag is computed from the high-water marks of the consumer's own Fetch responses and
the group's committed offsets (the embedded broker's ListOffsets is wrong after
multi-record batches), per consumer group and topic.
"""

from __future__ import annotations

import time
from collections.abc import Callable

from tests.integration.test_streaming import ASSETS, WORDY, documents, produce_calls, register_file
from tests.servers.openai import FakeOpenAI, stall
from weave_stream.config import Settings
from weave_stream.runners.workers import WorkerProcess


def lag(worker: WorkerProcess, group: str, topic: str) -> float | None:
    return worker.metrics().get(f'weave_stream_consumer_lag{{group="{group}",topic="{topic}"}}')


def wait_for_lag(
    worker: WorkerProcess, group: str, topic: str, expected: float, timeout: float = 60
) -> None:
    deadline = time.monotonic() + timeout
    value = None
    while time.monotonic() < deadline:
        value = lag(worker, group, topic)
        if value == expected:
            return
        time.sleep(0.3)
    raise AssertionError(f"lag of {group} on {topic} is {value} after {timeout}s, not {expected}")


def test_a_stuck_topology_lags_by_its_backlog_while_the_others_drain(
    make_settings: Callable[..., Settings], start_worker: Callable[..., WorkerProcess]
) -> None:
    with FakeOpenAI() as judge_server:
        judge_server.on("", stall(120))  # every judge request hangs
        settings = make_settings(judge_base_url=judge_server.base_url)
        worker = start_worker(settings)
        register_file(settings, ASSETS / "judged.yaml")
        register_file(settings, WORDY)
        prefix = settings.topic_prefix
        for name in ("judged", "wordy"):  # both topology workers run before the calls come
            wait_for_lag(
                worker, f"weave-stream.{prefix}.topology.{name}", f"{prefix}.calls.valid", 0
            )

        calls = documents(["science", "movies"], "lag")
        produce_calls(settings, calls)

        wait_for_lag(worker, f"weave-stream.{prefix}", f"{prefix}.calls", 0)
        wait_for_lag(worker, f"weave-stream.{prefix}.topology.wordy", f"{prefix}.calls.valid", 0)
        stuck = f"weave-stream.{prefix}.topology.judged"
        wait_for_lag(worker, stuck, f"{prefix}.calls.valid", len(calls))
        assert judge_server.requests  # it is stuck in the judge, not idle
        # Over a commit interval and more, the backlog stays: nothing is committed.
        until = time.monotonic() + 4
        while time.monotonic() < until:
            assert lag(worker, stuck, f"{prefix}.calls.valid") == len(calls)
            time.sleep(0.5)
