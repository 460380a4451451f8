"""Registered topologies for the streaming tests: the assets, registering, awaiting values.

``tests/assets/wordy.py`` is the cheap topology most streaming tests run: ``words``
(a word count) and ``size`` (a class from it, failing on 13-word documents).
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from pathlib import Path

import yaml

from tests.support.processes import child_commands
from tests.support.waiting import wait_until
from weave_stream.columns.derive import DerivedValue
from weave_stream.columns.values import read_derived
from weave_stream.config import Settings
from weave_stream.demo.samples import corpus_documents, sample_calls
from weave_stream.runners.workers import WorkerProcess
from weave_stream.topology.registrations import register, registration_for

__all__ = [
    "ASSETS",
    "WORDY",
    "covers",
    "documents",
    "register_file",
    "topology_workers",
    "wait_for_values",
    "word_count_topology",
]

ASSETS = Path(__file__).resolve().parent.parent / "assets"
WORDY = ASSETS / "wordy.py"


def register_file(settings: Settings, path: Path) -> str:
    """Register the topology of ``path`` as ``weave-stream register`` does; its version."""
    _, registration = registration_for(str(path), settings)
    asyncio.run(register(settings, registration))
    return registration.version


def word_count_topology(folder: Path, name: str) -> Path:
    """A topology file named ``name`` with wordy's ``words`` column alone (a second,
    independent consumer of the same calls)."""
    spec = {
        "name": name,
        "source": {"op_name": "text-extract"},
        "columns": [
            {
                "name": "words",
                "op": "tests.assets.wordy:word_count",
                "args": {"text": "inputs.document"},
            }
        ],
    }
    path = folder / f"{name}.yaml"
    path.write_text(yaml.safe_dump(spec, sort_keys=False))
    return path


def topology_workers(worker: WorkerProcess) -> set[str]:
    """Names of the topologies whose worker process runs now under ``worker``."""
    assert worker.process is not None, "the worker was never started"
    return {
        argv[argv.index("topology-worker") + 1]
        for argv in child_commands(worker.process.pid).values()
        if "topology-worker" in argv[:-1]
    }


def documents(categories: list[str], seed: str, count: int | None = None) -> list[dict]:
    """Sample calls of real English documents of ``categories`` (the first ``count``)."""
    return sample_calls(corpus_documents("english", categories)[:count], seed=seed)


def covers(
    calls: list[dict], columns: list[str], op_ref: str | None = None
) -> Callable[[list[DerivedValue]], bool]:
    """Whether values hold every (call, column) of ``calls`` (under ``op_ref``, if given)."""
    wanted = {(c["id"], column) for c in calls for column in columns}

    def done(values: list[DerivedValue]) -> bool:
        have = {(v.call_id, v.column) for v in values if op_ref is None or v.op_ref == op_ref}
        return wanted <= have

    return done


def wait_for_values(
    settings: Settings,
    topology: str,
    columns: list[str],
    done: Callable[[list[DerivedValue]], bool],
    timeout: float = 90.0,
) -> list[DerivedValue]:
    """Poll the derived topics of ``topology`` until ``done(values)``; the values then."""
    return wait_until(
        lambda: asyncio.run(read_derived(settings, topology, columns)),
        timeout,
        f"the values awaited from {topology} {columns}",
        until=done,
        interval=0.5,
        describe=lambda values: f"{len(values)} values",
    )
