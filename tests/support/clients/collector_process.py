"""``weave-stream collector`` as a child process, for the client tests."""

from __future__ import annotations

import os
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

from weave_stream.broker.embedded import die_with_parent
from weave_stream.config import Settings

__all__ = ["CollectorProcess"]


class CollectorProcess:
    """A collector serving ``settings`` on a free loopback port until :meth:`stop`."""

    def __init__(self, settings: Settings, log_path: Path, upstream: str | None = None) -> None:
        command = [sys.executable, "-m", "weave_stream", "collector", "--collector-port", "0"]
        if upstream:
            command += ["--upstream", upstream]
        env = {**os.environ, **settings.as_environment()}
        self.log_path = log_path
        self._log = open(log_path, "ab")  # noqa: SIM115  # closed in stop()
        self.process = subprocess.Popen(
            command,
            env=env,
            stdin=subprocess.DEVNULL,
            stdout=subprocess.PIPE,
            stderr=self._log,
            preexec_fn=die_with_parent,
        )
        assert self.process.stdout is not None
        first = self.process.stdout.readline().decode()  # "collector at URL -> ..."
        if not first.startswith("collector at "):
            self.stop()
            raise RuntimeError(f"collector did not start: {first!r}; log {log_path.read_text()}")
        self.url = first.split()[2]

    def metrics(self) -> dict[str, float]:
        """The collector's own /metrics, as {series: value}."""
        with urllib.request.urlopen(f"{self.url}/metrics", timeout=5) as answer:
            text = answer.read().decode()
        found = {}
        for line in text.splitlines():
            if line and not line.startswith("#"):
                series, _, value = line.rpartition(" ")
                found[series] = float(value)
        return found

    def stop(self) -> None:
        """SIGTERM, then SIGKILL after 10 s."""
        self.process.terminate()
        deadline = time.monotonic() + 10
        while self.process.poll() is None and time.monotonic() < deadline:
            time.sleep(0.1)
        if self.process.poll() is None:
            self.process.kill()
            self.process.wait()
        self._log.close()
