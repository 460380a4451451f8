"""A new user's first hour on the streaming path, as issue 17 walked it.

``weave-stream broker`` in one terminal; a worker given the printed address (the
export the broker suggests) started in another directory; ``register`` of a YAML
topology whose op lives in a module beside it, and ``ingest``, both with no broker
named (they find the running one); ``values`` reads the results back; ``status``
says all is well. Each step failed silently before: the exported address made the
ingest agent die on the embedded broker, the sibling op module crash-looped on the
worker, and the other commands each started a throwaway broker.
"""

from __future__ import annotations

import asyncio
import json
import os
import re
import signal
import subprocess
import sys
import urllib.request
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import orjson
import pytest

from tests.support.cli import weave_stream
from tests.support.waiting import wait_until
from weave_stream import derived_values
from weave_stream.config import Settings, load_settings
from weave_stream.demo.samples import corpus_documents, sample_calls
from weave_stream.topology.registrations import read_registry

MODERATION = """\
name: moderation
source: {op_name: text-extract}
columns:
  - name: offensiveness
    op: moderation_ops:offensiveness
    args: {text: inputs.document}
"""
MODERATION_OPS = """\
from moderation_lexicon import OFFENSIVE

from weave_stream.ops import op


@op
def offensiveness(text: str) -> float:
    words = text.lower().split()
    return sum(word.strip(".,!?") in OFFENSIVE for word in words) / max(1, len(words))
"""
MODERATION_LEXICON = 'OFFENSIVE = frozenset({"awful", "stupid", "hate", "bad"})\n'


class Terminal:
    """A long-running command, its output in a file, stopped (SIGTERM) at the end."""

    def __init__(self, args: list[str], env: dict[str, str], cwd: Path, log: Path) -> None:
        self.log = log
        with open(log, "wb") as out:
            self.process = subprocess.Popen(
                [sys.executable, "-m", "weave_stream", *args],
                env={**os.environ, **env},
                cwd=cwd,
                stdout=out,
                stderr=subprocess.STDOUT,
            )

    def output(self) -> str:
        return self.log.read_text(errors="replace")

    def wait_for(self, pattern: str, timeout: float = 120.0) -> re.Match[str]:
        def seen() -> re.Match[str] | None:
            found = re.search(pattern, self.output())
            assert found or self.process.poll() is None, f"exited:\n{self.output()[-3000:]}"
            return found

        found = wait_until(
            seen,
            timeout,
            f"{pattern!r} in the output",
            interval=0.2,
            describe=lambda _: self.output()[-3000:],
        )
        assert found is not None
        return found

    def stop(self, timeout: float = 60.0) -> int:
        if self.process.poll() is None:
            self.process.send_signal(signal.SIGTERM)
            try:
                self.process.wait(timeout)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait()
        return self.process.returncode


@pytest.fixture
def terminals() -> Iterator[list[Terminal]]:
    opened: list[Terminal] = []
    yield opened
    for terminal in reversed(opened):  # workers first, the broker last
        terminal.stop()


def test_broker_worker_register_ingest_values_status_without_naming_the_broker(
    tmp_path: Path, terminals: list[Terminal]
) -> None:
    state = {"WEAVE_STREAM_STATE_FILE": str(tmp_path / "state" / "running.json")}
    project, elsewhere = tmp_path / "project", tmp_path / "elsewhere"
    project.mkdir()
    elsewhere.mkdir()
    (project / "moderation.yaml").write_text(MODERATION)
    (project / "moderation_ops.py").write_text(MODERATION_OPS)
    (project / "moderation_lexicon.py").write_text(MODERATION_LEXICON)
    calls = sample_calls(corpus_documents("english", ["movies"]))[:30]
    (project / "calls.jsonl").write_bytes(b"\n".join(orjson.dumps(c) for c in calls) + b"\n")

    broker = Terminal(["broker"], state, elsewhere, tmp_path / "broker.out")
    terminals.append(broker)
    url = broker.wait_for(r"kafka://127\.0\.0\.1:\d+").group(0)
    assert f"export WEAVE_STREAM_BROKER={url}" in broker.output()

    # The address exported as the broker suggests; the worker in another directory.
    worker_env = {
        **state,
        "WEAVE_STREAM_BROKER": url,
        "WEAVE_STREAM_DATA_DIR": str(tmp_path / "worker-data"),
        "WEAVE_STREAM_WEB_PORT": "0",
    }
    worker = Terminal(["worker"], worker_env, elsewhere, tmp_path / "worker.out")
    terminals.append(worker)
    port = int(worker.wait_for(r"http://127\.0\.0\.1:(\d+)/metrics").group(1))
    assert port != 0, "--web-port 0 prints the port it serves"
    worker.wait_for(r"worker \S+ ready after [\d.]+s", timeout=180)
    startup = worker.output()
    assert f"broker {url} (WEAVE_STREAM_BROKER)" in startup
    assert "[INFO]" not in startup, "Faust's INFO lines go to the log file, not the terminal"
    assert len(startup.splitlines()) <= 8, startup

    # No broker named: register and ingest find the running one, and say which.
    registered = weave_stream("register", "moderation.yaml", env=state, cwd=project)
    assert registered.returncode == 0, registered.stderr
    assert f"broker {url} (started by weave-stream broker" in registered.stderr
    assert "moderation_lexicon.py, moderation_ops.py" in registered.stdout
    ingested = weave_stream("ingest", "calls.jsonl", env=state, cwd=project)
    assert ingested.returncode == 0, ingested.stderr
    assert f"broker {url} (started by weave-stream broker" in ingested.stderr

    def listed_values() -> list[dict]:
        listed = weave_stream("values", "moderation", "--format", "json", env=state, cwd=project)
        return json.loads(listed.stdout) if listed.returncode == 0 else []

    rows = wait_until(
        listed_values,
        240,
        f"`values` to list all {len(calls)} calls' values",
        until=lambda found: len(found) >= len(calls),
        interval=1.0,
        describe=lambda found: f"{len(found)} values; worker: {worker.output()[-3000:]}",
    )
    assert len(rows) == len(calls)
    by_call = {row["call_id"]: row for row in rows}
    assert set(by_call) == {c["id"] for c in calls}
    for call in calls:
        row = by_call[call["id"]]
        assert row["error"] is None
        assert row["op_name"] == "text-extract" and row["trace_id"] == call["trace_id"]
        assert row["project_id"] == call["project_id"] and row["column"] == "offensiveness"
        words = call["inputs"]["document"].lower().split()
        bad = sum(w.strip(".,!?") in {"awful", "stupid", "hate", "bad"} for w in words)
        assert row["value"] == pytest.approx(bad / max(1, len(words)))

    frame = derived_values(
        "moderation", settings=load_settings(env={}, broker=url, data_dir=tmp_path / "d")
    )
    assert sorted(frame["call_id"]) == sorted(by_call) and frame["op_name"].notna().all()

    # `status` reads what the worker last published: its supervisor asks each topology
    # process's /readyz every few seconds and the worker publishes a change within 2 s.
    def status_now() -> tuple[subprocess.CompletedProcess[str], dict[str, dict[str, Any]]]:
        status = weave_stream("status", "--format", "json", env=state, cwd=project)
        rows = json.loads(status.stdout)["agents"] if status.stdout.strip() else []
        return status, {row["agent"]: row for row in rows}

    _, agents = wait_until(
        status_now,
        60,
        "`status` to show every agent ok",
        until=lambda found: (
            found[0].returncode == 0
            and found[1].get("topology/moderation", {}).get("state") == "ok"
        ),
        describe=lambda found: found[0].stdout + found[0].stderr,
    )
    assert agents["ingest"]["state"] == "ok" and agents["ingest"]["lag"] == 0
    with urllib.request.urlopen(f"http://127.0.0.1:{port}/readyz", timeout=5) as answer:
        assert json.loads(answer.read())["components"]["ingest"]["state"] == "ok"

    assert worker.stop() == 0
    assert broker.stop() == 0
    # Nothing runs now: a command that reads says so, and starts no broker of its own.
    nothing = weave_stream("topologies", env=state, cwd=project)
    assert nothing.returncode == 1
    assert "no broker is running" in nothing.stderr and "weave-stream broker" in nothing.stderr


def test_register_refuses_a_topology_whose_op_module_would_not_load_on_a_worker(
    tmp_path: Path, make_settings: Callable[..., Settings]
) -> None:
    settings = make_settings()
    # The op module sits in the current directory, not beside the topology and not
    # installed: it loads here (the current directory is on sys.path), on no worker.
    (tmp_path / "topologies").mkdir()
    (tmp_path / "topologies" / "moderation.yaml").write_text(
        MODERATION.replace("moderation_ops:", "cwd_only_ops:")
    )
    own_lexicon = MODERATION_OPS.replace(
        "from moderation_lexicon import OFFENSIVE", "OFFENSIVE = {'bad'}"
    )
    (tmp_path / "cwd_only_ops.py").write_text(own_lexicon)
    flags = ["--broker", settings.broker or "", "--prefix", settings.topic_prefix]
    refused = weave_stream("register", "topologies/moderation.yaml", *flags, cwd=tmp_path)
    assert refused.returncode == 1, refused.stdout
    assert "would not load on a worker" in refused.stderr
    assert "cwd_only_ops" in refused.stderr and "beside the topology" in refused.stderr
    assert asyncio.run(read_registry(settings)) == {}
