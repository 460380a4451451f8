"""A worker tells the world how it is: status records, the ready line, failures on its terminal.

* Every :data:`PUBLISH_SECONDS` the worker compares its health
  (:mod:`~weave_stream.runners.streaming.health`) with what it last published and
  writes a :class:`~weave_stream.runners.status.WorkerStatus` to ``<prefix>.workers``
  when it changed, and at least every :data:`~weave_stream.runners.status.HEARTBEAT_SECONDS`
  (``weave-stream status`` reads them). Stopping, it says so at once.
* Once the worker is first ready it prints one line saying so, and how long it took.
* A component that fails (or recovers) is printed on the worker's terminal, one line
  each, whatever the log level: Faust's own lines go to the log file.
"""

from __future__ import annotations

import logging
import os
import socket
import sys
import time
from collections.abc import Callable
from typing import Any

import faust

from weave_stream.config import Settings
from weave_stream.runners.status import HEARTBEAT_SECONDS, WorkerStatus
from weave_stream.runners.streaming.health import HEALTH, ComponentState, describe
from weave_stream.runners.streaming.sink import OutgoingRecord, RecordSink

__all__ = ["PUBLISH_SECONDS", "StatusReporter", "say"]

log = logging.getLogger(__name__)

PUBLISH_SECONDS = 2.0


def say(line: str) -> None:
    """One line on the worker's terminal (stderr), flushed."""
    print(line, file=sys.stderr, flush=True)


class StatusReporter:
    """Publishes this worker's status; see the module docstring."""

    def __init__(
        self, app: faust.App, settings: Settings, readiness: Callable[[], dict[str, Any]]
    ) -> None:
        self.settings = settings
        # Never idempotent: a record per key, latest wins, so a retried write is harmless,
        # and the status still goes out when the data producers' settings are wrong.
        self.sink = RecordSink(settings.broker_address, idempotent=False)
        self._last_failure: str | None = None
        app.on_before_shutdown.connect(lambda *args, **kwargs: self._stopped())
        self.started_at = time.time()
        self._started = time.monotonic()
        self._published: tuple[str, Any] | None = None
        self._published_at = 0.0
        self._announced = False
        self._readiness = readiness
        HEALTH.listen(self._tell_terminal)

        @app.timer(interval=PUBLISH_SECONDS / 4)
        async def announce_ready() -> None:
            if not self._announced and self._readiness().get("ready"):
                self._announced = True
                say(
                    f"worker {settings.worker_id} ready after "
                    f"{time.monotonic() - self._started:.1f}s (`weave-stream status` shows "
                    "its agents)"
                )

        @app.timer(interval=PUBLISH_SECONDS)
        async def publish_status() -> None:
            # A failing timer would crash the whole app: a status that cannot be written
            # now (the broker away) is logged once and tried again next tick.
            await self.publish_quietly("running")

    def record(self, state: str) -> WorkerStatus:
        """This worker's status now."""
        settings = self.settings
        return WorkerStatus(
            worker_id=settings.worker_id,
            pid=os.getpid(),
            host=socket.gethostname(),
            url=f"http://{settings.web_host}:{settings.web_port}",
            broker=settings.broker or "",
            prefix=settings.topic_prefix,
            started_at=self.started_at,
            updated_at=time.time(),
            state=state,
            components=HEALTH.snapshot(),
        )

    async def publish(self, state: str, *, force: bool = False) -> None:
        """Write the status if it changed, or the heartbeat is due (or ``force``)."""
        record = self.record(state)
        current = (state, record.components)
        due = time.monotonic() - self._published_at >= HEARTBEAT_SECONDS
        if not force and not due and current == self._published:
            return
        await self.sink.write(
            self.settings.topics.workers, [OutgoingRecord(record.key.encode(), record.to_json())]
        )
        self._published, self._published_at = current, time.monotonic()

    async def publish_quietly(self, state: str, *, force: bool = False) -> None:
        """:meth:`publish`; a status that cannot be written now (the broker away) is logged
        once and written at the next tick. (A failing timer would crash the whole app.)"""
        try:
            await self.publish(state, force=force)
        except Exception as exc:
            if describe(exc) != self._last_failure:
                log.warning("cannot publish the worker's status: %s", describe(exc))
            self._last_failure = describe(exc)
        else:
            self._last_failure = None

    async def _stopped(self) -> None:
        # One receiver for both: Faust runs a signal's receivers in no set order.
        try:
            await self.publish_quietly("stopped", force=True)
        finally:
            await self.sink.stop()

    def _tell_terminal(self, name: str, component: ComponentState) -> None:
        if component.state == "failed":
            say(f"{name} failed: {component.last_error}")
        else:
            say(f"{name} works again")
