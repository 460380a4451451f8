"""Worker processes: start ``weave-stream worker`` as a child, wait until ready, stop it.

Used by the demo, the tests and the benchmarks. The child dies with its parent
(``PR_SET_PDEATHSIG``), so an interrupted demo leaves nothing behind.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
import urllib.error
import urllib.request
from pathlib import Path
from types import TracebackType
from typing import Any

from prometheus_client.parser import text_string_to_metric_families

from weave_stream.broker.embedded import die_with_parent, free_port
from weave_stream.config import Settings
from weave_stream.errors import WeaveStreamError

__all__ = ["WorkerProcess"]


class WorkerProcess:
    """A ``weave-stream worker`` child process configured by ``settings``.

    ``settings.web_port`` 0 picks a free port. The worker's output goes to
    ``log_path`` (default: ``<data_dir>/<worker_id>.log``).
    """

    def __init__(self, settings: Settings, log_path: Path | None = None) -> None:
        if settings.broker is None:
            raise WeaveStreamError("a worker process needs a broker URL in its settings")
        port = settings.web_port or free_port()
        self.settings = settings.model_copy(update={"web_port": port})
        self.log_path = log_path or settings.data_dir / f"{settings.worker_id}.log"
        self.process: subprocess.Popen[bytes] | None = None

    @property
    def url(self) -> str:
        """Base URL of the worker's HTTP endpoints."""
        return f"http://{self.settings.web_host}:{self.settings.web_port}"

    def start(self) -> WorkerProcess:
        """Start the worker process (returns at once; see :meth:`wait_ready`)."""
        self.log_path.parent.mkdir(parents=True, exist_ok=True)
        env = {**os.environ, **self.settings.as_environment()}
        with open(self.log_path, "ab") as log:
            self.process = subprocess.Popen(
                # --verbose: Faust's lines too, in this log (the worker's own log file
                # would otherwise hold them, away from log_tail()).
                [sys.executable, "-m", "weave_stream", "worker", "--verbose"],
                env=env,
                stdin=subprocess.DEVNULL,
                stdout=log,
                stderr=subprocess.STDOUT,
                preexec_fn=die_with_parent,
            )
        return self

    def wait_ready(self, timeout: float = 60.0) -> dict[str, Any]:
        """Block until ``/readyz`` answers 200; raise with the log's tail if it never does."""
        deadline = time.monotonic() + timeout
        last: object = None
        while time.monotonic() < deadline:
            if self.process is None or self.process.poll() is not None:
                raise WeaveStreamError(f"worker exited before it was ready:\n{self.log_tail()}")
            try:
                with urllib.request.urlopen(f"{self.url}/readyz", timeout=2) as answer:
                    return dict(json.loads(answer.read()))
            except (urllib.error.URLError, OSError, ValueError) as exc:
                last = exc
            time.sleep(0.1)
        raise WeaveStreamError(
            f"worker not ready after {timeout:.0f}s (last answer: {last!r}):\n{self.log_tail()}"
        )

    def readiness(self) -> tuple[int, dict[str, Any]]:
        """``/readyz`` now: its status (200, or 503 with a failed component) and its body,
        every component with its state."""
        try:
            with urllib.request.urlopen(f"{self.url}/readyz", timeout=5) as answer:
                return answer.status, dict(json.loads(answer.read()))
        except urllib.error.HTTPError as answer:  # 503 still carries the components
            return answer.code, dict(json.loads(answer.read()))

    def metrics(self) -> dict[str, float]:
        """The worker's metrics as ``{'name{label="v",...}': value}``."""
        with urllib.request.urlopen(f"{self.url}/metrics", timeout=5) as answer:
            text = answer.read().decode()
        values = {}
        for family in text_string_to_metric_families(text):
            for sample in family.samples:
                labels = ",".join(f'{k}="{v}"' for k, v in sorted(sample.labels.items()))
                values[f"{sample.name}{{{labels}}}" if labels else sample.name] = sample.value
        return values

    def stop(self, timeout: float = 30.0) -> int | None:
        """SIGTERM (graceful: offsets committed), then SIGKILL after ``timeout`` seconds."""
        process = self.process
        if process is None or process.poll() is not None:
            return process.returncode if process else None
        process.send_signal(signal.SIGTERM)
        try:
            return process.wait(timeout)
        except subprocess.TimeoutExpired:
            process.kill()
            return process.wait()

    def kill(self) -> None:
        """SIGKILL: a crash, nothing committed or flushed."""
        if self.process is not None and self.process.poll() is None:
            self.process.kill()
            self.process.wait()

    def log_tail(self, lines: int = 30) -> str:
        """The last lines of the worker's output."""
        try:
            return "\n".join(self.log_path.read_text(errors="replace").splitlines()[-lines:])
        except OSError:
            return "(no log)"

    def __enter__(self) -> WorkerProcess:
        return self.start()

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.stop()
