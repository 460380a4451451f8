"""Shared fixtures: one embedded broker per test session, factories for settings and workers.

A missing broker fails the run; nothing here skips. Every test gets its own topic
prefix, so tests share the broker without seeing each other's records. Helpers that
are not fixtures live in ``tests/support/``; no test module imports another.
"""

from __future__ import annotations

import asyncio
import os
import tempfile
import uuid
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

from weave_stream.broker.embedded import EmbeddedBroker
from weave_stream.broker.kafka import ensure_topics
from weave_stream.config import Settings, load_settings
from weave_stream.runners.workers import WorkerProcess

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")
# Brokers and workers the tests start record themselves for other commands to find:
# never in the user's own state file, and per test process (pytest-xdist runs two).
os.environ["WEAVE_STREAM_STATE_FILE"] = os.path.join(
    tempfile.mkdtemp(prefix="weave-stream-tests-"), "running.json"
)


@pytest.fixture(scope="session")
def broker(tmp_path_factory: pytest.TempPathFactory) -> Iterator[EmbeddedBroker]:
    """The embedded broker, started once for the whole session."""
    log = tmp_path_factory.mktemp("broker") / "tansu.log"
    with EmbeddedBroker(log_path=log) as embedded:
        yield embedded


@pytest.fixture
def make_settings(broker: EmbeddedBroker, tmp_path: Path) -> Callable[..., Settings]:
    """Settings on the session broker, with a unique topic prefix and a private data dir."""
    prefix = f"t{uuid.uuid4().hex[:10]}"

    def factory(**overrides: Any) -> Settings:
        values: dict[str, Any] = {
            "broker": broker.url,
            "broker_kind": "embedded",
            "topic_prefix": prefix,
            "partitions": 2,
            "data_dir": tmp_path / "data",
            "state_file": tmp_path / "running.json",
            "web_port": 0,
            **overrides,
        }
        return load_settings(env={}, **values)

    return factory


@pytest.fixture
def start_worker(tmp_path: Path) -> Iterator[Callable[..., WorkerProcess]]:
    """Start worker processes (ready on return); all are stopped at teardown."""
    started: list[WorkerProcess] = []

    def factory(settings: Settings, worker_id: str | None = None) -> WorkerProcess:
        worker_id = worker_id or f"w{len(started)}"
        settings = settings.model_copy(update={"worker_id": worker_id})
        asyncio.run(
            ensure_topics(
                settings, [settings.topics.calls, settings.topics.valid, settings.topics.dlq]
            )
        )
        worker = WorkerProcess(settings, log_path=tmp_path / f"{worker_id}.log").start()
        started.append(worker)
        worker.wait_ready(timeout=90)
        return worker

    yield factory
    for worker in started:
        worker.stop(timeout=20)
