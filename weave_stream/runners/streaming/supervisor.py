"""The topology supervisor: one child worker process per registered topology.

It watches the registry and keeps, per registered topology, one child process
(``weave-stream topology-worker NAME``) running the registered version: it starts
new ones, restarts changed ones (the child resumes from its group's committed
offsets, writing values under the new op refs from then on), stops unregistered
ones and restarts crashed ones with a backoff (:class:`RestartPolicy`). A new
registration of a crashed topology restarts it at once. Children die with their
worker.

Each child is a component ``topology/<name>`` of the worker's health
(:mod:`~weave_stream.runners.streaming.health`): ``starting`` until its own
``/readyz`` answers, ``failed`` with the reason when it exits (the last error line of
its log) or when its ``/readyz`` reports a failed component, so ``/readyz``,
``weave-stream status`` and ``weave-stream topologies`` show a crash loop.

With ``embed_service=auto`` it also runs the worker's model service, once a child asks (see
:mod:`.model_service`): the children embed through it, so the host holds one
embedding model, not one per topology.
"""

from __future__ import annotations

import asyncio
import logging
import os
import re
import signal
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx

from weave_stream.broker.embedded import die_with_parent, free_port
from weave_stream.config import Settings
from weave_stream.metrics import TOPOLOGY_REGISTERED
from weave_stream.runners.streaming.health import HEALTH
from weave_stream.runners.streaming.model_service import ModelServiceProcess
from weave_stream.topology.registrations import Registration, watch_registry

__all__ = ["RestartPolicy", "TopologySupervisor", "component_name", "last_error_line"]

log = logging.getLogger(__name__)

RESTART_BACKOFF = (1.0, 2.0, 5.0, 10.0, 30.0)
HEALTHY_AFTER_SECONDS = 60.0  # a child that ran this long is forgiven its past crashes
POLL_SECONDS = 2.0


def _mirror_waiting(component: str, parts: dict[str, Any]) -> None:
    """A child's ``<component>/topics/...`` and ``<component>/calibration/...`` parts in this
    process's health too, so that ``/readyz`` and ``weave-stream status`` say a topic column
    waits for its first map, or a classify column for the calls it calibrates on."""
    mirrored = (f"{component}/topics/", f"{component}/calibration/")
    for name, state in parts.items():
        if not name.startswith(mirrored) or not isinstance(state, dict):
            continue
        if state.get("state") == "waiting":
            HEALTH.waiting(name, str(state.get("detail") or "waiting"))
        elif state.get("state") == "ok":
            HEALTH.ok(name)


def component_name(topology: str) -> str:
    """The health component of a topology's child process.

    >>> component_name("text_extract")
    'topology/text_extract'
    """
    return f"topology/{topology}"


class RestartPolicy:
    """When a crashed child may start again: a growing backoff, unless re-registered.

    >>> policy = RestartPolicy()
    >>> policy.crashed("t", "v1@1", now=100.0), policy.crashed("t", "v1@1", now=101.0)
    (1.0, 2.0)
    >>> policy.may_start("t", "v1@1", now=102.0)   # still backing off
    False
    >>> policy.may_start("t", "v2@2", now=102.0)   # registered again: at once
    True
    >>> policy.may_start("t", "v1@1", now=103.5)
    True
    """

    def __init__(self, backoff: tuple[float, ...] = RESTART_BACKOFF) -> None:
        self.backoff = backoff
        self._failures: dict[str, int] = {}
        self._retry_at: dict[str, float] = {}
        self._failed_registration: dict[str, str] = {}

    def crashed(self, name: str, registration: str, now: float) -> float:
        """Record a crash of ``name`` running ``registration``; the delay before a restart."""
        if self._failed_registration.get(name) != registration:
            self._failures[name] = 0  # a new registration starts its own count
        self._failures[name] = self._failures.get(name, 0) + 1
        delay = self.backoff[min(self._failures[name], len(self.backoff)) - 1]
        self._retry_at[name] = now + delay
        self._failed_registration[name] = registration
        return delay

    def may_start(self, name: str, registration: str, now: float) -> bool:
        """Whether ``name`` may start now with ``registration`` (an identity string)."""
        if self._failed_registration.get(name) not in (None, registration):
            return True
        return now >= self._retry_at.get(name, 0.0)

    def healthy(self, name: str) -> None:
        """``name`` ran well: forget its crashes."""
        for table in (self._failures, self._retry_at, self._failed_registration):
            table.pop(name, None)


def last_error_line(text: str) -> str | None:
    """The line of a child's output that says why it failed, if one does.

    >>> last_error_line("starting\\nError: op 'm:f': module 'm' is not importable\\n")
    "op 'm:f': module 'm' is not importable"
    >>> last_error_line("Traceback (most recent call last):\\n  ...\\nValueError: bad\\n")
    'ValueError: bad'
    >>> last_error_line("[2026-12-04 18:32:32,811] [1] [ERROR] [^Agent]: Crashed reason=X()\\n")
    '[^Agent]: Crashed reason=X()'
    >>> last_error_line("all fine\\n") is None
    True
    """
    for line in reversed(text.splitlines()):
        line = line.strip()
        if line.startswith("Error: "):
            return line.removeprefix("Error: ")
        if _EXCEPTION_LINE.match(line):
            return line
        logged = _LOGGED_ERROR.search(line)
        if logged:
            return logged.group("message").strip()
    return None


_EXCEPTION_LINE = re.compile(r"^[A-Za-z_][\w.]*(Error|Exception|Exit|Interrupt)\b(: .*)?$")
_LOGGED_ERROR = re.compile(r"\[(ERROR|CRITICAL)\]\s*(?P<message>.*)$")


@dataclass
class _Child:
    registration: Registration
    process: asyncio.subprocess.Process
    web_port: int
    log_offset: int
    started: float = field(default_factory=time.monotonic)
    reported: str | None = None  # the failure last reported from its /readyz
    signalled: bool = False  # SIGTERM sent: a second one would make it exit at once

    def terminate(self) -> None:
        """SIGTERM, once: the child stops within its bound, committing what it processed."""
        if not self.signalled and self.process.returncode is None:
            self.signalled = True
            self.process.send_signal(signal.SIGTERM)


def _identity(registration: Registration) -> str:
    return f"{registration.version}@{registration.registered_at}"


class TopologySupervisor:
    """Run one child process per registered topology, following the registry."""

    def __init__(self, settings: Settings) -> None:
        self.settings = settings
        self.children: dict[str, _Child] = {}
        self.policy = RestartPolicy()
        self._log_dir = settings.data_dir / "logs"
        self._last_poll = 0.0
        self._stopping = False  # the worker is stopping: restart nothing
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
            async for registrations in watch_registry(self.settings, poll_seconds=1.0):
                if self._stopping:  # children exit now: restarting them would hold the stop up
                    continue
                if self.model_service is not None:
                    await self.model_service.keep_alive()
                await self.reconcile(registrations)
                if time.monotonic() - self._last_poll >= POLL_SECONDS:
                    self._last_poll = time.monotonic()
                    await self.poll_children()
        finally:
            await self.stop_all()

    async def reconcile(self, registrations: dict[str, Registration]) -> None:
        """Make the running children match ``registrations``."""
        TOPOLOGY_REGISTERED.clear()  # no await in between: a scrape sees all or none
        for name in registrations:
            TOPOLOGY_REGISTERED.labels(name).set(1)
        for name in list(self.children):
            if name not in registrations:
                log.info("topology %s unregistered: stopping its worker", name)
                await self._stop(name)
        for name in list(HEALTH.snapshot()):
            topology = name.removeprefix("topology/").split("/")[0]  # and its mirrored parts
            if name.startswith("topology/") and topology not in registrations:
                HEALTH.forget(name)
        now = time.monotonic()
        for name, registration in registrations.items():
            child = self.children.get(name)
            if child is not None and child.process.returncode is not None:
                self._crashed(name, child, now)
                child = None
            if child is not None and _identity(child.registration) != _identity(registration):
                if child.registration.version != registration.version:
                    log.info(
                        "topology %s changed (%s -> %s): restarting its worker",
                        name,
                        child.registration.version,
                        registration.version,
                    )
                    await self._stop(name)
                    child = None
                else:  # registered again, same version: nothing to restart
                    child.registration = registration
            if child is None and self.policy.may_start(name, _identity(registration), now):
                await self._start(registration)

    def _crashed(self, name: str, child: _Child, now: float) -> None:
        del self.children[name]
        delay = self.policy.crashed(name, _identity(child.registration), now)
        why = self._exit_reason(name, child)
        log.error(
            "topology %s worker %s; restarting in %.0fs (log: %s)",
            name,
            why,
            delay,
            self._log_path(name),
        )
        HEALTH.failed(
            component_name(name),
            f"{why}; restarting in {delay:.0f}s (log: {self._log_path(name)})",
        )

    def _exit_reason(self, name: str, child: _Child) -> str:
        try:
            with open(self._log_path(name), "rb") as handle:
                handle.seek(child.log_offset)
                text = handle.read().decode(errors="replace")
        except OSError:
            text = ""
        line = last_error_line(text)
        status = f"exited with status {child.process.returncode}"
        return f"{status}: {line}" if line else status

    async def poll_children(self) -> None:
        """Ask each live child's ``/readyz``; report what it says under ``topology/<name>``."""
        live = {n: c for n, c in self.children.items() if c.process.returncode is None}
        if not live:
            return
        host = self.settings.web_host
        async with httpx.AsyncClient(timeout=2.0) as client:
            answers = await asyncio.gather(
                *(client.get(f"http://{host}:{c.web_port}/readyz") for c in live.values()),
                return_exceptions=True,
            )
        for (name, child), answer in zip(live.items(), answers, strict=True):
            self._report(name, child, answer)

    def _report(self, name: str, child: _Child, answer: object) -> None:
        component = component_name(name)
        if not isinstance(answer, httpx.Response):
            return  # not listening yet (starting), or busy: the next poll asks again
        try:
            body: dict[str, Any] = dict(answer.json())
        except ValueError:  # not our JSON: a child that is not up yet
            body = {}
        failures = body.get("failures") or {}
        _mirror_waiting(component, body.get("components") or {})
        if answer.status_code == 200:
            child.reported = None
            HEALTH.ok(component)
            if time.monotonic() - child.started > HEALTHY_AFTER_SECONDS:
                self.policy.healthy(name)
        elif failures:
            reason = "; ".join(f"{part}: {why}" for part, why in sorted(failures.items()))
            if reason != child.reported:  # counted once per distinct failure
                child.reported = reason
                HEALTH.failed(component, reason)

    async def _start(self, registration: Registration) -> None:
        name = registration.name
        self._log_dir.mkdir(parents=True, exist_ok=True)
        web_port = free_port()
        # A child stops within a little less than its parent's bound, so that the
        # parent sees it go before its own deadline.
        child_bound = max(1.0, self.settings.shutdown_timeout_seconds - 2.0)
        environment = {
            **os.environ,
            **self.settings.as_environment(),
            "WEAVE_STREAM_WEB_PORT": str(web_port),
            "WEAVE_STREAM_WORKER_ID": f"{self.settings.worker_id}.{name}",
            "WEAVE_STREAM_SHUTDOWN_TIMEOUT_SECONDS": str(child_bound),
        }
        if self.model_service is not None:
            environment["WEAVE_STREAM_EMBED_SERVICE"] = self.model_service.address
        log_path = self._log_path(name)
        offset = log_path.stat().st_size if log_path.exists() else 0
        with open(log_path, "ab") as log_file:
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
        self.children[name] = _Child(registration, process, web_port, offset)
        component = component_name(name)
        if HEALTH.snapshot().get(component, {}).get("state") == "failed":
            HEALTH.running(component)  # a restart after a crash: failed until it is ready
        else:
            HEALTH.starting(component)
        log.info("topology %s version %s: worker pid %d", name, registration.version, process.pid)

    def _log_path(self, name: str) -> Path:
        return self._log_dir / f"{self.settings.worker_id}.{name}.log"

    def signal_all(self) -> None:
        """SIGTERM every child at once (the worker is stopping: each starts its own
        bounded shutdown now, not after the worker's other services); from now on
        nothing is restarted (the model service stops after them, in :meth:`stop_all`)."""
        self._stopping = True
        for child in self.children.values():
            child.terminate()

    async def _stop(self, name: str, timeout: float | None = None) -> None:
        child = self.children.pop(name, None)
        if child is None or child.process.returncode is not None:
            return
        child.terminate()
        try:
            await asyncio.wait_for(
                child.process.wait(), timeout or self.settings.shutdown_timeout_seconds
            )
        except TimeoutError:
            child.process.kill()
            await child.process.wait()

    async def stop_all(self) -> None:
        """Stop every child gracefully (they commit what they processed), then the model service."""
        self._stopping = True
        await asyncio.gather(*(self._stop(name) for name in list(self.children)))
        if self.model_service is not None:
            await self.model_service.stop()
