"""Bounded shutdown: a worker stops within its bound whatever hangs; a second signal exits now.

The worker here is weave-stream's Faust worker around an app whose shutdown hangs
(a receiver of ``on_before_shutdown`` that never returns, as an agent stuck in a
batch or a fetcher that does not stop would). Seen before the bound existed:
minutes at ``[^---Fetcher]: Stopping...``.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import textwrap
from pathlib import Path

from weave_stream.broker.embedded import EmbeddedBroker

SCRIPT = textwrap.dedent(
    """
    import asyncio, sys
    import faust
    from weave_stream.runners.streaming.app import Worker, on_stopping

    broker, bound, data_dir = sys.argv[1], float(sys.argv[2]), sys.argv[3]
    app = faust.App(
        "shutdown-test", broker=broker, datadir=data_dir, web_enabled=False,
        broker_session_timeout=3, broker_heartbeat_interval=0.5, broker_rebalance_timeout=3,
    )
    topic = app.topic("shutdown-test-topic", value_serializer="raw")

    @app.agent(topic)
    async def consume(stream):
        async for _ in stream:
            pass

    @app.timer(interval=0.2)
    async def started():
        print("running", flush=True)

    async def never_returns(*args, **kwargs):
        await asyncio.sleep(3600)

    app.on_before_shutdown.connect(never_returns)
    on_stopping(app).append(lambda: print("stopping hooks ran", flush=True))
    Worker(app, shutdown_timeout=bound, loglevel="warning", quiet=True).execute_from_commandline()
    """
)


def _start(broker: EmbeddedBroker, bound: float, tmp_path: Path) -> subprocess.Popen[str]:
    process = subprocess.Popen(
        [sys.executable, "-c", SCRIPT, broker.url, str(bound), str(tmp_path / "data")],
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
        env=os.environ,
    )
    _read_until(process, "running")
    return process


def _read_until(process: subprocess.Popen[str], text: str) -> None:
    assert process.stdout is not None
    for line in process.stdout:  # ends when the process exits: then the assertion says so
        if text in line:
            return
    raise AssertionError(f"{text!r} never printed (exit {process.wait()})")


def _exit_within(process: subprocess.Popen[str], seconds: float) -> tuple[int, str]:
    try:
        code = process.wait(seconds)
    except subprocess.TimeoutExpired:
        process.kill()
        process.wait()
        raise AssertionError(f"still running {seconds}s after the signal") from None
    assert process.stdout is not None
    return code, process.stdout.read()


def test_sigterm_stops_within_the_bound_though_shutdown_hangs(
    broker: EmbeddedBroker, tmp_path: Path
) -> None:
    process = _start(broker, bound=2.0, tmp_path=tmp_path)
    process.send_signal(signal.SIGTERM)
    # Generous for a loaded machine; without the bound this process never exits.
    code, output = _exit_within(process, 60)
    assert code == 1
    assert "stopping hooks ran" in output
    assert "did not stop within 2s" in output and "were committed" in output


def test_a_second_signal_exits_at_once(broker: EmbeddedBroker, tmp_path: Path) -> None:
    process = _start(broker, bound=600.0, tmp_path=tmp_path)
    process.send_signal(signal.SIGTERM)
    _read_until(process, "SIGTERM: stopping")  # under way, and it hangs
    process.send_signal(signal.SIGINT)
    code, output = _exit_within(process, 60)
    assert code == 128 + signal.SIGINT
    assert "SIGINT again: exiting now" in output
