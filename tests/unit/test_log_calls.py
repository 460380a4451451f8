"""Every log call in the package formats: as many ``%`` placeholders as arguments.

A mismatch does not raise where it is written: the handler prints "--- Logging
error ---" with a traceback each time the line is logged (issue 19 found one such
path in the notifier, every request). This reads the package's source and checks
each call of a logging method with a literal message.
"""

from __future__ import annotations

import ast
import re
from pathlib import Path

import pytest

PACKAGE = Path(__file__).resolve().parents[2] / "weave_stream"
METHODS = {"debug", "info", "warning", "error", "exception", "critical"}
PLACEHOLDER = re.compile(r"%(?:\([^)]*\))?[#0\- +]*(?:\*|\d+)?(?:\.(?:\*|\d+))?[diouxXeEfFgGcrsa%]")


def placeholders(message: str) -> int:
    """How many arguments ``message % args`` consumes.

    >>> placeholders("a %s b %5.1f%% c %r")
    3
    """
    return sum(1 for match in PLACEHOLDER.finditer(message) if match.group() != "%%")


def log_calls() -> list[tuple[str, int, str, int]]:
    """``(file, line, message, positional arguments)`` of each literal log call."""
    found = []
    for path in sorted(PACKAGE.rglob("*.py")):
        for node in ast.walk(ast.parse(path.read_text(), str(path))):
            if not (
                isinstance(node, ast.Call)
                and isinstance(node.func, ast.Attribute)
                and node.func.attr in METHODS
                and isinstance(node.func.value, ast.Name)
                and node.func.value.id in {"log", "logger", "logging"}
            ):
                continue
            if not node.args or any(isinstance(a, ast.Starred) for a in node.args):
                continue
            message = node.args[0]
            if isinstance(message, ast.Constant) and isinstance(message.value, str):
                where = str(path.relative_to(PACKAGE.parent))
                found.append((where, node.lineno, message.value, len(node.args) - 1))
    return found


def test_the_package_has_log_calls_to_check() -> None:
    assert len(log_calls()) >= 20


@pytest.mark.parametrize(
    ("where", "line", "message", "arguments"),
    log_calls(),
    ids=[f"{where}:{line}" for where, line, _, _ in log_calls()],
)
def test_each_log_call_has_as_many_arguments_as_placeholders(
    where: str, line: int, message: str, arguments: int
) -> None:
    assert placeholders(message) == arguments, f"{where}:{line}: {message!r}"
