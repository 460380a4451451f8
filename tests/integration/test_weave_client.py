"""The real weave client (pinned, in its own venv) sending to weave-stream, loopback only.

The application (tests/support/clients/weave_app.py) traces nested ops, an op that raises, an
OpenAI-style answer with usage, an eager op and a call in a thread, in both write
modes: ``calls/complete`` batches (the default) and ``call/upsert_batch`` halves
(``WEAVE_USE_CALLS_COMPLETE=false``). A socket guard in the client process refuses
everything but loopback and writes down what was tried.
"""

from __future__ import annotations

import asyncio
import json
import os
import signal
import subprocess
from collections import Counter
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from tests.support.clients.collector_process import CollectorProcess
from tests.support.clients.venvs import client_python
from tests.support.records import read_all, wait_for_records
from tests.support.waiting import wait_until
from weave_stream.broker.embedded import EmbeddedBroker
from weave_stream.broker.kafka import group_progress
from weave_stream.columns.values import read_derived
from weave_stream.config import Settings, load_settings
from weave_stream.ingest.call import Call, call_from_json, parse_call
from weave_stream.runners.workers import WorkerProcess
from weave_stream.topology.registrations import register, registration_for

APP = Path(__file__).parent.parent / "clients" / "weave_app.py"
TOPOLOGY = Path(__file__).parent.parent / "assets" / "client_calls.py"


@pytest.fixture(scope="session")
def weave_python() -> Path:
    """The pinned weave client's interpreter (its venv is built on first use, then reused)."""
    return client_python("weave-client")


class ClientRun:
    """The traced application, run by the weave client's interpreter against ``url``."""

    def __init__(
        self, python: Path, url: str, project: str, folder: Path, legacy: bool, extra: int
    ) -> None:
        self.manifest = folder / f"{project.replace('/', '_')}.json"
        self.guard = folder / f"{project.replace('/', '_')}.guard.log"
        env = {
            "PATH": os.environ["PATH"],
            "HOME": str(folder),  # the client's caches and settings stay in the test's folder
            "WF_TRACE_SERVER_URL": url,
            "WANDB_BASE_URL": url,
            "WANDB_API_KEY": "weave-stream-test-key-0123456789",
            "WEAVE_USE_CALLS_COMPLETE": "false" if legacy else "true",
            # The client also reports sessions to Sentry unless told not to (see the README).
            "WANDB_ERROR_REPORTING": "false",
            "WEAVE_PRINT_CALL_LINK": "false",
        }
        command = [str(python), str(APP), project, str(self.manifest), str(self.guard), str(extra)]
        self.process = subprocess.Popen(
            command, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True
        )

    def finish(self, timeout: float = 300) -> tuple[list[dict[str, Any]], list[dict[str, str]]]:
        """Wait for the run: the calls it made, and the connections the guard refused."""
        try:
            output, _ = self.process.communicate(timeout=timeout)
        finally:
            if self.process.poll() is None:
                self.process.kill()
        assert self.process.returncode == 0, output[-5000:]
        lines = self.guard.read_text().splitlines() if self.guard.exists() else []
        return json.loads(self.manifest.read_text()), [json.loads(line) for line in lines]


def run_app(
    python: Path, url: str, project: str, folder: Path, legacy: bool = False, extra: int = 0
) -> tuple[list[dict[str, Any]], list[dict[str, str]]]:
    """:class:`ClientRun` to its end."""
    return ClientRun(python, url, project, folder, legacy, extra).finish()


def assert_calls_arrived_whole(made: list[dict[str, Any]], calls: dict[str, Call]) -> None:
    """Every call the application made, once, with everything the client knew of it."""
    for expected in made:
        call = calls[expected["id"]]
        assert call.kind == "complete", call
        assert call.op_name is not None and f"/op/{expected['op']}:" in call.op_name
        assert call.trace_id == expected["trace_id"] and call.parent_id == expected["parent_id"]
        assert call.inputs == expected["inputs"]
        assert call.summary is not None and call.summary.status_counts is not None
        if expected["op"] == "fails":
            assert call.exception is not None
            assert json.loads(call.exception)["message"] == "bad input 7"
        else:
            assert call.exception is None
    by_op = {m["op"]: calls[m["id"]] for m in made}
    assert by_op["add"].output is not None and by_op["pipeline"].output == {
        "upper": "HELLO WEAVE STREAM",
        "words": 3,
    }
    usage = by_op["chat"].summary.usage["gpt-4o-mini-2024-07-18"]  # type: ignore[union-attr,index]
    assert (usage.prompt_tokens, usage.completion_tokens, usage.total_tokens) == (12, 3, 15)
    assert by_op["long_running"].output == 42
    threaded = [calls[m["id"]] for m in made if m["inputs"] == {"a": 10, "b": 20}]
    assert [c.thread_id for c in threaded] == ["thread-1"] and threaded[0].turn_id


# The first test to run also builds the client's venv (~30-90 s, once): a longer timeout.
@pytest.mark.timeout(900)
def test_the_real_client_in_both_write_modes_reaches_a_topology(
    make_settings: Callable[..., Settings],
    start_worker: Callable[..., WorkerProcess],
    weave_python: Path,
    tmp_path: Path,
) -> None:
    settings = make_settings()
    worker = start_worker(settings)  # the collector's endpoints are on its web port
    topology, registration = registration_for(str(TOPOLOGY), settings)
    asyncio.run(register(settings, registration))
    made, refused = run_app(weave_python, worker.url, "team/complete", tmp_path)
    legacy, refused_legacy = run_app(weave_python, worker.url, "team/legacy", tmp_path, legacy=True)
    made_ids = {m["id"] for m in made + legacy}
    assert len(made_ids) == len(made) + len(legacy) == 16

    records = wait_for_records(
        settings,
        settings.topics.valid,
        lambda found: made_ids <= {r.key.decode() for r in found if r.key},
        timeout=120,
    )
    # Proof that no second copy comes: ingest has committed every record the collector
    # produced (it commits a record only once its forward is written).
    wait_until(
        lambda: asyncio.run(
            group_progress(settings, settings.topics.worker_group, settings.topics.calls)
        )[1],
        120,
        "ingest to commit every record of the calls topic",
        until=lambda lag: lag == 0,
    )
    records = read_all(settings, settings.topics.valid)
    assert Counter(r.key for r in records).most_common(1)[0][1] == 1  # each call once
    calls = {c.id: c for c in (call_from_json(r.value or b"") for r in records)}
    assert set(calls) == made_ids
    assert_calls_arrived_whole(made, calls)
    assert_calls_arrived_whole(legacy, calls)
    assert read_all(settings, settings.topics.dlq) == []

    # The registered topology computes its column for every call.
    values = wait_until(
        lambda: asyncio.run(read_derived(settings, topology.name, ["op"])),
        120,
        "a value of column 'op' for every call the client made",
        until=lambda found: {v.call_id for v in found} >= made_ids,
        describe=len,
    )
    ops = {v.call_id: v.value for v in values}
    assert {m["id"]: m["op"] for m in made + legacy} == {i: ops.get(i) for i in made_ids}

    # The op code the client sent is kept: a call's op ref shows its code.
    objects = read_all(settings, settings.topics.objects)
    assert any(b"def long_running" in (r.value or b"") for r in objects)
    # Nothing but the package index's version check was tried beyond loopback.
    assert {attempt["target"] for attempt in refused + refused_legacy} <= {"pypi.org"}
    assert worker.metrics()['weave_stream_collector_calls_total{source="complete"}'] == 7


@pytest.mark.timeout(900)
def test_kafka_stopped_while_the_client_sends_loses_no_acknowledged_call(
    weave_python: Path, tmp_path: Path
) -> None:
    # A broker of its own: this test stops it (SIGSTOP: the embedded broker keeps its
    # records in memory, so a stopped process is Kafka unavailable, not Kafka reset).
    with EmbeddedBroker(log_path=tmp_path / "broker.log") as broker:
        settings = load_settings(
            env={},
            broker=broker.url,
            broker_kind="embedded",
            topic_prefix="stopped",
            partitions=2,
            data_dir=tmp_path / "data",
            collector_ack_timeout_seconds=2.0,
        )
        collector = CollectorProcess(settings, tmp_path / "collector.log")
        try:
            run = ClientRun(weave_python, collector.url, "team/stopped", tmp_path, False, 40)
            wait_for_records(settings, settings.topics.calls, lambda r: len(r) >= 12, timeout=120)
            assert broker.pid is not None
            os.kill(broker.pid, signal.SIGSTOP)  # Kafka stops answering
            try:
                wait_until(lambda: _refused(collector), 60, "a refused request", until=bool)
                # The client keeps sending while Kafka is stopped: several more refusals.
                wait_until(
                    lambda: _refused(collector),
                    60,
                    "three refused requests",
                    until=lambda refused: refused >= 3,
                )
            finally:
                os.kill(broker.pid, signal.SIGCONT)
            made, _ = run.finish()
            acknowledged = collector.metrics()
        finally:
            collector.stop()
        # The client was told to retry (503 with Retry-After) ...
        assert acknowledged['weave_stream_collector_refused_total{reason="kafka_unavailable"}'] >= 1
        assert any('status="503"' in series for series in acknowledged)
        # ... and did: every call it made is on Kafka, each whole, none lost.
        arrived = {parse_call(r.value).id for r in read_all(settings, settings.topics.calls)}
        assert len(made) == 48 and {m["id"] for m in made} <= arrived
        assert (
            acknowledged['weave_stream_collector_calls_total{source="complete"}'] >= len(made) - 2
        )


def _refused(collector: CollectorProcess) -> float:
    metrics = collector.metrics()
    return sum(
        v for k, v in metrics.items() if k.startswith("weave_stream_collector_refused_total")
    )
