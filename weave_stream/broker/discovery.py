"""Where the running system is written down, so that a command in another terminal finds it.

A broker started by ``weave-stream broker`` (or the embedded broker a worker starts
when none is named or running) and every worker record themselves, while they run,
in two JSON files:

* ``<data_dir>/running.json``, beside the data they keep;
* the per-user state file (the ``state_file`` setting, by default
  ``$XDG_STATE_HOME/weave-stream/running.json``; tests point it elsewhere).

A command that needs a broker and was given none looks in its data dir's file first,
then in the state file, and takes the newest broker still alive (its process runs
and its port answers). Entries of processes that died are dropped when read.

>>> import tempfile, os
>>> folder = Path(tempfile.mkdtemp())
>>> running = RunningFile(folder / "running.json")
>>> running.add(BrokerEntry(url="kafka://127.0.0.1:1", pid=os.getpid(), started_by="test"))
>>> [b.url for b in running.read().brokers]
['kafka://127.0.0.1:1']
>>> running.remove(pid=os.getpid())
>>> running.read().brokers
[]
"""

from __future__ import annotations

import contextlib
import fcntl
import os
import socket
import time
from collections.abc import Iterator
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import orjson

from weave_stream.config import Settings

__all__ = [
    "BrokerEntry",
    "FoundBroker",
    "Running",
    "RunningFile",
    "WorkerEntry",
    "find_broker",
    "recorded",
    "running_files",
]

RUNNING_FILE = "running.json"


@dataclass(frozen=True)
class BrokerEntry:
    """A broker some weave-stream process started (and stops with it)."""

    url: str
    pid: int
    started_by: str
    log: str = ""
    started_at: float = field(default_factory=time.time)
    host: str = field(default_factory=socket.gethostname)


@dataclass(frozen=True)
class WorkerEntry:
    """A running ``weave-stream worker``."""

    worker_id: str
    pid: int
    broker: str
    prefix: str
    url: str
    log: str = ""
    data_dir: str = ""
    started_at: float = field(default_factory=time.time)
    host: str = field(default_factory=socket.gethostname)


@dataclass
class Running:
    """What one file says runs."""

    brokers: list[BrokerEntry] = field(default_factory=list)
    workers: list[WorkerEntry] = field(default_factory=list)


@dataclass(frozen=True)
class FoundBroker:
    """A broker found running, and where it was found."""

    url: str
    entry: BrokerEntry
    recorded_in: Path

    def describe(self) -> str:
        """Where it came from, for the one line a command prints.

        >>> FoundBroker("kafka://h:1", BrokerEntry("kafka://h:1", 7, "weave-stream broker"),
        ...             Path("/s/running.json")).describe()
        'started by weave-stream broker, pid 7; recorded in /s/running.json'
        """
        entry = self.entry
        return f"started by {entry.started_by}, pid {entry.pid}; recorded in {self.recorded_in}"


class RunningFile:
    """One ``running.json``: read, add to, remove from, under an exclusive lock."""

    def __init__(self, path: Path) -> None:
        self.path = Path(path)

    @contextlib.contextmanager
    def _locked(self) -> Iterator[None]:
        self.path.parent.mkdir(parents=True, exist_ok=True)
        with open(self.path.with_name(self.path.name + ".lock"), "a+b") as lock:
            fcntl.flock(lock, fcntl.LOCK_EX)  # other processes read-modify-write it too
            try:
                yield
            finally:
                fcntl.flock(lock, fcntl.LOCK_UN)

    def _load(self) -> Running:
        try:
            data = orjson.loads(self.path.read_bytes())
        except (OSError, orjson.JSONDecodeError):
            return Running()  # none yet, or unreadable: what runs records itself again
        return Running(
            brokers=[_entry(BrokerEntry, item) for item in data.get("brokers", [])],
            workers=[_entry(WorkerEntry, item) for item in data.get("workers", [])],
        )

    def _save(self, running: Running) -> None:
        document = {
            "brokers": [asdict(b) for b in running.brokers],
            "workers": [asdict(w) for w in running.workers],
        }
        temporary = self.path.with_name(f".{self.path.name}.{os.getpid()}")
        temporary.write_bytes(orjson.dumps(document, option=orjson.OPT_INDENT_2))
        temporary.replace(self.path)

    def read(self) -> Running:
        """The entries whose processes still run (dead ones are dropped from the file)."""
        with self._locked():
            running = self._load()
            alive = Running(
                [b for b in running.brokers if _alive(b.pid, b.host)],
                [w for w in running.workers if _alive(w.pid, w.host)],
            )
            if alive != running:
                self._save(alive)
        return alive

    def add(self, entry: BrokerEntry | WorkerEntry) -> None:
        """Record ``entry`` (replacing one of the same process and kind)."""
        with self._locked():
            running = self._load()
            if isinstance(entry, BrokerEntry):
                running.brokers = [b for b in running.brokers if b.url != entry.url]
                running.brokers.append(entry)
            else:
                running.workers = [w for w in running.workers if w.pid != entry.pid]
                running.workers.append(entry)
            self._save(running)

    def remove(self, pid: int) -> None:
        """Forget every entry of process ``pid`` (it stops)."""
        with self._locked():
            running = self._load()
            running.brokers = [b for b in running.brokers if b.pid != pid]
            running.workers = [w for w in running.workers if w.pid != pid]
            self._save(running)


def running_files(settings: Settings) -> list[RunningFile]:
    """The files to look in, in order: the data dir's, then the per-user state file."""
    paths = [settings.data_dir / RUNNING_FILE, settings.state_file]
    unique = list(dict.fromkeys(path.expanduser().absolute() for path in paths))
    return [RunningFile(path) for path in unique]


def find_broker(settings: Settings) -> FoundBroker | None:
    """The newest recorded broker that is alive and answers on its port, else None."""
    for running in running_files(settings):
        for entry in sorted(running.read().brokers, key=lambda b: -b.started_at):
            if _answers(entry.url):
                return FoundBroker(entry.url, entry, running.path)
    return None


@contextlib.contextmanager
def recorded(settings: Settings, *entries: BrokerEntry | WorkerEntry) -> Iterator[None]:
    """Record ``entries`` in every running file while the block runs."""
    files = running_files(settings)
    for running in files:
        for entry in entries:
            running.add(entry)
    try:
        yield
    finally:
        for running in files:
            for pid in {entry.pid for entry in entries}:
                with contextlib.suppress(OSError):
                    running.remove(pid)


def _entry(kind: Any, item: dict[str, Any]) -> Any:
    known = set(kind.__dataclass_fields__)
    return kind(**{k: v for k, v in item.items() if k in known})


def _alive(pid: int, host: str) -> bool:
    if host != socket.gethostname():
        return True  # another machine's process: its port is checked when it is used
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    try:  # a zombie still answers kill(0)
        state = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[-1].split()[0]
    except (OSError, IndexError):
        return True
    return state != "Z"


def _answers(url: str, timeout: float = 1.0) -> bool:
    for host_port in url.removeprefix("kafka://").split(","):
        host, _, port = host_port.rpartition(":")
        try:
            socket.create_connection((host, int(port)), timeout=timeout).close()
            return True
        except (OSError, ValueError):
            continue
    return False
