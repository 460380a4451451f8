"""A store sink that crashes (here: Kafka refuses it) fails its component on the worker's
health, with the reason, and restarts: /readyz and `weave-stream status` show it."""

from __future__ import annotations

import asyncio
import contextlib
from pathlib import Path
from typing import Any

from tests.support.waiting import wait_until_async
from weave_stream.broker.embedded import free_port
from weave_stream.config import Settings
from weave_stream.runners.streaming.health import HEALTH
from weave_stream.runners.streaming.store_sink import COMPONENT, StoreSink, run_reporting_crashes


def test_a_sink_kafka_refuses_is_failed_with_the_reason_and_restarted(tmp_path: Path) -> None:
    # Nothing listens on this loopback port: the consumer cannot bootstrap.
    settings = Settings(
        broker=f"kafka://127.0.0.1:{free_port()}",
        broker_kind="kafka",
        data_dir=tmp_path,
        state_file=tmp_path / "running.json",
    )
    sink = StoreSink(settings)

    def state() -> dict[str, Any]:
        return dict(HEALTH.snapshot().get(COMPONENT, {}))

    async def scenario() -> dict[str, Any]:
        task = asyncio.create_task(run_reporting_crashes(sink))
        try:
            return await wait_until_async(
                state,
                60,
                "the store sink failed on the health, then restarted",
                until=lambda s: s.get("state") == "failed" and s.get("restarts", 0) >= 1,
            )
        finally:
            task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await task

    try:
        found = asyncio.run(scenario())
        assert not HEALTH.ready
        assert found["last_error"].startswith("crashed: ")
        assert "KafkaConnectionError" in found["last_error"]
        assert sink.writer is not None, "the store itself opened: only Kafka failed"
    finally:
        HEALTH.forget(COMPONENT)
