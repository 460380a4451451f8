"""``weave-stream status``: the broker, the workers and every agent, and what needs a look."""

from __future__ import annotations

import asyncio
import time

import click
import orjson

from weave_stream.broker.discovery import running_files
from weave_stream.cli.options import connected, settings_options
from weave_stream.config import Settings
from weave_stream.runners.status import SystemStatus, system_status

__all__ = ["COMMANDS", "status"]


@click.command()
@click.option("--format", "output_format", type=click.Choice(["table", "json"]), default="table")
@settings_options()
def status(output_format: str, settings: Settings) -> None:
    """What runs and how it is: the broker, the workers of --prefix, and each agent
    (ingest, notifier, one per topology) with its state, restarts, lag and last error,
    and per topology what the reconciler has not checked yet, found missing and repaired.

    The first thing to run when something looks stuck. Exits with status 1 when
    something needs a look (a failed agent, a silent worker, no worker at all).
    """
    with connected(settings) as settings:
        found = asyncio.run(system_status(settings))
    if output_format == "json":
        click.echo(orjson.dumps(found.to_dict(), option=orjson.OPT_INDENT_2).decode())
    else:
        _show(found, settings)
    if found.problems:
        raise SystemExit(1)


def _show(found: SystemStatus, settings: Settings) -> None:
    now = time.time()
    click.secho(f"broker {found.broker}, prefix {found.prefix}", bold=True)
    if found.workers:
        click.echo("workers:")
        for worker in found.workers:
            up = _ago(now - worker.started_at)
            click.echo(
                f"  {worker.worker_id:<16} {worker.host}  pid {worker.pid}  {worker.url}  "
                f"{worker.condition(now)} (started {up} ago)"
            )
    else:
        others = [
            f"{w.worker_id} (prefix {w.prefix})"
            for running in running_files(settings)
            for w in running.read().workers
            if w.prefix != settings.topic_prefix
        ]
        hint = f"; on this machine: {', '.join(others)} -- pass --prefix" if others else ""
        click.echo(f"workers: none has reported on prefix {settings.topic_prefix}{hint}")
    if found.agents:
        click.echo("agents:")
        click.echo(
            f"  {'worker':<16} {'agent':<28} {'state':<9} {'restarts':>8} {'lag':>7}  last error "
            "(waiting: for what)"
        )
        for row in found.agents:
            lag = "-" if row.lag is None else str(row.lag)
            colour = {"failed": "red", "starting": "yellow", "waiting": "yellow"}.get(row.state)
            line = (
                f"  {row.worker:<16} {row.agent:<28} {row.state:<9} {row.restarts:>8} "
                f"{lag:>7}  {row.last_error or ''}"
            )
            click.secho(line, fg=colour)
    if found.registered:
        listing = ", ".join(f"{n} ({r.version})" for n, r in sorted(found.registered.items()))
        click.echo(f"registered topologies: {listing}")
    for name, reconciled in sorted(found.reconciliation.items()):
        click.secho(
            f"reconciliation of {name}: {_count(reconciled.unchecked)} processed calls not "
            f"checked yet; values found missing {_count(reconciled.missing)}, repaired "
            f"{_count(reconciled.repaired)} (since the workers started)",
            fg="red" if (reconciled.missing or 0) > (reconciled.repaired or 0) else None,
        )
    if found.problems:
        click.secho("needs a look:", fg="red", bold=True)
        for problem in found.problems:
            click.echo(f"  - {problem}")
    else:
        click.secho("all agents ok", fg="green")


def _count(value: int | None) -> str:
    return "-" if value is None else str(value)


def _ago(seconds: float) -> str:
    if seconds < 120:
        return f"{seconds:.0f}s"
    if seconds < 7200:
        return f"{seconds / 60:.0f}m"
    return f"{seconds / 3600:.1f}h"


COMMANDS = [status]
