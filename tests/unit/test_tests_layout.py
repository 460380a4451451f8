"""The tests' own layout: helpers live in tests/support/, and no test module imports another.

A helper that lives in a test file gets imported across tiers (an e2e test importing an
integration test, which imports a unit test), and then collecting one file runs
another's module body. Test modules import the package, ``tests.support`` (helpers, the
loopback servers) and ``tests.assets`` (topologies); fixtures come from conftest.py.
"""

from __future__ import annotations

import ast
import re
from pathlib import Path

TESTS = Path(__file__).resolve().parents[1]
ROOT = TESTS.parent
ALLOWED = ("tests.support", "tests.assets")
TIERS = ("unit", "integration", "e2e")
# A test module named in a string: an op ref ("tests.unit.test_x:fn") or a script.
NAMED_MODULE = re.compile(r"\btests\.(?:unit|integration|e2e)\.test_\w+")


def module_name(path: Path) -> str:
    return ".".join(path.relative_to(ROOT).with_suffix("").parts)


def top_level_modules() -> set[str]:
    """Modules importable by bare name: pytest puts each folder without __init__.py on
    sys.path (``from windows_rows import ...`` used to work that way)."""
    return {path.stem for path in TESTS.rglob("*.py") if not (path.parent / "__init__.py").exists()}


def imported(path: Path, tree: ast.AST) -> list[tuple[int, str]]:
    """``(line, absolute module name)`` of every import in ``tree``."""
    found: list[tuple[int, str]] = []
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            found += [(node.lineno, alias.name) for alias in node.names]
        elif isinstance(node, ast.ImportFrom):
            if node.level:  # relative: resolve against the file's package
                package = module_name(path).split(".")[: -node.level]
                base = ".".join([*package, node.module] if node.module else package)
            else:
                base = node.module or ""
            found.append((node.lineno, base))
            # ``from tests import unit`` imports a module too.
            found += [(node.lineno, f"{base}.{alias.name}") for alias in node.names]
    return found


def violations(path: Path, source: str, local: set[str]) -> list[str]:
    """What in ``source`` (the file at ``path``) breaks the layout, one line each."""
    tree = ast.parse(source, filename=str(path))
    own = module_name(path)
    problems: dict[int, str] = {}  # one per line: ``from x import a, b`` is one import
    for line, module in imported(path, tree):
        if line in problems:
            continue
        is_tests = module == "tests" or module.startswith("tests.")
        if is_tests and module not in ("tests", *ALLOWED):
            if not module.startswith(tuple(f"{allowed}." for allowed in ALLOWED)):
                problems[line] = f"{path.relative_to(ROOT)}:{line}: imports {module}"
        elif module.split(".")[0] in local:
            problems[line] = f"{path.relative_to(ROOT)}:{line}: imports test-folder module {module}"
    named_modules = []
    for node in ast.walk(tree) if path != Path(__file__).resolve() else ():
        # (This file's own strings are the planted examples below.)
        if isinstance(node, ast.Constant) and isinstance(node.value, str):
            for named in NAMED_MODULE.findall(node.value):
                if named != own:
                    named_modules.append(f"{path.relative_to(ROOT)}:{node.lineno}: names {named}")
    return [*problems.values(), *named_modules]


def test_no_test_module_imports_another_or_a_helper_outside_tests_support() -> None:
    local = top_level_modules()
    files = sorted(TESTS.rglob("*.py"))
    assert len(files) > 50, "the walk found the tests"
    problems = [p for path in files for p in violations(path, path.read_text(), local)]
    assert problems == [], "move shared helpers to tests/support/:\n" + "\n".join(problems)


def test_test_folders_hold_only_test_modules() -> None:
    strays = [
        str(path.relative_to(ROOT))
        for tier in TIERS
        for path in (TESTS / tier).rglob("*.py")
        if not path.name.startswith("test_") and path.name != "conftest.py"
    ]
    assert strays == [], f"helpers belong in tests/support/: {strays}"


def test_the_check_catches_each_way_of_reaching_another_test_module() -> None:
    here = TESTS / "e2e" / "test_example.py"
    local = top_level_modules()
    broken = {
        "from tests.integration.test_streaming import produce_calls": "imports",
        "import tests.unit.test_calls": "imports",
        "from tests.conftest import read_all": "imports",
        "from tests import conftest": "imports",
        "from .test_cli import weave_stream": "imports",
        "from test_calls import FULL_CALL": "test-folder module",
        "OP = 'tests.unit.test_topology:length'": "names",
    }
    for source, problem in broken.items():
        found = violations(here, source, local)
        assert len(found) >= 1 and problem in found[0], (source, found)
    fine = [
        "from tests.support.waiting import wait_until",
        "import tests.support.servers.openai",
        "from tests.support import records",
        "from weave_stream.config import Settings",
        "OP = 'tests.e2e.test_example:length'",  # its own module, as an op ref
        "OP = 'tests.assets.wordy:word_count'",
    ]
    for source in fine:
        assert violations(here, source, local) == [], source
