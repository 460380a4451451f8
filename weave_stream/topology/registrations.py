"""The topology registry: a compacted topic mapping topology name → registered spec.

A registration carries the topology's *source* (YAML or Python, exactly as the user
wrote it) and its own *modules* -- the files beside it that its ops come from
(:mod:`weave_stream.topology.modules`) -- so that a worker, wherever it runs, loads
it with the same loader as the local runner: the same files mean the same topology
everywhere, and a change to any of them is a new version. Before a registration is
written, :func:`check_loadable` loads it as a worker would (a fresh process, another
directory); one that would not load is refused with the reason. Unregistering
writes a tombstone.

Registering Python topologies ships code to the workers: anyone who may write the
registry topic may run code on them. Restrict write access to that topic (Kafka
ACLs) in production.
"""

from __future__ import annotations

import hashlib
import os
import socket
import subprocess
import sys
import tempfile
from collections.abc import AsyncIterator
from dataclasses import asdict, dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, Literal

import orjson
from aiokafka import AIOKafkaConsumer, AIOKafkaProducer, TopicPartition

from weave_stream.broker.kafka import COMPACTED, ensure_topics, read_topic
from weave_stream.config import Settings
from weave_stream.errors import TopologyError
from weave_stream.topology.loader import find_topology_file, load_topology
from weave_stream.topology.modules import local_modules, materialize, modules_digest
from weave_stream.topology.spec import Topology

__all__ = [
    "Registration",
    "SourceFormat",
    "check_loadable",
    "read_registry",
    "register",
    "registered_topology",
    "registration_for",
    "topology_from_registration",
    "topology_version",
    "unregister",
    "watch_registry",
]

SourceFormat = Literal["yaml", "python"]


@dataclass(frozen=True)
class Registration:
    """One registered topology: its name, source, version and when it was registered."""

    name: str
    source: str
    source_format: SourceFormat
    version: str
    registered_at: str
    registered_by: str = ""
    modules: dict[str, str] = field(default_factory=dict)  # relative path -> source

    @property
    def registered_epoch(self) -> float:
        """``registered_at`` as epoch seconds."""
        return datetime.fromisoformat(self.registered_at).timestamp()

    def to_json(self) -> bytes:
        return orjson.dumps(asdict(self))

    @classmethod
    def from_json(cls, raw: bytes) -> Registration:
        data = orjson.loads(raw)
        known = set(cls.__dataclass_fields__)
        return cls(**{k: v for k, v in data.items() if k in known})

    @classmethod
    def create(
        cls,
        name: str,
        source: str,
        source_format: SourceFormat,
        version: str | None = None,
        modules: dict[str, str] | None = None,
    ) -> Registration:
        """A registration stamped now; ``version`` defaults to a digest of the source."""
        digest = version or hashlib.sha256(source.encode()).hexdigest()[:12]
        return cls(
            name=name,
            source=source,
            source_format=source_format,
            version=digest,
            registered_at=datetime.now(UTC)
            .isoformat(timespec="milliseconds")
            .replace("+00:00", "Z"),
            registered_by=socket.gethostname(),
            modules=dict(modules or {}),
        )

    @property
    def file_name(self) -> str:
        """The topology's file name when written out (``<name>.yaml`` or ``<name>.py``)."""
        return f"{self.name}{'.py' if self.source_format == 'python' else '.yaml'}"


async def register(settings: Settings, registration: Registration) -> None:
    """Write ``registration`` to the registry topic (creating the topic if needed)."""
    await _write(settings, registration.name, registration.to_json())


async def unregister(settings: Settings, name: str) -> None:
    """Write a tombstone for ``name``: workers stop computing it; its values stay."""
    await _write(settings, name, None)


async def _write(settings: Settings, name: str, value: bytes | None) -> None:
    await ensure_topics(settings, [settings.topics.registry], COMPACTED)
    producer = AIOKafkaProducer(bootstrap_servers=settings.broker_address, acks="all")
    await producer.start()
    try:
        await producer.send_and_wait(settings.topics.registry, value, key=name.encode())
    finally:
        await producer.stop()


async def read_registry(settings: Settings) -> dict[str, Registration]:
    """The registered topologies now: the latest record per name, tombstones applied."""
    await ensure_topics(settings, [settings.topics.registry], COMPACTED)
    latest: dict[str, Registration | None] = {}
    async for record in read_topic(settings, settings.topics.registry):
        if record.key is not None:
            value = record.value
            latest[record.key.decode()] = Registration.from_json(value) if value else None
    return {name: entry for name, entry in latest.items() if entry is not None}


async def watch_registry(
    settings: Settings, poll_seconds: float = 1.0
) -> AsyncIterator[dict[str, Registration]]:
    """Yield the registered topologies once caught up, then again after every poll.

    Reads every partition of the registry from the beginning, outside any consumer
    group: every worker sees every registration.
    """
    await ensure_topics(settings, [settings.topics.registry], COMPACTED)
    consumer = AIOKafkaConsumer(
        bootstrap_servers=settings.broker_address,
        enable_auto_commit=False,
        auto_offset_reset="earliest",
    )
    await consumer.start()
    try:
        await consumer.topics()
        partitions = consumer.partitions_for_topic(settings.topics.registry) or {0}
        assigned = [TopicPartition(settings.topics.registry, p) for p in partitions]
        consumer.assign(assigned)
        await consumer.seek_to_beginning()
        state: dict[str, Registration] = {}
        caught_up = False
        while True:
            batches = await consumer.getmany(timeout_ms=int(poll_seconds * 1000))
            for records in batches.values():
                for record in records:
                    if record.key is None:
                        continue
                    name = record.key.decode()
                    if record.value:
                        state[name] = Registration.from_json(record.value)
                    else:
                        state.pop(name, None)
            if not caught_up:
                caught_up = True
                for tp in assigned:
                    highwater = consumer.highwater(tp)
                    if highwater is None or await consumer.position(tp) < highwater:
                        caught_up = False
            if caught_up:
                yield dict(state)
    finally:
        await consumer.stop()


def topology_version(topology: Topology, modules: dict[str, str] | None = None) -> str:
    """12 hex digits over the topology's spec, the refs of its ops and its shipped modules."""
    spec: dict[str, Any] = {
        "spec": topology.to_dict(),
        "ops": [c.op.ref for c in topology.compiled],
    }
    if modules:  # only when there are some: versions of topologies without stay as they were
        spec["modules"] = modules_digest(modules)
    canonical = orjson.dumps(spec, option=orjson.OPT_SORT_KEYS, default=str)
    return hashlib.sha256(canonical).hexdigest()[:12]


def registration_for(path_or_name: str, settings: Settings) -> tuple[Topology, Registration]:
    """Load and validate a topology file and build its registration (with its modules)."""
    path = find_topology_file(path_or_name)
    topology = load_topology(path, settings)
    modules = local_modules(path, topology)
    source_format: SourceFormat = "python" if path.suffix == ".py" else "yaml"
    registration = Registration.create(
        topology.name,
        path.read_text(encoding="utf-8"),
        source_format,
        topology_version(topology, modules),
        modules,
    )
    return topology, registration


def topology_from_registration(registration: Registration, settings: Settings) -> Topology:
    """Load a registered topology exactly as its file would load locally, beside its modules.

    The files are written to ``<data_dir>/topologies/<name>/<version>/`` and stay there.
    """
    folder = settings.data_dir / "topologies" / registration.name / registration.version
    path = materialize(folder, registration.file_name, registration.source, registration.modules)
    return load_topology(path, settings)


def check_loadable(registration: Registration, settings: Settings, timeout: float = 120.0) -> None:
    """Load ``registration`` as a worker would -- a new process in an empty directory --
    and raise :class:`TopologyError` with the reason when it does not load.

    What loads here only because of this process (a module importable from the current
    directory, not beside the topology nor installed) is caught so, before any worker
    crash-loops on it.
    """
    with tempfile.TemporaryDirectory(prefix="weave-stream-check-") as folder:
        record = Path(folder) / "registration.json"
        record.write_bytes(registration.to_json())
        environment = {**os.environ, **settings.as_environment()}
        environment["WEAVE_STREAM_DATA_DIR"] = str(Path(folder) / "data")
        environment.pop("WEAVE_STREAM_BROKER", None)
        script = (
            "import sys, pathlib\n"
            "from weave_stream.config import load_settings\n"
            "from weave_stream.errors import WeaveStreamError\n"
            "from weave_stream.topology.registrations import Registration, "
            "topology_from_registration\n"
            "registration = Registration.from_json(pathlib.Path(sys.argv[1]).read_bytes())\n"
            "try:\n"
            "    topology_from_registration(registration, load_settings())\n"
            "except WeaveStreamError as exc:\n"
            "    sys.exit(str(exc))\n"
        )
        answer = subprocess.run(
            [sys.executable, "-c", script, str(record)],
            cwd=folder,
            env=environment,
            capture_output=True,
            text=True,
            timeout=timeout,
        )
    if answer.returncode != 0:
        reason = answer.stderr.strip().splitlines() or [f"exit status {answer.returncode}"]
        detail = "\n  ".join(reason[-12:])
        raise TopologyError(
            f"topology {registration.name!r} would not load on a worker (checked in a new "
            f"process, in another directory):\n  {detail}\nput the modules its ops need beside "
            "the topology file (they travel with the registration), or install them where "
            "the workers run"
        )


async def registered_topology(settings: Settings, name: str) -> Topology:
    """The topology registered as ``name``, loaded as its workers load it.

    Raises :class:`TopologyError` naming what is registered when ``name`` is not.
    """
    registry = await read_registry(settings)
    registration = registry.get(name)
    if registration is None:
        raise TopologyError(
            f"no registered topology {name!r} "
            f"(registered: {', '.join(sorted(registry)) or 'none'}); "
            f"register it with `weave-stream register FILE`, or query a file with --input"
        )
    return topology_from_registration(registration, settings)
