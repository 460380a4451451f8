"""``weave-stream broker`` and ``weave-stream worker``."""

from __future__ import annotations

import asyncio
import signal
import threading
from pathlib import Path

import click

from weave_stream.broker.embedded import EmbeddedBroker
from weave_stream.broker.kafka import COMPACTED, ensure_topics
from weave_stream.cli.options import connected, fail, settings_options
from weave_stream.config import Settings
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

    Prints its address; point other commands at it with --broker or
    WEAVE_STREAM_BROKER. Stops on Ctrl-C or SIGTERM; everything it held is lost.
    """
    embedded = EmbeddedBroker(log_path=log_path, port=port)
    try:
        embedded.start()
    except WeaveStreamError as exc:
        fail(str(exc))
    click.echo(embedded.url)
    click.echo(
        f"export WEAVE_STREAM_BROKER={embedded.url}   # memory only: lost when this stops; "
        f"log: {embedded.log_path}",
        err=True,
    )
    stop = threading.Event()
    for signum in (signal.SIGINT, signal.SIGTERM):
        signal.signal(signum, lambda *_: stop.set())
    try:
        stop.wait()
    finally:
        embedded.stop()


@click.command()
@settings_options(
    "partitions", "store", "data_dir", "web_host", "web_port", "worker_id", "log_level"
)
def worker(settings: Settings) -> None:
    """Run a worker: ingest, registered topologies, tables, /metrics and /readyz.

    Several workers with the same --prefix share the partitions. Stops gracefully
    on SIGTERM or Ctrl-C, committing what it processed.
    """
    from weave_stream.runners.streaming import run_worker

    with connected(settings) as settings:
        start_worker(settings, run_worker)


def start_worker(settings: Settings, run: object) -> None:
    """Create the worker's topics, then hand over to the Faust worker ``run``."""
    topics = settings.topics
    try:
        asyncio.run(
            ensure_topics(settings, [topics.calls, topics.valid, topics.dlq, topics.alerts])
        )
        asyncio.run(ensure_topics(settings, [topics.alerts_status], COMPACTED))
    except Exception as exc:  # the broker is unreachable: say which and where
        fail(f"cannot create topics on {settings.broker}: {exc!r}")
    click.echo(
        f"worker {settings.worker_id}: broker {settings.broker}, prefix {settings.topic_prefix}, "
        f"http://{settings.web_host}:{settings.web_port}/metrics",
        err=True,
    )
    assert callable(run)
    run(settings)


COMMANDS = [broker, worker]
