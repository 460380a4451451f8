"""``weave-stream broker`` and ``weave-stream worker``."""

from __future__ import annotations

import asyncio
import os
import signal
import threading
from collections.abc import Callable
from pathlib import Path

import click

from weave_stream.broker.discovery import BrokerEntry, WorkerEntry, recorded
from weave_stream.broker.embedded import EmbeddedBroker, free_port
from weave_stream.broker.kafka import COMPACTED, ensure_topics
from weave_stream.cli.options import connected, fail, settings_options
from weave_stream.config import Settings, load_settings
from weave_stream.errors import WeaveStreamError

__all__ = ["COMMANDS", "broker", "worker"]


@click.command()
@click.option("--port", type=int, default=None, help="Port to listen on (default: a free one).")
@click.option(
    "--log",
    "log_path",
    type=click.Path(dir_okay=False, path_type=Path),
    default=None,
    help="Broker log file (default: a temporary file).",
)
def broker(port: int | None, log_path: Path | None) -> None:
    """Run the embedded Kafka-compatible broker in the foreground (memory only).

    Prints its address and records it (in <data_dir>/running.json and the per-user
    state file), so that workers and commands in other terminals find it without
    --broker. Stops on Ctrl-C or SIGTERM; everything it held is lost.
    """
    try:
        settings = load_settings()
    except WeaveStreamError as exc:
        raise click.UsageError(str(exc)) from None
    embedded = EmbeddedBroker(log_path=log_path, port=port)
    try:
        embedded.start()
    except WeaveStreamError as exc:
        fail(str(exc))
    click.echo(embedded.url)
    click.echo(
        f"memory only: lost when this stops; log: {embedded.log_path}. Other commands on "
        f"this machine find it; elsewhere: export WEAVE_STREAM_BROKER={embedded.url}",
        err=True,
    )
    stop = threading.Event()
    for signum in (signal.SIGINT, signal.SIGTERM):
        signal.signal(signum, lambda *_: stop.set())
    entry = BrokerEntry(embedded.url, os.getpid(), "weave-stream broker", str(embedded.log_path))
    try:
        with recorded(settings, entry):
            stop.wait()
    finally:
        embedded.stop()


@click.command()
@click.option(
    "--verbose",
    is_flag=True,
    help="Faust's log lines on this terminal too (default: in <data_dir>/logs/<worker_id>.log).",
)
@settings_options(
    "partitions",
    "store",
    "data_dir",
    "web_host",
    "web_port",
    "worker_id",
    "log_level",
    "shutdown_timeout_seconds",
)
def worker(verbose: bool, settings: Settings) -> None:
    """Run a worker: ingest, registered topologies, tables, /metrics and /readyz.

    Without --broker it uses the broker running on this machine (`weave-stream
    broker`, or another worker's), else starts the embedded one and records it for
    the other commands. Several workers with the same --prefix share the partitions.
    Stops on SIGTERM or Ctrl-C within --shutdown-timeout-seconds, committing what it
    processed; a second signal exits at once.
    """
    from weave_stream.runners.streaming import run_worker

    if settings.web_port == 0:  # pick it now, so that what is printed is what is served
        settings = settings.model_copy(update={"web_port": free_port()})
    with connected(settings, may_start=True) as settings:
        start_worker(settings, lambda s: run_worker(s, verbose=verbose))


def start_worker(settings: Settings, run: Callable[[Settings], None]) -> None:
    """Create the worker's topics, record the worker, then hand over to the Faust worker ``run``."""
    topics = settings.topics
    try:
        asyncio.run(
            ensure_topics(settings, [topics.calls, topics.valid, topics.dlq, topics.alerts])
        )
        asyncio.run(ensure_topics(settings, [topics.alerts_status], COMPACTED))
        asyncio.run(ensure_topics(settings, [topics.workers], COMPACTED, partitions=1))
    except Exception as exc:  # the broker is unreachable: say which and where
        fail(f"cannot create topics on {settings.broker}: {exc!r}")
    url = f"http://{settings.web_host}:{settings.web_port}"
    log_file = settings.data_dir / "logs" / f"{settings.worker_id}.log"
    click.echo(
        f"worker {settings.worker_id}: prefix {settings.topic_prefix}, {url}/metrics "
        f"(/readyz, /healthz)\n  log: {log_file}",
        err=True,
    )
    entry = WorkerEntry(
        worker_id=settings.worker_id,
        pid=os.getpid(),
        broker=settings.broker or "",
        prefix=settings.topic_prefix,
        url=url,
        log=str(log_file),
        data_dir=str(settings.data_dir),
    )
    with recorded(settings, entry):
        run(settings)


COMMANDS = [broker, worker]
