"""Consumer lag on a worker's /metrics: a stuck topology shows its backlog, a healthy one none.

Lag is computed from the high-water marks of the consumer's own Fetch responses and
the group's committed offsets (the embedded broker's ListOffsets is wrong after
multi-record batches), per consumer group and topic.
"""

from __future__ import annotations

from collections.abc import Callable

from tests.support.metrics import wait_for_metric
from tests.support.records import group_progress_now, produce_calls, wait_until_committed
from tests.support.servers.openai import FakeOpenAI, stall
from tests.support.topologies import ASSETS, WORDY, documents, register_file
from weave_stream.config import Settings
from weave_stream.runners.workers import WorkerProcess


def wait_for_lag(
    worker: WorkerProcess, group: str, topic: str, expected: float, timeout: float = 60
) -> None:
    sample = f'weave_stream_consumer_lag{{group="{group}",topic="{topic}"}}'
    wait_for_metric(worker, sample, lambda value: value == expected, timeout)


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
        # The backlog stays: more calls come, the healthy topology computes and commits
        # them (a commit interval passed), and the stuck one lags by both batches,
        # on its /metrics and on the broker: it committed nothing.
        more = documents(["food"], "lag-more", 10)
        produce_calls(settings, more)
        wait_until_committed(settings, f"weave-stream.{prefix}.topology.wordy")
        backlog = len(calls) + len(more)
        wait_for_lag(worker, stuck, f"{prefix}.calls.valid", backlog)
        assert group_progress_now(settings, stuck, settings.topics.valid)[1] == backlog
