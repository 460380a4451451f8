"""The root command imports a command's module only when it runs, from one table."""

from __future__ import annotations

import importlib
import pkgutil
import subprocess
import sys

import click
from click.testing import CliRunner

import weave_stream.cli
from weave_stream.cli.main import COMMAND_MODULES, cli


def _defined() -> dict[str, str]:
    """Every command every module of weave_stream.cli defines -> that module."""
    found: dict[str, str] = {}
    for info in pkgutil.iter_modules(weave_stream.cli.__path__):
        module = importlib.import_module(f"weave_stream.cli.{info.name}")
        for command in getattr(module, "COMMANDS", ()):
            assert command.name not in found, f"{command.name!r} defined twice"
            found[str(command.name)] = info.name
    return found


def test_the_table_names_every_command_of_every_module_and_nothing_else() -> None:
    assert _defined() == COMMAND_MODULES


def test_help_lists_the_commands_in_flow_order_and_each_resolves() -> None:
    answer = CliRunner().invoke(cli, ["--help"])
    assert answer.exit_code == 0, answer.output
    listed = [line.split()[0] for line in answer.output.split("Commands:")[1].splitlines() if line]
    visible = [n for n in COMMAND_MODULES if not cli.get_command(click.Context(cli), n).hidden]
    assert listed == visible
    assert cli.get_command(click.Context(cli), "nosuch") is None


def test_a_command_imports_only_its_own_module() -> None:
    script = (
        "import sys\n"
        "from weave_stream.cli.main import cli\n"
        "try:\n"
        "    cli(['status', '--help'], prog_name='weave-stream')\n"
        "except SystemExit:\n"
        "    pass\n"
        "print(sorted(m for m in sys.modules if m.startswith('weave_stream.cli.')))\n"
        "print('pandas' in sys.modules, 'scipy' in sys.modules)\n"
    )
    answer = subprocess.run(
        [sys.executable, "-c", script], capture_output=True, text=True, timeout=120, check=True
    )
    modules, heavy = answer.stdout.strip().splitlines()[-2:]
    assert "weave_stream.cli.status_cmds" in modules
    assert "weave_stream.cli.aggregates_cmds" not in modules
    assert "weave_stream.cli.store_cmds" not in modules
    assert heavy == "False False"


def test_our_warnings_are_one_line_and_a_librarys_keep_their_place() -> None:
    script = (
        "import warnings, sys\n"
        "from weave_stream.cli.main import _show_warning\n"
        "from weave_stream.errors import WeaveStreamWarning\n"
        "warnings.showwarning = _show_warning\n"
        "warnings.warn('topology t, column c: computed uncalibrated', WeaveStreamWarning)\n"
        "warnings.warn('a library speaks', DeprecationWarning)\n"
    )
    done = subprocess.run(
        [sys.executable, "-W", "always", "-c", script], capture_output=True, text=True, check=True
    )
    lines = done.stderr.splitlines()
    assert lines[0] == "warning: topology t, column c: computed uncalibrated"
    assert "<string>:6: DeprecationWarning: a library speaks" in lines[1]
