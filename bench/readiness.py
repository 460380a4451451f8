"""How long a worker takes to be ready, against a bare Faust app on the same broker.

Subjects, each a fresh process on one embedded broker, interleaved round by round:

* ``bare``    a Faust app with one agent and weave-stream's embedded-broker group
  timings (3 s session, 0.5 s heartbeat): ready once it has joined its group;
* ``worker``  ``weave-stream worker``: ready once its ``/readyz`` answers 200
  (group joined, tables restored, no component failed), with one small topology
  registered beforehand; ``topology`` is when that topology's child process is ready
  too (its component ``ok``): when the worker starts computing.

Both are timed from process start, so Python and library imports count. The machine's
load average is printed with the figures: they hold for that load, not for an idle
machine.

Run: ``.venv/bin/python bench/readiness.py [--rounds 3]``
Figures: ``worker_ready_seconds`` and ``topology_ready_seconds`` (medians), with the
bare app's as their baseline.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
import textwrap
import time
import urllib.error
import urllib.request
import uuid
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

BARE = textwrap.dedent(
    """
    import os, sys, faust
    app = faust.App(
        sys.argv[2], broker=sys.argv[1], datadir=sys.argv[3], web_enabled=False,
        broker_session_timeout=3, broker_heartbeat_interval=0.5, broker_rebalance_timeout=3,
    )
    topic = app.topic(sys.argv[2] + "-topic", value_serializer="raw")

    @app.agent(topic)
    async def consume(stream):
        async for _ in stream:
            pass

    @app.timer(interval=0.05)
    async def ready():
        if app.rebalancing_count > 0 and not app.rebalancing:
            print("ready", flush=True)
            os._exit(0)

    faust.Worker(
        app, loglevel="warning", quiet=True, redirect_stdouts=False
    ).execute_from_commandline()
    """
)


def time_bare(url: str, folder: Path) -> float:
    started = time.monotonic()
    process = subprocess.Popen(
        [sys.executable, "-c", BARE, url, f"bench-{uuid.uuid4().hex[:8]}", str(folder)],
        stdout=subprocess.PIPE,
        stderr=subprocess.DEVNULL,
        text=True,
    )
    assert process.stdout is not None
    for line in process.stdout:
        if "ready" in line:  # (after the terminal codes of Faust's spinner)
            elapsed = time.monotonic() - started
            process.kill()
            process.wait()
            return elapsed
    raise SystemExit(f"the bare app exited with {process.wait()} before it was ready")


TOPOLOGY = """\
name: timed
columns:
  - {name: n, op: "weave_stream.ops.resolve:_example_length", args: {text: inputs.document}}
"""


def time_worker(url: str, folder: Path) -> tuple[float, float]:
    """Seconds to the worker's ``/readyz`` 200, and to its topology child being ready."""
    import asyncio

    from weave_stream.broker.embedded import free_port
    from weave_stream.config import load_settings
    from weave_stream.topology.registrations import Registration, register

    port = free_port()
    env = {
        "WEAVE_STREAM_BROKER": url,
        "WEAVE_STREAM_BROKER_KIND": "embedded",
        "WEAVE_STREAM_TOPIC_PREFIX": f"b{uuid.uuid4().hex[:8]}",
        "WEAVE_STREAM_DATA_DIR": str(folder),
        "WEAVE_STREAM_STATE_FILE": str(folder / "running.json"),
        "WEAVE_STREAM_WEB_PORT": str(port),
    }
    settings = load_settings(env=env)
    asyncio.run(register(settings, Registration.create("timed", TOPOLOGY, "yaml")))
    started = time.monotonic()
    process = subprocess.Popen(
        [sys.executable, "-m", "weave_stream", "worker"],
        env={**os.environ, **env},
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    ready: float | None = None
    try:
        while process.poll() is None:
            try:
                with urllib.request.urlopen(f"http://127.0.0.1:{port}/readyz", timeout=2) as answer:
                    ready = ready or time.monotonic() - started
                    child = json.loads(answer.read())["components"].get("topology/timed", {})
                    if child.get("state") == "ok":
                        return ready, time.monotonic() - started
            except (urllib.error.URLError, OSError):
                pass
            time.sleep(0.05)
        raise SystemExit(f"the worker exited with {process.returncode} before it was ready")
    finally:
        process.terminate()
        process.wait(60)


def main() -> None:
    from weave_stream.broker.embedded import EmbeddedBroker

    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--rounds", type=int, default=3)
    rounds = parser.parse_args().rounds
    bare: list[float] = []
    worker: list[float] = []
    topology: list[float] = []
    loads: list[float] = []
    with tempfile.TemporaryDirectory() as folder, EmbeddedBroker() as broker:
        for index in range(rounds):
            loads.append(os.getloadavg()[0])
            bare.append(time_bare(broker.url, Path(folder) / f"bare{index}"))
            ready, computing = time_worker(broker.url, Path(folder) / f"worker{index}")
            worker.append(ready)
            topology.append(computing)
            print(
                f"round {index + 1}: bare {bare[-1]:.1f} s, worker {ready:.1f} s, "
                f"its topology {computing:.1f} s"
            )
    cores = os.cpu_count() or 1
    load = statistics.mean(loads)
    print(f"\nload average {load:.1f} on {cores} cores during the run")
    print(f"{'subject':<8}{'median s':>10}{'min s':>8}{'max s':>8}")
    for name, values in (("bare", bare), ("worker", worker), ("topology", topology)):
        print(f"{name:<9}{statistics.median(values):>9.1f}{min(values):>8.1f}{max(values):>8.1f}")
    for name, values in (("worker", worker), ("topology", topology)):
        figure = {
            "bench": f"{name}_ready_seconds",
            "value": round(statistics.median(values), 2),
            "baseline": round(statistics.median(bare), 2),
            "ratio": round(statistics.median(values) / statistics.median(bare), 2),
            "load_average": round(load, 1),
            "cores": cores,
        }
        print(json.dumps(figure))


if __name__ == "__main__":
    main()
