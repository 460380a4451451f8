"""Shared fixtures: one embedded broker per test session, factories for settings and workers.

A missing broker fails the run; nothing here skips. Every test gets its own topic
prefix, so tests share the broker without seeing each other's records.
"""

from __future__ import annotations

import asyncio
import os
import time
import uuid
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

from weave_stream.broker.embedded import EmbeddedBroker
from weave_stream.broker.kafka import Record, ensure_topics, produce, read_topic
from weave_stream.config import Settings, load_settings
from weave_stream.runners.workers import WorkerProcess

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")


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


def produce_records(
    settings: Settings, records: list[tuple[bytes | None, bytes | None]], topic: str | None = None
) -> int:
    """Produce ``(key, value)`` records to the calls topic (or ``topic``)."""
    topic = topic or settings.topics.calls
    asyncio.run(ensure_topics(settings, [topic]))
    return asyncio.run(produce(settings, topic, ((k, v, ()) for k, v in records)))


def read_all(settings: Settings, topic: str) -> list[Record]:
    """Every record of ``topic`` now."""

    async def collect() -> list[Record]:
        return [record async for record in read_topic(settings, topic)]

    return asyncio.run(collect())


def wait_for_records(
    settings: Settings,
    topic: str,
    done: Callable[[list[Record]], bool],
    timeout: float = 60.0,
) -> list[Record]:
    """Poll ``topic`` until ``done(records)``; fail with what was there if it never is."""
    deadline = time.monotonic() + timeout
    records: list[Record] = []
    while time.monotonic() < deadline:
        records = read_all(settings, topic)
        if done(records):
            return records
        time.sleep(0.3)
    raise AssertionError(f"condition not met on {topic} after {timeout}s; {len(records)} records")
