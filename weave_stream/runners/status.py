"""The running system at a glance: what ``weave-stream status`` and ``topologies`` show.

Every worker publishes its status to ``<prefix>.workers`` (compacted, keyed
``<host>:<worker id>``): its components -- the ingest and notifier agents, one
``topology/<name>`` per topology child, whatever else reports to its health -- with
state, restarts and last error, every few seconds and whenever something changes
(``runners/streaming/reporting.py``). This module reads those records back, adds each
agent's consumer lag from the broker, and flags what needs a look: a failed
component, a worker not heard from, a registered topology no worker runs, values the
reconciler found missing and could not repair.

>>> now = 1_000.0
>>> status = WorkerStatus("w1", 7, "h", "http://h:6066", "kafka://b:1", "weave", 0.0, now - 2,
...                       "running", {"ingest": {"state": "ok", "restarts": 0}})
>>> status.condition(now), status.condition(now + 120)
('running', 'not heard from for 122s')
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Iterable
from dataclasses import asdict, dataclass, field
from typing import Any

import orjson
from aiokafka.errors import KafkaError

from weave_stream.broker.kafka import COMPACTED, ensure_topics, group_progress, read_topic
from weave_stream.config import Settings
from weave_stream.runners.reconcile_status import Reconciled, reconciliation_status
from weave_stream.topology.registrations import Registration, read_registry

__all__ = [
    "HEARTBEAT_SECONDS",
    "AgentRow",
    "SystemStatus",
    "WorkerStatus",
    "read_worker_statuses",
    "system_status",
    "topology_states",
]

HEARTBEAT_SECONDS = 10.0
"""A worker publishes at least this often; silent for 3x this long, it is reported."""


@dataclass(frozen=True)
class WorkerStatus:
    """One worker's status record, as published on ``<prefix>.workers``."""

    worker_id: str
    pid: int
    host: str
    url: str
    broker: str
    prefix: str
    started_at: float
    updated_at: float
    state: str  # running | stopping | stopped
    components: dict[str, dict[str, Any]] = field(default_factory=dict)

    @property
    def key(self) -> str:
        """The record key: ``<host>:<worker id>`` (a restarted worker replaces itself)."""
        return f"{self.host}:{self.worker_id}"

    def to_json(self) -> bytes:
        return orjson.dumps(asdict(self))

    @classmethod
    def from_json(cls, raw: bytes) -> WorkerStatus:
        data = orjson.loads(raw)
        known = set(cls.__dataclass_fields__)
        return cls(**{k: v for k, v in data.items() if k in known})

    def condition(self, now: float) -> str:
        """``running``, ``stopping``, ``stopped``, or how long it has been silent."""
        silent = now - self.updated_at
        if self.state != "stopped" and silent > 3 * HEARTBEAT_SECONDS:
            return f"not heard from for {silent:.0f}s"
        return self.state


@dataclass(frozen=True)
class AgentRow:
    """One agent of one worker, with its group's lag."""

    worker: str
    agent: str
    state: str
    restarts: int
    lag: int | None
    last_error: str | None


@dataclass
class SystemStatus:
    """Workers, their agents and what needs a look."""

    broker: str
    prefix: str
    workers: list[WorkerStatus]
    agents: list[AgentRow]
    registered: dict[str, Registration]
    problems: list[str]
    reconciliation: dict[str, Reconciled] = field(default_factory=dict)

    def to_dict(self, now: float | None = None) -> dict[str, Any]:
        now = time.time() if now is None else now
        return {
            "broker": self.broker,
            "prefix": self.prefix,
            "workers": [
                {
                    "worker_id": w.worker_id,
                    "host": w.host,
                    "pid": w.pid,
                    "url": w.url,
                    "condition": w.condition(now),
                    "started_at": w.started_at,
                    "updated_at": w.updated_at,
                }
                for w in self.workers
            ],
            "agents": [asdict(a) for a in self.agents],
            "topologies": {name: r.version for name, r in sorted(self.registered.items())},
            "reconciliation": {n: asdict(r) for n, r in sorted(self.reconciliation.items())},
            "problems": self.problems,
        }


async def read_worker_statuses(settings: Settings) -> list[WorkerStatus]:
    """The latest status of every worker that ever published on this prefix."""
    await ensure_topics(settings, [settings.topics.workers], COMPACTED, partitions=1)
    latest: dict[str, WorkerStatus] = {}
    async for record in read_topic(settings, settings.topics.workers, idle_timeout=3.0):
        if record.key and record.value:
            latest[record.key.decode()] = WorkerStatus.from_json(record.value)
    return sorted(latest.values(), key=lambda w: (w.host, w.worker_id))


def topology_states(workers: Iterable[WorkerStatus], now: float) -> dict[str, dict[str, Any]]:
    """Per topology, over the live workers: the worst state, restarts and the latest error.

    >>> w = WorkerStatus("w", 1, "h", "", "", "p", 0.0, 10.0, "running", {
    ...     "topology/t": {"state": "failed", "restarts": 3, "last_error": "boom",
    ...                    "last_error_at": 9.0}})
    >>> state = topology_states([w], now=11.0)["t"]
    >>> state["state"], state["restarts"], state["last_error"]
    ('failed', 3, 'boom')
    """
    order = {"failed": 0, "starting": 1, "ok": 2}
    states: dict[str, dict[str, Any]] = {}
    for worker in workers:
        if worker.condition(now) != "running":
            continue
        for name, component in worker.components.items():
            parts = name.split("/")
            if len(parts) != 2 or parts[0] != "topology":
                continue
            held = states.setdefault(
                parts[1], {"state": "ok", "restarts": 0, "last_error": None, "at": -1.0}
            )
            state = str(component.get("state", "starting"))
            if order.get(state, 1) < order.get(held["state"], 1):
                held["state"] = state
            held["restarts"] += int(component.get("restarts") or 0)
            at = component.get("last_error_at") or -1.0
            if component.get("last_error") and at > held["at"]:
                held["last_error"], held["at"] = component["last_error"], at
    return states


async def system_status(settings: Settings) -> SystemStatus:
    """Everything ``weave-stream status`` shows, read from the broker."""
    now = time.time()
    workers, registered = await asyncio.gather(
        read_worker_statuses(settings), read_registry(settings)
    )
    topics = settings.topics
    groups: dict[str, tuple[str, str]] = {
        "ingest": (topics.worker_group, topics.calls),
        "notifier": (topics.worker_group, topics.alerts),
        # The store sink's own offsets live in the store; those it commits to Kafka
        # afterwards give its lag on the valid calls.
        "store-sink": (topics.store_group, topics.valid),
    }
    for name in registered:
        groups[f"topology/{name}"] = (topics.topology_group(name), topics.valid)
    lags = {agent: await _lag(settings, *where) for agent, where in groups.items()}
    agents: list[AgentRow] = []
    problems: list[str] = []
    live = [w for w in workers if w.condition(now) == "running"]
    for worker in workers:
        condition = worker.condition(now)
        if condition not in ("running", "stopped"):
            problems.append(f"worker {worker.worker_id} on {worker.host}: {condition}")
        if condition != "running":
            continue
        for name, component in sorted(worker.components.items()):
            row = AgentRow(
                worker.worker_id,
                name,
                str(component.get("state", "starting")),
                int(component.get("restarts") or 0),
                lags.get(name),
                component.get("detail") or component.get("last_error"),  # waiting: for what
            )
            agents.append(row)
            if row.state == "failed":
                problems.append(f"{name} on worker {worker.worker_id}: {row.last_error}")
    if not live:
        problems.append(
            f"no worker is running on prefix {settings.topic_prefix!r}: start one with "
            "`weave-stream worker`"
        )
    else:
        running = {a.agent.removeprefix("topology/") for a in agents}
        for name in sorted(set(registered) - running):
            problems.append(f"topology {name} is registered but no worker runs it yet")
    reconciliation = await reconciliation_status(
        settings, sorted(registered), [w.url for w in live]
    )
    for name, found in reconciliation.items():
        if found.missing and (found.repaired or 0) < found.missing:
            problems.append(
                f"topology {name}: the reconciler found {found.missing} values missing and "
                f"repaired {found.repaired or 0}; see the topology worker's log (\"lost values "
                f'of"), then `weave-stream backfill {name}` writes only what is missing'
            )
    return SystemStatus(
        settings.broker or "",
        settings.topic_prefix,
        workers,
        agents,
        registered,
        problems,
        reconciliation,
    )


async def _lag(settings: Settings, group: str, topic: str) -> int | None:
    try:
        return (await group_progress(settings, group, topic))[1]
    except (KafkaError, TimeoutError, OSError):  # no answer now: shown as unknown ("-")
        return None
