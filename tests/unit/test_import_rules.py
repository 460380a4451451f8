"""The package's import rules, checked on every run.

The layering (a stage imports only earlier stages; the CLI is imported by nothing;
ops, windows and drift never import runners; only ``runners.streaming`` imports
faust) is written as import-linter contracts in ``pyproject.toml``: a kept tool that
reads every import, those inside functions included, and names the offending line.
What import-linter cannot say -- no ``from weave_stream import <module>`` (which runs
the package ``__init__`` for a sibling) and no handler that catches the error tree
together with ``ValueError`` -- is checked here on the syntax tree.
"""

from __future__ import annotations

import ast
import subprocess
import sys
from pathlib import Path

from weave_stream import errors

ROOT = Path(__file__).resolve().parents[2]
PACKAGE = ROOT / "weave_stream"
HEAVY = ("torch", "faust", "pandas", "sentence_transformers", "aiokafka", "matplotlib")


def modules() -> list[tuple[Path, ast.Module]]:
    return [(path, ast.parse(path.read_text(), str(path))) for path in PACKAGE.rglob("*.py")]


def test_the_layering_contracts_of_pyproject_hold() -> None:
    # In its own process: import-linter configures logging and disables every logger
    # that exists, which would silence the tests that run after it here.
    lint = "from importlinter.cli import lint_imports_command; lint_imports_command()"
    result = subprocess.run(
        [sys.executable, "-c", lint, "--no-cache", str(ROOT / "pyproject.toml")],
        cwd=ROOT,
        capture_output=True,
        text=True,
    )
    assert result.returncode == 0, result.stdout[-4000:] + result.stderr[-2000:]


def test_no_module_imports_the_package_init_for_a_sibling() -> None:
    found = [
        f"{path.relative_to(ROOT)}:{node.lineno}: from weave_stream import "
        + ", ".join(alias.name for alias in node.names)
        for path, tree in modules()
        for node in ast.walk(tree)
        if isinstance(node, ast.ImportFrom) and node.module == "weave_stream" and not node.level
    ]
    assert found == [], "import the sibling module itself, e.g. from weave_stream.metrics import X"


def test_no_handler_catches_the_error_tree_and_value_error_together() -> None:
    tree_names = set(errors.__all__)
    found = [
        f"{path.relative_to(ROOT)}:{node.lineno}"
        for path, tree in modules()
        for node in ast.walk(tree)
        if isinstance(node, ast.ExceptHandler)
        and isinstance(node.type, ast.Tuple)
        and "ValueError" in (names := {e.id for e in node.type.elts if isinstance(e, ast.Name)})
        and names & tree_names
    ]
    assert found == [], "raise a WeaveStreamError where the ValueError came from instead"


def test_importing_the_error_tree_and_settings_loads_no_heavy_library() -> None:
    probe = (
        "import sys, weave_stream, weave_stream.errors, weave_stream.durations, "
        "weave_stream.config; "
        f"print(','.join(m for m in {HEAVY!r} if m in sys.modules))"
    )
    loaded = subprocess.run(
        [sys.executable, "-c", probe], cwd=ROOT, capture_output=True, text=True, check=True
    ).stdout.strip()
    assert loaded == ""
