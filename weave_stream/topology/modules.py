"""A topology's own modules: the files beside it that its ops come from, shipped with it.

A topology may name ops that live next to it (``op: moderation_ops:offensiveness``
with ``moderation_ops.py`` beside the YAML), and those modules may import more
modules of their own. A worker runs the topology in another directory, on another
machine, so :func:`local_modules` collects every such file -- the modules of the
topology's ops that lie under the topology's directory, the modules a Python
topology imports from there, and, followed through their ``import`` statements,
every module of that directory they use -- and the registration carries their text.
:func:`materialize` writes a registered topology and its modules into a folder of
the worker's data dir, from which it is loaded exactly as it was beside its files.

>>> import tempfile
>>> folder = Path(tempfile.mkdtemp())
>>> _ = (folder / "ops_a.py").write_text("import ops_b\\nfrom . import nothing_here\\n")
>>> _ = (folder / "ops_b.py").write_text("import json\\n")
>>> sorted(module_closure([folder / "ops_a.py"], folder))
['ops_a.py', 'ops_b.py']
"""

from __future__ import annotations

import ast
import hashlib
import inspect
from collections.abc import Iterable, Mapping
from pathlib import Path

from weave_stream.topology.spec import Topology

__all__ = ["local_modules", "materialize", "module_closure", "modules_digest"]


def local_modules(path: Path, topology: Topology) -> dict[str, str]:
    """``{relative path: source}`` of the modules beside topology file ``path`` it uses."""
    folder = path.parent.resolve()
    seeds: list[Path] = []
    if path.suffix == ".py":
        seeds.extend(_imported_files(path.resolve(), folder))
    for column in topology.compiled:
        target = getattr(column.op, "__wrapped_op__", None)
        try:
            source_file = inspect.getsourcefile(target) if target is not None else None
        except TypeError:  # a built-in or C object: not a file of the user's
            source_file = None
        if source_file and _under(Path(source_file).resolve(), folder):
            seeds.append(Path(source_file).resolve())
    seeds = [seed for seed in seeds if seed != path.resolve()]
    return {
        relative: (folder / relative).read_text(encoding="utf-8")
        for relative in sorted(module_closure(seeds, folder))
    }


def module_closure(seeds: Iterable[Path], folder: Path) -> set[str]:
    """The files under ``folder`` that ``seeds`` are and import, transitively (relative paths)."""
    folder = folder.resolve()
    found: set[Path] = set()
    todo = [seed.resolve() for seed in seeds]
    while todo:
        current = todo.pop()
        if current in found or not current.is_file() or not _under(current, folder):
            continue
        found.add(current)
        todo.extend(_imported_files(current, folder))
    return {p.relative_to(folder).as_posix() for p in found}


def modules_digest(modules: Mapping[str, str]) -> str:
    """A digest of shipped modules (part of the topology's version).

    >>> modules_digest({"a.py": "x"}) == modules_digest({"a.py": "x"} )
    True
    >>> modules_digest({"a.py": "x"}) != modules_digest({"a.py": "y"})
    True
    """
    hasher = hashlib.sha256()
    for relative in sorted(modules):
        hasher.update(relative.encode() + b"\0" + modules[relative].encode() + b"\0")
    return hasher.hexdigest()


def materialize(folder: Path, file_name: str, source: str, modules: Mapping[str, str]) -> Path:
    """Write the topology ``source`` and its ``modules`` into ``folder``; the topology's path.

    The folder is kept (not temporary): op versions read their code lazily, and a
    module's source must still be there when they do.
    """
    folder.mkdir(parents=True, exist_ok=True)
    for relative, text in modules.items():
        target = (folder / relative).resolve()
        if not _under(target, folder.resolve()):
            raise ValueError(f"module path {relative!r} leaves the topology's folder")
        target.parent.mkdir(parents=True, exist_ok=True)
        _write_if_changed(target, text)
    path = folder / file_name
    _write_if_changed(path, source)
    return path


def _write_if_changed(path: Path, text: str) -> None:
    if not path.exists() or path.read_text(encoding="utf-8") != text:
        path.write_text(text, encoding="utf-8")


def _imported_files(path: Path, folder: Path) -> list[Path]:
    """Files under ``folder`` that the import statements of ``path`` may name."""
    try:
        tree = ast.parse(path.read_text(encoding="utf-8"), filename=str(path))
    except (OSError, SyntaxError, UnicodeDecodeError):
        return []
    found: list[Path] = []
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            for alias in node.names:
                found.extend(_candidates(folder, alias.name.split(".")))
        elif isinstance(node, ast.ImportFrom):
            base = folder if node.level == 0 else path.parent
            for _ in range(max(0, node.level - 1)):
                base = base.parent
            parts = node.module.split(".") if node.module else []
            found.extend(_candidates(base, parts))
            for alias in node.names:  # `from package import module`
                found.extend(_candidates(base, [*parts, alias.name]))
    return [f for f in found if _under(f.resolve(), folder)]


def _candidates(base: Path, parts: list[str]) -> list[Path]:
    """Every file importing ``parts`` from ``base`` runs: package ``__init__``s and the module."""
    found = []
    for depth in range(1, len(parts) + 1):
        package = base.joinpath(*parts[:depth])
        found.append(package / "__init__.py")
        if depth == len(parts):
            found.append(package.with_suffix(".py"))
    return [f for f in found if f.is_file()]


def _under(path: Path, folder: Path) -> bool:
    return path == folder or folder in path.parents
