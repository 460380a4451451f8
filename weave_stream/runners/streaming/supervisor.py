"""The topology supervisor: one child worker process per registered topology.

It watches the registry and keeps, per registered topology, one child process
(``weave-stream topology-worker NAME``) running the registered version: it starts
new ones, restarts changed ones (the child resumes from its group's committed
offsets, writing values under the new op refs from then on), stops unregistered
ones and restarts crashed ones with a backoff. Children die with their worker.

With ``embed_service=auto`` it also runs the worker's model service (see
:mod:`.model_service`): the children embed through it, so the host holds one
embedding model, not one per topology.
"""

from __future__ import annotations

import asyncio
import logging
import os
import signal
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path

from weave_stream import metrics
from weave_stream.broker.embedded import die_with_parent, free_port
from weave_stream.config import Settings
from weave_stream.runners.streaming.model_service import ModelServiceProcess
from weave_stream.topology.registrations import Registration, watch_registry

__all__ = ["TopologySupervisor"]

log = logging.getLogger(__name__)

_RESTART_BACKOFF = (1.0, 2.0, 5.0, 10.0, 30.0)


@dataclass
class _Child:
    registration: Registration
    process: asyncio.subprocess.Process
    web_port: int
    started: float = field(default_factory=time.monotonic)


class TopologySupervisor:
    """Run one child process per registered topology, following the registry."""

    def __init__(self, settings: Settings) -> None:
        self.settings = settings
        self.children: dict[str, _Child] = {}
        self._retry_at: dict[str, float] = {}
        self._failures: dict[str, int] = {}
        self._log_dir = settings.data_dir / "logs"
        self.model_service = (
            ModelServiceProcess(settings) if settings.embed_service == "auto" else None
        )

    def metrics_urls(self) -> list[str]:
        """The ``/metrics`` URLs of the children alive now (and the model service's)."""
        host = self.settings.web_host
        urls = [
            f"http://{host}:{child.web_port}/metrics"
            for child in self.children.values()
            if child.process.returncode is None
        ]
        service = self.model_service.metrics_url if self.model_service else None
        return [*urls, service] if service else urls

    def running(self) -> dict[str, str]:
        """``{topology: version}`` of the children alive now."""
        return {
            name: child.registration.version
            for name, child in self.children.items()
            if child.process.returncode is None
        }

    async def run(self) -> None:
        """Follow the registry until cancelled; then stop every child."""
        try:
            if self.model_service is not None:
                await self.model_service.start()
            async for registrations in watch_registry(self.settings, poll_seconds=1.0):
                if self.model_service is not None:
                    await self.model_service.keep_alive()
                await self.reconcile(registrations)
        finally:
            await self.stop_all()

    async def reconcile(self, registrations: dict[str, Registration]) -> None:
        """Make the running children match ``registrations``."""
        metrics.TOPOLOGY_REGISTERED.clear()  # no await in between: a scrape sees all or none
        for name in registrations:
            metrics.TOPOLOGY_REGISTERED.labels(name).set(1)
        for name in list(self.children):
            if name not in registrations:
                log.info("topology %s unregistered: stopping its worker", name)
                await self._stop(name)
        now = time.monotonic()
        for name, registration in registrations.items():
            child = self.children.get(name)
            if child is not None and child.process.returncode is not None:
                self._failures[name] = self._failures.get(name, 0) + 1
                delay = _RESTART_BACKOFF[min(self._failures[name], len(_RESTART_BACKOFF)) - 1]
                log.error(
                    "topology %s worker exited with %s; restarting in %.0fs (log: %s)",
                    name,
                    child.process.returncode,
                    delay,
                    self._log_path(name),
                )
                del self.children[name]
                self._retry_at[name] = now + delay
            child = self.children.get(name)
            if child is not None and child.registration.version != registration.version:
                log.info(
                    "topology %s changed (%s -> %s): restarting its worker",
                    name,
                    child.registration.version,
                    registration.version,
                )
                await self._stop(name)
                child = None
            if child is None and now >= self._retry_at.get(name, 0.0):
                await self._start(registration)

    async def _start(self, registration: Registration) -> None:
        name = registration.name
        self._log_dir.mkdir(parents=True, exist_ok=True)
        web_port = free_port()
        environment = {
            **os.environ,
            **self.settings.as_environment(),
            "WEAVE_STREAM_WEB_PORT": str(web_port),
            "WEAVE_STREAM_WORKER_ID": f"{self.settings.worker_id}.{name}",
        }
        if self.model_service is not None:
            environment["WEAVE_STREAM_EMBED_SERVICE"] = self.model_service.address
        with open(self._log_path(name), "ab") as log_file:
            process = await asyncio.create_subprocess_exec(
                sys.executable,
                "-m",
                "weave_stream",
                "topology-worker",
                name,
                "--version",
                registration.version,
                env=environment,
                stdin=asyncio.subprocess.DEVNULL,
                stdout=log_file,
                stderr=asyncio.subprocess.STDOUT,
                preexec_fn=die_with_parent,
            )
        self.children[name] = _Child(registration, process, web_port)
        log.info("topology %s version %s: worker pid %d", name, registration.version, process.pid)

    def _log_path(self, name: str) -> Path:
        return self._log_dir / f"{self.settings.worker_id}.{name}.log"

    async def _stop(self, name: str, timeout: float = 20.0) -> None:
        child = self.children.pop(name, None)
        if child is None or child.process.returncode is not None:
            return
        child.process.send_signal(signal.SIGTERM)
        try:
            await asyncio.wait_for(child.process.wait(), timeout)
        except TimeoutError:
            child.process.kill()
            await child.process.wait()

    async def stop_all(self) -> None:
        """Stop every child gracefully (they commit what they processed), then the model service."""
        await asyncio.gather(*(self._stop(name) for name in list(self.children)))
        if self.model_service is not None:
            await self.model_service.stop()
