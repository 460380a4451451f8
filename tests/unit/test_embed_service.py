"""One model per host: the model service process, shared by topologies in other processes.

The service is the real ``weave-stream model-service`` process; its clients are two
``weave-stream run`` processes (two topologies: one embeds, one classifies) and
this test process. What is shared is asserted from the service's own stats (model
loads, requests per client), never from timings.
"""

from __future__ import annotations

import asyncio
import os
import subprocess
import sys
import tempfile
import time
import uuid
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import numpy as np
import orjson
import pytest

from weave_stream.config import load_settings
from weave_stream.demo.samples import corpus_documents, sample_calls
from weave_stream.errors import OpError
from weave_stream.ops import Classify, Embed, run_op
from weave_stream.ops.embed import use_backend
from weave_stream.ops.embed_device import Accelerators
from weave_stream.ops.embed_model import load_model
from weave_stream.ops.embed_service import ServiceClient
from weave_stream.runners.streaming.health import HEALTH
from weave_stream.runners.streaming.model_service import COMPONENT, ModelServiceProcess

REPO = Path(__file__).resolve().parents[2]
EMBED_TOPOLOGY = """\
name: support_embeddings
source: {op_name: text-extract}
columns:
  - {name: embedding, op: embed, args: {text: inputs.document}}
"""
CLASSIFY_TOPOLOGY = """\
name: support_topics
source: {op_name: text-extract}
columns:
  - name: topic
    op: classify
    params: {labels: {money: "money, banks and prices", science: "science and physics"}}
    args: {text: inputs.document}
"""


def environment(**settings: str) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("WEAVE_STREAM_")}
    env.update({f"WEAVE_STREAM_{k.upper()}": v for k, v in settings.items()}, HF_HUB_OFFLINE="1")
    return env


@pytest.fixture(scope="module")
def service() -> Iterator[str]:
    """A model service process on a fresh socket; its path."""
    path = str(Path(tempfile.gettempdir()) / f"ws-test-{uuid.uuid4().hex[:8]}.sock")
    process = subprocess.Popen(
        [sys.executable, "-m", "weave_stream", "model-service", "--socket", path],
        env=environment(device="auto"),
        stderr=subprocess.PIPE,
        cwd=REPO,
    )
    try:
        deadline = time.monotonic() + 300
        while not Path(path).exists():
            assert process.poll() is None, process.stderr.read() if process.stderr else ""
            assert time.monotonic() < deadline, "the model service did not bind its socket"
            time.sleep(0.1)
        yield path
    finally:
        process.terminate()
        process.wait(timeout=60)
    assert not Path(path).exists()  # it removes its socket when it stops


def test_two_topologies_in_two_processes_share_one_model(service: str, tmp_path: Path) -> None:
    docs = list({d.text: d for d in corpus_documents("english", ["science", "money"])}.values())
    calls = sample_calls(docs[:24])
    documents = {call["id"]: call["inputs"]["document"] for call in calls}
    calls_file = tmp_path / "calls.jsonl"
    calls_file.write_bytes(b"\n".join(orjson.dumps(c) for c in calls) + b"\n")
    runs = {}
    for name, spec in (
        ("support_embeddings", EMBED_TOPOLOGY),
        ("support_topics", CLASSIFY_TOPOLOGY),
    ):
        (tmp_path / f"{name}.yaml").write_text(spec)
        command = [sys.executable, "-m", "weave_stream", "run", str(tmp_path / f"{name}.yaml")]
        command += ["--input", str(calls_file), "--out", str(tmp_path / f"{name}.jsonl"), "--quiet"]
        settings = {"embed_service": f"unix:{service}", "worker_id": name}
        env = environment(**settings, data_dir=str(tmp_path / name))
        runs[name] = subprocess.Popen(command, env=env, cwd=REPO, stderr=subprocess.PIPE)
    for process in runs.values():
        _, errors = process.communicate(timeout=600)
        assert process.returncode == 0, errors.decode()

    stats = ServiceClient(service, "test").stats()
    assert stats["model_loads"] == 1
    assert stats["clients"]["support_embeddings"] >= 1
    assert stats["clients"]["support_topics"] >= 1  # classify embeds through it too
    rows = read_rows(tmp_path / "support_embeddings.jsonl")
    vectors = np.array([row["embedding"] for row in rows], dtype=np.float32)
    texts = [documents[row["call_id"]] for row in rows]
    expected = load_model().encode(texts, normalize_embeddings=True)
    assert vectors.shape == (24, 384) and np.abs(vectors - expected).max() < 1e-5
    topics = [row["topic"] for row in read_rows(tmp_path / "support_topics.jsonl")]
    assert len(topics) == 24 and {t["label"] for t in topics} <= {"money", "science"}


def read_rows(path: Path) -> list[dict[str, Any]]:
    return [orjson.loads(line) for line in path.read_bytes().splitlines()]


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
                run_op(Embed(), [{"text": t} for t in texts * 4]),
                run_op(Classify(labels=["history", "cooking"]), [{"text": t} for t in texts]),
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


def test_a_service_asked_for_a_gpu_it_lacks_refuses_to_start_and_says_why(tmp_path: Path) -> None:
    gpus = Accelerators.probe().cuda_devices
    absent = f"cuda:{gpus}" if gpus else "cuda"  # a GPU this machine does not have
    path = str(tmp_path / "x.sock")
    done = subprocess.run(
        [
            sys.executable,
            "-m",
            "weave_stream",
            "model-service",
            "--socket",
            path,
            "--device",
            absent,
        ],
        env=environment(),
        capture_output=True,
        text=True,
        timeout=300,
        cwd=REPO,
    )
    assert done.returncode == 1
    assert f"device='{absent}'" in done.stderr and "device=" in done.stderr
    assert not Path(path).exists()


def test_a_workers_model_service_is_reported_ready_or_failed_with_its_reason(
    tmp_path: Path,
) -> None:
    gpus = Accelerators.probe().cuda_devices
    absent = f"cuda:{gpus}" if gpus else "cuda"

    async def supervise(device: str, until: Callable[[], bool]) -> dict[str, Any]:
        settings = load_settings(env={}, data_dir=tmp_path, device=device)
        service = ModelServiceProcess(settings)
        await service.start()
        try:
            deadline = time.monotonic() + 300
            while not until() and time.monotonic() < deadline:
                await service.keep_alive()  # as the supervisor does at every registry poll
                await asyncio.sleep(0.2)
            return HEALTH.snapshot()[COMPONENT]
        finally:
            await service.stop()
            assert not Path(service.socket_path).exists()

    def state(wanted: str) -> Callable[[], bool]:
        return lambda: HEALTH.snapshot().get(COMPONENT, {}).get("state") == wanted

    failed = asyncio.run(supervise(absent, state("failed")))
    assert failed["state"] == "failed"
    assert (
        f"device='{absent}'" in failed["last_error"] and "restarting it in" in failed["last_error"]
    )
    ready = asyncio.run(supervise("cpu", state("ok")))
    assert ready["state"] == "ok"
