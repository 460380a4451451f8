"""The worker's model service process: one embedding model shared by its topology processes.

The supervisor hands its topology processes the service's socket
(``WEAVE_STREAM_EMBED_SERVICE=unix:<path>``, when ``embed_service`` is ``auto``) and
starts ``weave-stream model-service`` when the first of them asks for it (a client
that finds no socket creates :func:`~weave_stream.ops.embed_service.demand_path`):
a worker whose topologies embed nothing never starts it, nor imports torch (~590 MB
resident). Once started, the service is restarted if it dies (topology processes
reconnect), reported on ``/readyz`` as ``model-service``, and its ``/metrics`` are
added to the worker's.
"""

from __future__ import annotations

import asyncio
import logging
import os
import signal
import sys
import tempfile
import time
import uuid
from pathlib import Path

from weave_stream.broker.embedded import die_with_parent, free_port
from weave_stream.config import Settings
from weave_stream.ops.embed_service import demand_path
from weave_stream.runners.streaming.health import HEALTH

__all__ = ["ModelServiceProcess"]

log = logging.getLogger(__name__)

COMPONENT = "model-service"
_RESTART_BACKOFF = (1.0, 2.0, 5.0, 10.0, 30.0)


class ModelServiceProcess:
    """Start, watch and stop the model service child of a worker."""

    def __init__(self, settings: Settings) -> None:
        self.settings = settings
        # Unix socket paths are limited to ~100 bytes: a short name in the temp folder,
        # not under data_dir.
        self.socket_path = str(
            Path(tempfile.gettempdir()) / f"ws-model-{uuid.uuid4().hex[:12]}.sock"
        )
        self.web_port = 0
        self.process: asyncio.subprocess.Process | None = None
        self._ready = False
        self._failures = 0
        self._retry_at = 0.0
        self._stopped = False  # stop() was called: keep_alive restarts nothing
        self._started = False  # asked for once: from then on it is kept alive
        self._log_path = settings.data_dir / "logs" / f"{settings.worker_id}.model-service.log"

    @property
    def address(self) -> str:
        """The ``embed_service`` value topology processes are given."""
        return f"unix:{self.socket_path}"

    @property
    def metrics_url(self) -> str | None:
        """The service's ``/metrics`` while it runs."""
        if self.process is None or self.process.returncode is not None:
            return None
        return f"http://{self.settings.web_host}:{self.web_port}/metrics"

    @property
    def wanted(self) -> bool:
        """A topology process asked for the service (or it was started before)."""
        return self._started or demand_path(self.socket_path).exists()

    async def start(self) -> None:
        """Start the service (returns at once; clients wait for its socket)."""
        HEALTH.starting(COMPONENT)
        self._stopped, self._started = False, True
        self._log_path.parent.mkdir(parents=True, exist_ok=True)
        self.web_port = free_port()
        environment = {
            **os.environ,
            **self.settings.as_environment(),
            "WEAVE_STREAM_EMBED_SERVICE": "process",  # the service embeds itself
        }
        with open(self._log_path, "ab") as log_file:
            self.process = await asyncio.create_subprocess_exec(
                sys.executable,
                "-m",
                "weave_stream",
                "model-service",
                "--socket",
                self.socket_path,
                "--metrics-port",
                str(self.web_port),
                env=environment,
                stdin=asyncio.subprocess.DEVNULL,
                stdout=log_file,
                stderr=asyncio.subprocess.STDOUT,
                preexec_fn=die_with_parent,
            )
        log.info("model service: pid %d on %s", self.process.pid, self.address)

    async def keep_alive(self) -> None:
        """Start the service once a topology process asks for it; restart it if it died
        (with a backoff), saying why; report it ok, and log where the model runs, once
        its socket is up."""
        if self._stopped or not self.wanted:
            return
        if self.process is not None and self.process.returncode is not None:
            self._failures += 1
            delay = _RESTART_BACKOFF[min(self._failures, len(_RESTART_BACKOFF)) - 1]
            reason = (
                f"the model service exited with {self.process.returncode}: "
                f"{_last_line(self._log_path)!r}; restarting it in {delay:.0f}s "
                f"(log: {self._log_path})"
            )
            log.error(reason)
            HEALTH.failed(COMPONENT, reason)
            Path(self.socket_path).unlink(missing_ok=True)  # ok again only once the new one binds
            self.process, self._ready = None, False
            self._retry_at = time.monotonic() + delay
        if self.process is None:
            if time.monotonic() >= self._retry_at:
                await self.start()
        elif not self._ready and Path(self.socket_path).exists():
            self._ready = True
            log.info("model service ready: %s", _last_line(self._log_path, "model service on"))
            HEALTH.ok(COMPONENT)

    async def stop(self, timeout: float = 20.0) -> None:
        """Stop the service gracefully (after the topology processes)."""
        process, self.process, self._stopped = self.process, None, True
        HEALTH.forget(COMPONENT)
        demand_path(self.socket_path).unlink(missing_ok=True)
        if process is None or process.returncode is not None:
            return
        process.send_signal(signal.SIGTERM)
        try:
            await asyncio.wait_for(process.wait(), timeout)
        except TimeoutError:
            process.kill()
            await process.wait()
        Path(self.socket_path).unlink(missing_ok=True)


def _last_line(path: Path, starting: str = "") -> str:
    """The log's last line (that starts with ``starting``), for a one-line reason."""
    try:
        lines = path.read_text(errors="replace").splitlines()
    except OSError:
        return "(no log)"
    matching = [line for line in lines if line.startswith(starting) and line.strip()]
    return matching[-1] if matching else "(nothing logged)"
