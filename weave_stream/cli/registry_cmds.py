"""``register``, ``unregister``, ``topologies`` and the hidden ``topology-worker``."""

from __future__ import annotations

import asyncio
import time

import click
import orjson

from weave_stream.broker.kafka import ensure_topics, group_progress, start_group_at
from weave_stream.cli.options import connected, fail, settings_options
from weave_stream.config import Settings
from weave_stream.errors import WeaveStreamError
from weave_stream.runners.status import read_worker_statuses, topology_states
from weave_stream.topology.registrations import (
    check_loadable,
    read_registry,
    register,
    registration_for,
    topology_from_registration,
    unregister,
)

__all__ = ["COMMANDS"]


@click.command(name="register")
@click.argument("topology")
@settings_options()
def register_command(topology: str, settings: Settings) -> None:
    """Validate TOPOLOGY (a file, or a name under topologies/) and register it.

    Running workers start computing it within seconds, from the calls that arrive
    from now on (use `weave-stream backfill` for the past). Registering a changed
    topology replaces it: changed columns write values under their new op refs.
    """
    try:
        loaded, registration = registration_for(topology, settings)
    except WeaveStreamError as exc:
        fail(f"not registered: {exc}")
    with connected(settings) as settings:
        try:
            check_loadable(registration, settings)
        except WeaveStreamError as exc:
            fail(f"not registered: {exc}")
        asyncio.run(register(settings, registration))
    columns = ", ".join(f"{c.name} ({c.op.ref})" for c in loaded.compiled)
    click.echo(f"registered {registration.name} version {registration.version}: {columns}")
    if registration.modules:
        click.echo(f"  with its modules: {', '.join(sorted(registration.modules))}")


@click.command(name="unregister")
@click.argument("name")
@settings_options()
def unregister_command(name: str, settings: Settings) -> None:
    """Stop computing topology NAME on every worker (its derived values stay)."""
    with connected(settings) as settings:
        known = asyncio.run(read_registry(settings))
        if name not in known:
            fail(f"no registered topology {name!r} (registered: {', '.join(known) or 'none'})")
        asyncio.run(unregister(settings, name))
    click.echo(f"unregistered {name}")


@click.command(name="topologies")
@click.option("--format", "output_format", type=click.Choice(["table", "json"]), default="table")
@settings_options()
def topologies_command(output_format: str, settings: Settings) -> None:
    """List registered topologies: version, registration time, calls processed, lag, and
    how their workers are (state, restarts, last error)."""
    with connected(settings) as settings:
        registry = asyncio.run(read_registry(settings))
        states = topology_states(asyncio.run(read_worker_statuses(settings)), time.time())
        rows = []
        for name, entry in sorted(registry.items()):
            processed, lag = asyncio.run(
                group_progress(
                    settings, settings.topics.topology_group(name), settings.topics.valid
                )
            )
            state = states.get(name, {})
            rows.append(
                {
                    "name": name,
                    "version": entry.version,
                    "registered_at": entry.registered_at,
                    "calls_processed": processed,
                    "lag": lag,
                    "state": state.get("state", "not running"),
                    "restarts": state.get("restarts", 0),
                    "last_error": state.get("last_error"),
                }
            )
    if output_format == "json":
        click.echo(orjson.dumps(rows, option=orjson.OPT_INDENT_2).decode())
        return
    if not rows:
        click.echo("no registered topologies (weave-stream register FILE)")
        return
    header = (
        f"{'topology':<24}{'version':<14}{'registered at':<26}{'processed':>10}{'lag':>8}"
        f"  {'state':<12}{'restarts':>8}"
    )
    click.echo(header)
    for row in rows:
        click.secho(
            f"{row['name']:<24}{row['version']:<14}{row['registered_at']:<26}"
            f"{row['calls_processed']:>10}{row['lag']:>8}  {row['state']:<12}{row['restarts']:>8}",
            fg="red" if row["state"] == "failed" else None,
        )
        if row["last_error"]:
            click.echo(f"  last error: {row['last_error']}")


@click.command(name="topology-worker", hidden=True)
@click.argument("name")
@click.option("--version", "expected_version", default=None)
@settings_options()
def topology_worker(name: str, expected_version: str | None, settings: Settings) -> None:
    """Run the worker of one registered topology (started by a worker's supervisor)."""
    from weave_stream.runners.streaming import run_worker
    from weave_stream.runners.streaming.monitor_agent import monitor_topics
    from weave_stream.runners.streaming.topology_app import create_topology_app

    if settings.broker is None:
        fail("topology-worker needs --broker (it is started by a worker)")
    registration = asyncio.run(read_registry(settings)).get(name)
    deadline = time.monotonic() + 10
    while (
        expected_version
        and (registration is None or registration.version != expected_version)
        and time.monotonic() < deadline
    ):  # the supervisor saw a newer registration than this read: read again
        time.sleep(0.5)
        registration = asyncio.run(read_registry(settings)).get(name)
    if registration is None:
        fail(f"topology {name!r} is not registered")
    assert registration is not None
    if expected_version and registration.version != expected_version:
        click.echo(
            f"topology {name}: registry has version {registration.version}, "
            f"not {expected_version}; running the registry's",
            err=True,
        )
    try:
        topology = topology_from_registration(registration, settings)
    except WeaveStreamError as exc:  # one line: the supervisor reports the log's last error
        fail(f"topology {name!r} version {registration.version} does not load: " + _one_line(exc))
    # "From now on": a new topology starts with the calls that arrived after it was
    # registered (the past is for `weave-stream backfill`, with its plan and budget).
    group = settings.topics.topology_group(name)
    started = asyncio.run(
        start_group_at(settings, group, settings.topics.valid, registration.registered_epoch)
    )
    if started is None:
        click.echo(f"topology {name}: group {group} resumes from its committed offsets", err=True)
    else:
        click.echo(
            f"topology {name}: new group {group} starts at offsets {started} (the calls "
            f"written since its registration at {registration.registered_at})",
            err=True,
        )
    # One partition per monitor: one worker holds each (see monitor_agent).
    asyncio.run(ensure_topics(settings, monitor_topics(settings, topology), partitions=1))
    run_worker(settings, create_topology_app(settings, topology, registration.version))


def _one_line(exc: Exception) -> str:
    """
    >>> _one_line(ValueError("topology 't' is invalid:\\n  column 'n': bad"))
    "topology 't' is invalid: column 'n': bad"
    """
    return " ".join(str(exc).split())


COMMANDS = [register_command, unregister_command, topologies_command, topology_worker]
