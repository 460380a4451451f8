"""``weave-stream demo --weave``: a small application traced by the real weave client.

The embedded broker and a worker start; the worker's web port serves the collector.
The text-extract topology is registered, and ``demo/weave_app.py`` runs in a Python
that has the ``weave`` package (this one, with ``pip install 'weave-stream[weave]'``;
or ``WEAVE_STREAM_WEAVE_PYTHON``; or the venv the tests build under
``~/.cache/weave-stream/``), pointed at the worker by the two environment variables a
user sets. Its calls stream through ingest into the topology, whose derived values
are shown, with the code of the op the client sent.
"""

from __future__ import annotations

import asyncio
import importlib.util
import json
import os
import random
import subprocess
import sys
from pathlib import Path

import click

from weave_stream.cli.demo import (
    _follow_values,
    _register,
    _show_values,
    _step,
    _values_summary,
)
from weave_stream.cli.options import connected, fail
from weave_stream.collector.objects import read_op_code
from weave_stream.config import Settings
from weave_stream.demo.samples import corpus_documents
from weave_stream.errors import WeaveStreamError
from weave_stream.runners.workers import WorkerProcess

__all__ = ["run_weave_demo", "weave_python"]

APP = Path(__file__).resolve().parent.parent / "demo" / "weave_app.py"
PROJECT = "demo/support-bot"


def weave_python() -> str | None:
    """An interpreter that can import ``weave``: this one, a configured one, the tests' venv."""
    if importlib.util.find_spec("weave") is not None:
        return sys.executable
    configured = os.environ.get("WEAVE_STREAM_WEAVE_PYTHON")
    if configured:
        return configured
    cached = sorted(Path("~/.cache/weave-stream").expanduser().glob("weave-client-*/bin/python"))
    return str(cached[-1]) if cached else None


def run_weave_demo(settings: Settings, calls: int, topology_path: Path, out_dir: Path) -> None:
    """Trace ``calls`` extractions with the real client and follow them to derived values."""
    python = weave_python()
    if python is None:
        fail(
            "the weave client is not installed: pip install 'weave-stream[weave]' (or point "
            "WEAVE_STREAM_WEAVE_PYTHON at a Python that has it)"
        )
    assert python is not None
    documents = corpus_documents("english")
    random.Random(5).shuffle(documents)
    picked = [{"text": d.text, "topic": d.category} for d in documents[:calls]]
    documents_file = out_dir / "weave-demo-documents.json"
    documents_file.write_text(json.dumps(picked))
    _step("1/5", "broker")
    # Its own broker unless one is named, as the demo's: a running one may hold another
    # user's topics.
    with connected(settings, may_start=True, discover=False) as settings:
        _step("2/5", "worker (its web port serves the collector)")
        with WorkerProcess(settings, log_path=out_dir / "worker.log") as worker:
            try:
                worker.wait_ready(timeout=90)
            except WeaveStreamError as exc:
                fail(str(exc))
            _step("3/5", f"registering {topology_path}")
            topology = _register(settings, topology_path)
            _step("4/5", f"a Weave application traces {calls} calls ({python})")
            click.echo("  the two lines that point it at weave-stream:")
            click.echo(f"    export WF_TRACE_SERVER_URL={worker.url} WANDB_BASE_URL={worker.url}")
            click.echo("    export WANDB_API_KEY=any-value   # the collector takes loopback only")
            env = {
                **os.environ,
                "WF_TRACE_SERVER_URL": worker.url,
                "WANDB_BASE_URL": worker.url,
                "WANDB_API_KEY": "weave-stream-demo",
                "WANDB_ERROR_REPORTING": "false",  # the client's own Sentry reports
                "WEAVE_PRINT_CALL_LINK": "false",
            }
            done = subprocess.run(
                [python, str(APP), PROJECT, str(documents_file)],
                env=env,
                capture_output=True,
                text=True,
                timeout=600,
            )
            if done.returncode != 0:
                fail(f"the traced application failed:\n{done.stdout[-2000:]}{done.stderr[-3000:]}")
            click.echo(f"  {done.stdout.strip()}")
            _step("5/5", f"derived values of {topology.name}")
            selected = calls - calls // 10  # failed extractions are filtered out
            values = _follow_values(settings, topology, selected)
            _show_values(topology, values)
            ok = _values_summary(topology, values, selected)
            _show_op_code(settings, values[0].call_id if values else None)
    if not ok:
        fail("not every call got its derived values: see the worker log in " + str(out_dir))


def _show_op_code(settings: Settings, call_id: str | None) -> None:
    """The code of the op behind a call, as the collector kept it."""
    from weave_stream.broker.kafka import read_topic
    from weave_stream.ingest.call import call_from_json

    async def op_ref() -> str | None:
        async for record in read_topic(settings, settings.topics.valid, idle_timeout=2.0):
            if record.key and record.key.decode() == call_id and record.value:
                return call_from_json(record.value).op_name
        return None

    ref = asyncio.run(op_ref()) if call_id else None
    found = asyncio.run(read_op_code(settings, ref)) if ref else None
    if found is not None:
        click.echo(f"  the op behind call {call_id}: {ref}")
        for content in found.files.values():
            click.echo("    " + "\n    ".join(content.strip().splitlines()[:12]))
