"""What each part of a worker says about itself: the components behind ``/readyz``.

An agent, sink or child process that fails *reports* it here (with the reason);
``/readyz`` answers 503 while any component is failed, and lists every component
with its state, restarts and last error, so a crash is never only a log line.

>>> health = ComponentHealth()
>>> health.ok("ingest")
>>> health.failed("store-sink", "disk full writing calls: [Errno 28] No space left")
>>> health.ready
False
>>> health.snapshot()["store-sink"]["state"]
'failed'
>>> health.ok("store-sink")
>>> health.ready
True
"""

from __future__ import annotations

import time
from dataclasses import asdict, dataclass
from typing import Any

__all__ = ["HEALTH", "ComponentHealth", "ComponentState"]


@dataclass
class ComponentState:
    """The last word of one component: ``ok``, ``starting`` or ``failed``, and why."""

    state: str = "starting"
    since: float = 0.0
    restarts: int = 0
    last_error: str | None = None
    last_error_at: float | None = None


class ComponentHealth:
    """Components of one process and their states (one instance per process: :data:`HEALTH`)."""

    def __init__(self) -> None:
        self._components: dict[str, ComponentState] = {}

    def _get(self, name: str) -> ComponentState:
        return self._components.setdefault(name, ComponentState(since=time.time()))

    def starting(self, name: str) -> None:
        """``name`` is (re)starting: counted as a restart once it had run before."""
        component = self._get(name)
        if component.state != "starting":
            component.restarts += 1
        component.state, component.since = "starting", time.time()

    def ok(self, name: str) -> None:
        """``name`` works (the last error stays on record)."""
        component = self._get(name)
        if component.state != "ok":
            component.state, component.since = "ok", time.time()

    def failed(self, name: str, reason: str) -> None:
        """``name`` failed: ``/readyz`` is false until it reports :meth:`ok` again."""
        component = self._get(name)
        component.state, component.since = "failed", time.time()
        component.last_error, component.last_error_at = reason, component.since

    def forget(self, name: str) -> None:
        """``name`` is gone on purpose (a topology unregistered)."""
        self._components.pop(name, None)

    @property
    def ready(self) -> bool:
        """No component is failed."""
        return all(c.state != "failed" for c in self._components.values())

    def failures(self) -> dict[str, str]:
        """Failed components and their reasons."""
        return {
            name: c.last_error or "failed"
            for name, c in self._components.items()
            if c.state == "failed"
        }

    def snapshot(self) -> dict[str, dict[str, Any]]:
        """Every component as JSON-ready data."""
        return {name: asdict(c) for name, c in sorted(self._components.items())}


HEALTH = ComponentHealth()
"""This process's components."""
