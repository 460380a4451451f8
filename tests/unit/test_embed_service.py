"""One model per host: the model service and its clients.

The service here is the real :class:`ModelService` on a real Unix socket, served from
a thread of this process; a worker's ``weave-stream model-service`` process is the
same code (its start-up failure is tested here, its sharing by a worker's topology
processes in tests/integration/test_model_service.py). What is shared is asserted
from the service's own stats, never from timings.
"""

from __future__ import annotations

import asyncio
import tempfile
import threading
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from tests.support.waiting import wait_until_async
from weave_stream.config import load_settings
from weave_stream.demo.samples import corpus_documents
from weave_stream.errors import OpError
from weave_stream.ops import Classify, Embed, run_op
from weave_stream.ops.embed import use_backend
from weave_stream.ops.embed_device import Accelerators
from weave_stream.ops.embed_service import ModelService, ServiceClient
from weave_stream.runners.streaming.health import HEALTH
from weave_stream.runners.streaming.model_service import COMPONENT, ModelServiceProcess


@pytest.fixture(scope="module")
def service() -> Iterator[str]:
    """The real model service, serving on a fresh socket from a thread of this process; its
    path. (Started as its own process it is tested in tests/integration/test_model_service.py,
    beside a worker's topology processes.)"""
    path = str(Path(tempfile.gettempdir()) / f"ws-test-{uuid.uuid4().hex[:8]}.sock")
    served = ModelService(load_settings(env={}, device="cpu"), path)
    served.bind()
    thread = threading.Thread(target=served.serve_forever, daemon=True)
    thread.start()
    try:
        yield path
    finally:
        served.shutdown()
        thread.join(timeout=60)
    assert not Path(path).exists()  # it removes its socket when it stops


def test_ops_in_this_process_use_the_service_without_blocking_the_event_loop(service: str) -> None:
    client = ServiceClient(service, "event-loop-test")
    previous = use_backend(client)
    texts = [d.text for d in corpus_documents("english", ["history"])][:30]
    try:
        client.embed(["warm up"])  # the service may still be loading the model

        async def scenario() -> tuple[int, list[object]]:
            ticks, done = 0, asyncio.Event()

            async def ticker() -> None:
                nonlocal ticks
                while not done.is_set():
                    ticks += 1
                    await asyncio.sleep(0.005)

            task = asyncio.create_task(ticker())
            await asyncio.sleep(0)
            before = ticks
            embedded, classified = await asyncio.gather(
                run_op(Embed(), [{"text": t} for t in texts]),
                run_op(Classify(labels=["history", "cooking"]), [{"text": t} for t in texts[:8]]),
            )
            during = ticks - before
            done.set()
            await task
            return during, [*embedded, *classified]

        during, results = asyncio.run(scenario())
    finally:
        use_backend(previous)
    assert all(r.ok for r in results)  # type: ignore[attr-defined]
    assert during >= 2  # a blocked loop could not tick until everything was embedded
    assert client.stats()["clients"]["event-loop-test"] >= 3


def test_a_service_that_is_not_there_gives_error_values_naming_the_fix(tmp_path: Path) -> None:
    missing = ServiceClient(str(tmp_path / "absent.sock"), connect_wait_seconds=0.2)
    previous = use_backend(missing)
    try:
        results = asyncio.run(run_op(Embed(), [{"text": "hello"}]))
    finally:
        use_backend(previous)
    assert results[0].value is None and results[0].error is not None
    assert "absent.sock is not answering" in results[0].error
    assert "embed_service=process" in results[0].error
    with pytest.raises(OpError, match="is not answering"):
        missing.embed(["direct"])


def test_a_workers_model_service_asked_for_a_gpu_it_lacks_is_failed_on_readyz_saying_why(
    tmp_path: Path,
) -> None:
    """The real ``weave-stream model-service`` process, as a worker starts and watches it.
    (Ready and shared by a worker's topologies: tests/integration/test_model_service.py.)"""
    gpus = Accelerators.probe().cuda_devices
    absent = f"cuda:{gpus}" if gpus else "cuda"  # a GPU this machine does not have

    async def supervise() -> dict[str, Any]:
        settings = load_settings(env={}, data_dir=tmp_path, device=absent)
        service = ModelServiceProcess(settings)
        await service.start()

        async def poll() -> None:  # as the supervisor does at every registry poll
            while True:
                await service.keep_alive()
                await asyncio.sleep(0.2)

        polling = asyncio.create_task(poll())
        try:
            await wait_until_async(
                lambda: HEALTH.snapshot().get(COMPONENT, {}).get("state") == "failed",
                300,
                "the model service reports its failure",
                interval=0.1,
            )
            return HEALTH.snapshot()[COMPONENT]
        finally:
            polling.cancel()
            await service.stop()
            assert not Path(service.socket_path).exists()

    failed = asyncio.run(supervise())
    reason = failed["last_error"]
    assert "exited with 1" in reason and "restarting it in" in reason
    assert f"device='{absent}'" in reason and "device=cpu" in reason  # what to set instead


def test_a_stopped_model_service_is_not_restarted_by_the_supervisors_next_poll(
    tmp_path: Path,
) -> None:
    async def scenario() -> object:
        service = ModelServiceProcess(load_settings(env={}, data_dir=tmp_path))
        await service.stop()  # the worker is stopping; its registry loop may poll once more
        await service.keep_alive()
        return service.process

    assert asyncio.run(scenario()) is None  # nothing started while the worker stops


def test_a_workers_model_service_starts_only_once_a_topology_process_asks_for_it(
    tmp_path: Path,
) -> None:
    """A worker whose topologies embed nothing never starts the service (nor imports torch,
    ~590 MB); the first client that finds no socket asks for it, and the next poll starts it."""

    async def scenario() -> tuple[object, bool, bool, object]:
        service = ModelServiceProcess(load_settings(env={}, data_dir=tmp_path))
        try:
            for _ in range(3):  # the supervisor's registry polls, with no client yet
                await service.keep_alive()
            unasked, listed = service.process, COMPONENT in HEALTH.snapshot()
            client = ServiceClient(service.socket_path, "asking", connect_wait_seconds=0.3)
            with pytest.raises(OpError, match="not answering"):
                await asyncio.to_thread(client.embed, ["a text"])  # nothing serves it yet
            client.close()
            asked = service.wanted
            await service.keep_alive()
            return unasked, listed, asked, service.process
        finally:
            await service.stop()

    unasked, listed, asked, started = asyncio.run(scenario())
    assert unasked is None and not listed  # not started, and not on /readyz
    assert asked and started is not None  # started at the poll after the client asked
