"""What each part of a worker says about itself: the components behind ``/readyz``.

An agent, sink or child process that fails *reports* it here (with the reason);
``/readyz`` answers 503 while any component is failed, and lists every component
with its state, restarts and last error, so a crash is never only a log line. Each
failure also counts in ``weave_stream_component_failures_total{component}`` and sets
``weave_stream_component_failed{component}`` (the alerting rules fire on them), and
is handed to the listeners (the worker prints it on its terminal).

>>> health = ComponentHealth()
>>> health.ok("ingest")
>>> health.failed("store-sink", "disk full writing calls: [Errno 28] No space left")
>>> health.ready
False
>>> health.snapshot()["store-sink"]["state"]
'failed'
>>> health.running("store-sink")     # restarted by its supervisor: still failed until it works
>>> health.snapshot()["store-sink"]["restarts"], health.ready
(1, False)
>>> health.ok("store-sink")
>>> health.ready
True
>>> health.waiting("topics", "no topic map yet")   # not failed: ready, and says why
>>> health.ready, health.snapshot()["topics"]["state"], health.snapshot()["topics"]["detail"]
(True, 'waiting', 'no topic map yet')
"""

from __future__ import annotations

import contextlib
import time
from collections.abc import Awaitable, Callable
from dataclasses import asdict, dataclass
from typing import Any

from weave_stream.metrics import COMPONENT_FAILED, COMPONENT_FAILURES

__all__ = [
    "HEALTH",
    "ComponentHealth",
    "ComponentState",
    "Listener",
    "describe",
    "report_agent_crashes",
    "watched_agent",
]

Listener = Callable[[str, "ComponentState"], None]
"""Called with a component's name and state whenever it fails or recovers."""


@dataclass
class ComponentState:
    """The last word of one component: ``ok``, ``starting``, ``waiting`` (for something it
    needs, said in ``detail``: not a failure) or ``failed``, and why."""

    state: str = "starting"
    since: float = 0.0
    restarts: int = 0
    last_error: str | None = None
    last_error_at: float | None = None
    detail: str | None = None


class ComponentHealth:
    """Components of one process and their states (one instance per process: :data:`HEALTH`)."""

    def __init__(self) -> None:
        self._components: dict[str, ComponentState] = {}
        self._listeners: list[Listener] = []

    def _get(self, name: str) -> ComponentState:
        return self._components.setdefault(name, ComponentState(since=time.time()))

    def listen(self, listener: Listener) -> None:
        """Call ``listener(name, state)`` on every failure and every recovery."""
        self._listeners.append(listener)

    def _tell(self, name: str, component: ComponentState) -> None:
        for listener in self._listeners:
            listener(name, component)

    def starting(self, name: str) -> None:
        """``name`` is (re)starting: counted as a restart once it had run before."""
        component = self._get(name)
        if component.state != "starting":
            component.restarts += 1
        component.state, component.since = "starting", time.time()

    def running(self, name: str) -> None:
        """``name`` (re)started its work loop: ``ok``, unless it failed before -- then it
        stays failed (a crash loop stays visible) until it reports :meth:`ok` after work."""
        component = self._get(name)
        if component.state == "failed":
            component.restarts += 1
        else:
            self.ok(name)

    def waiting(self, name: str, detail: str) -> None:
        """``name`` waits for something it needs (``detail`` says what): ready, not failed."""
        component = self._get(name)
        was_failed = component.state == "failed"
        if component.state != "waiting":
            component.state, component.since = "waiting", time.time()
        component.detail = detail
        if was_failed:
            COMPONENT_FAILED.labels(name).set(0)
            self._tell(name, component)

    def ok(self, name: str) -> None:
        """``name`` works (the last error stays on record)."""
        component = self._get(name)
        component.detail = None
        if component.state != "ok":
            was_failed = component.state == "failed"
            component.state, component.since = "ok", time.time()
            COMPONENT_FAILED.labels(name).set(0)
            if was_failed:
                self._tell(name, component)

    def failed(self, name: str, reason: str) -> None:
        """``name`` failed: ``/readyz`` is false until it reports :meth:`ok` again."""
        component = self._get(name)
        repeated = component.state == "failed" and component.last_error == reason
        component.state, component.since = "failed", time.time()
        component.last_error, component.last_error_at = reason, component.since
        COMPONENT_FAILURES.labels(name).inc()
        COMPONENT_FAILED.labels(name).set(1)
        if not repeated:  # a crash loop is told once per distinct reason
            self._tell(name, component)

    def forget(self, name: str) -> None:
        """``name`` is gone on purpose (a topology unregistered)."""
        if self._components.pop(name, None) is not None:
            with contextlib.suppress(KeyError):  # never failed nor recovered: no series
                COMPONENT_FAILED.remove(name)

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


def describe(exc: BaseException) -> str:
    """An exception as one line: our own errors by their message, others with their type.

    >>> describe(ValueError("bad value")), describe(KeyError("k"))
    ('ValueError: bad value', "KeyError: 'k'")
    """
    from weave_stream.errors import WeaveStreamError

    if isinstance(exc, WeaveStreamError):
        return str(exc)
    text = str(exc)
    return f"{type(exc).__name__}: {text}" if text else type(exc).__name__


_AGENT_COMPONENTS: dict[str, str] = {}


def watched_agent(agent_name: str, component: str) -> str:
    """Name an agent's component (its crashes fail it); returns ``agent_name`` for ``app.agent``.

    >>> watched_agent("weave-ingest", "ingest")
    'weave-ingest'
    """
    _AGENT_COMPONENTS[agent_name] = component
    return agent_name


def report_agent_crashes(app: Any) -> None:
    """Make every crash of an agent of ``app`` a failure of its component, with the reason.

    Faust hands every agent's exception to its app's ``_on_agent_error`` (agents take
    no handler of their own), then its supervisor restarts the agent; the component
    stays failed until the agent reports :meth:`ComponentHealth.ok` after work. Call
    this before declaring the agents: each keeps the handler it was made with.
    """
    forward: Callable[[Any, BaseException], Awaitable[None]] = app._on_agent_error

    async def on_agent_error(agent: Any, exc: BaseException) -> None:
        name = str(getattr(agent, "name", "agent"))
        HEALTH.failed(_AGENT_COMPONENTS.get(name, name), f"crashed: {describe(exc)}")
        await forward(agent, exc)

    app._on_agent_error = on_agent_error
