"""Where commands find the running broker: the data dir's record first, then the state file;
only a live process whose port answers counts."""

from __future__ import annotations

import os
import socket
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

from weave_stream.broker.discovery import (
    BrokerEntry,
    RunningFile,
    WorkerEntry,
    find_broker,
    recorded,
)
from weave_stream.config import Settings, load_settings


@pytest.fixture
def listening() -> Iterator[str]:
    """A port that answers (a plain listening socket stands for the broker's)."""
    with socket.socket() as server:
        server.bind(("127.0.0.1", 0))
        server.listen()
        yield f"kafka://127.0.0.1:{server.getsockname()[1]}"


def _settings(tmp_path: Path) -> Settings:
    return load_settings(env={}, data_dir=tmp_path / "data", state_file=tmp_path / "state.json")


def test_the_data_dir_record_comes_first_then_the_state_file(
    tmp_path: Path, listening: str
) -> None:
    settings = _settings(tmp_path)
    assert find_broker(settings) is None
    RunningFile(settings.state_file).add(BrokerEntry(listening, os.getpid(), "weave-stream broker"))
    found = find_broker(settings)
    assert found is not None and found.url == listening
    assert found.recorded_in == settings.state_file.absolute()
    with socket.socket() as other:
        other.bind(("127.0.0.1", 0))
        other.listen()
        mine = f"kafka://127.0.0.1:{other.getsockname()[1]}"
        RunningFile(settings.data_dir / "running.json").add(
            BrokerEntry(mine, os.getpid(), "weave-stream worker", started_at=0.0)
        )
        found = find_broker(settings)
        assert found is not None and found.url == mine  # older, but in the data dir


def test_dead_processes_and_silent_ports_do_not_count(tmp_path: Path, listening: str) -> None:
    settings = _settings(tmp_path)
    gone = subprocess.run([sys.executable, "-c", "import os; print(os.getpid())"],
                          capture_output=True, text=True, check=True)  # fmt: skip
    running = RunningFile(settings.state_file)
    running.add(BrokerEntry(listening, int(gone.stdout), "weave-stream broker"))
    assert find_broker(settings) is None
    assert running.read().brokers == []  # the dead process's entry is dropped
    with socket.socket() as closed:
        closed.bind(("127.0.0.1", 0))
        silent = f"kafka://127.0.0.1:{closed.getsockname()[1]}"  # bound, not listening
        running.add(BrokerEntry(silent, os.getpid(), "weave-stream broker"))
        assert find_broker(settings) is None


def test_recorded_entries_live_as_long_as_the_block(tmp_path: Path, listening: str) -> None:
    settings = _settings(tmp_path)
    broker = BrokerEntry(listening, os.getpid(), "weave-stream worker")
    worker = WorkerEntry("w1", os.getpid(), listening, "weave", "http://127.0.0.1:6066")
    with recorded(settings, broker, worker):
        for path in (settings.data_dir / "running.json", settings.state_file):
            running = RunningFile(path).read()
            assert [b.url for b in running.brokers] == [listening]
            assert [w.worker_id for w in running.workers] == ["w1"]
    assert RunningFile(settings.state_file).read().brokers == []
    assert find_broker(settings) is None
