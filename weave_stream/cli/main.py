"""The root ``weave-stream`` group: each command's module is imported when it runs.

A command module imports what its commands need (pandas, scipy, the store, Faust), and
every process the system starts is a ``weave-stream`` command (a worker, each of its
topology processes, the registration check): importing only the module of the command
that runs keeps each start, and ``weave-stream COMMAND --help``, quick.
"""

from __future__ import annotations

import importlib
import warnings
from typing import TextIO

import click

from weave_stream.errors import WeaveStreamWarning

__all__ = ["COMMAND_MODULES", "cli", "main"]

# command name -> the module of weave_stream.cli that defines it (in its COMMANDS list),
# in the order ``weave-stream --help`` lists them. tests/unit/test_cli_commands.py checks
# it against every module's COMMANDS.
COMMAND_MODULES: dict[str, str] = {
    "status": "status_cmds",
    "broker": "broker_cmds",
    "worker": "broker_cmds",
    "collector": "collector_cmds",
    "op-code": "collector_cmds",
    "ingest": "ingest_cmds",
    "dlq": "ingest_cmds",
    "register": "registry_cmds",
    "unregister": "registry_cmds",
    "topologies": "registry_cmds",
    "topology-worker": "registry_cmds",
    "run": "ops_cmds",
    "plan": "ops_cmds",
    "backfill": "backfill_cmds",
    "aggregates": "aggregates_cmds",
    "drill": "aggregates_cmds",
    "compare": "aggregates_cmds",
    "experiment": "experiment_cmds",
    "dashboard": "dashboard_cmds",
    "demo": "demo",
    "alerts": "alerts_cmds",
    "values": "values_cmds",
    "calls": "store_cmds",
    "store": "store_cmds",
    "datasets": "dataset_cmds",
    "dataset": "dataset_cmds",
    "topics": "topic_cmds",
    "model-service": "model_cmds",
}


class _LazyGroup(click.Group):
    """A group whose commands are imported from their module on first use."""

    def list_commands(self, ctx: click.Context) -> list[str]:
        added = [name for name in super().list_commands(ctx) if name not in COMMAND_MODULES]
        return [*COMMAND_MODULES, *added]

    def get_command(self, ctx: click.Context, cmd_name: str) -> click.Command | None:
        module = COMMAND_MODULES.get(cmd_name)
        if module is None or cmd_name in self.commands:
            return super().get_command(ctx, cmd_name)
        commands = importlib.import_module(f"weave_stream.cli.{module}").COMMANDS
        for command in commands:
            self.add_command(command)
        return self.commands.get(cmd_name)


@click.group(
    cls=_LazyGroup,
    context_settings={"help_option_names": ["-h", "--help"], "max_content_width": 100},
)
@click.version_option(package_name="weave-stream")
def cli() -> None:
    """Watch LLM applications in production: derived columns, aggregates and drift alerts
    over Weave calls streaming through Kafka."""


def _show_warning(
    message: Warning | str,
    category: type[Warning],
    filename: str,
    lineno: int,
    file: TextIO | None = None,
    line: str | None = None,
) -> None:
    """weave-stream's own warnings (a run that goes on in a lesser way, and says why) as
    one yellow line on stderr; a library's keep Python's form (file and line)."""
    if issubclass(category, WeaveStreamWarning):
        click.secho(f"warning: {message}", fg="yellow", err=True)
    else:
        _python_warning(message, category, filename, lineno, file, line)


_python_warning = warnings.showwarning


def main() -> None:
    """Console-script entry point."""
    warnings.showwarning = _show_warning
    cli(prog_name="weave-stream")
