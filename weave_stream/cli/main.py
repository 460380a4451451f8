"""The root ``weave-stream`` group and the registration of every command module."""

from __future__ import annotations

import click

from weave_stream.cli import (
    aggregates_cmds,
    alerts_cmds,
    backfill_cmds,
    broker_cmds,
    collector_cmds,
    dashboard_cmds,
    demo,
    experiment_cmds,
    ingest_cmds,
    model_cmds,
    ops_cmds,
    registry_cmds,
    status_cmds,
    values_cmds,
)

__all__ = ["cli", "main"]


@click.group(context_settings={"help_option_names": ["-h", "--help"], "max_content_width": 100})
@click.version_option(package_name="weave-stream")
def cli() -> None:
    """Watch LLM applications in production: derived columns, aggregates and drift alerts
    over Weave calls streaming through Kafka."""


for module in (
    status_cmds,
    broker_cmds,
    collector_cmds,
    ingest_cmds,
    registry_cmds,
    ops_cmds,
    backfill_cmds,
    aggregates_cmds,
    experiment_cmds,
    dashboard_cmds,
    demo,
    alerts_cmds,
    values_cmds,
    model_cmds,
):
    for command in module.COMMANDS:
        cli.add_command(command)


def main() -> None:
    """Console-script entry point."""
    cli(prog_name="weave-stream")
