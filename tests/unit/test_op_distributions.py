"""An op's version covers the installed distributions its module imports.

Upgrading the package that ships the model an op wraps gives the op a new ref (so
cached values of the old model are not served as the new one's); ``version=`` set by
the user stands in for the distributions. The distribution here is real as far as
``importlib.metadata`` goes: a ``.dist-info`` directory on ``sys.path``, no mock.
"""

from __future__ import annotations

import importlib.util
import sys
import uuid
from collections.abc import Iterator
from pathlib import Path
from types import ModuleType

import pytest

OPS = """\
import fakemodel_{tag}

from weave_stream.ops import op


@op
def offensiveness(text: str) -> float:
    return fakemodel_{tag}.score(text)


@op(version="lexicon-2026-11")
def pinned(text: str) -> float:
    return fakemodel_{tag}.score(text)
"""
PLAIN = """\
import json

from weave_stream.ops import op


@op
def plain(text: str) -> str:
    return json.dumps(text)
"""


@pytest.fixture
def site(tmp_path: Path) -> Iterator[tuple[Path, str]]:
    """A folder on sys.path holding package ``fakemodel_<tag>`` and its dist-info."""
    tag = uuid.uuid4().hex[:8]
    folder = tmp_path / "site"
    package = folder / f"fakemodel_{tag}"
    package.mkdir(parents=True)
    (package / "__init__.py").write_text("def score(text):\n    return len(text) / 100\n")
    _install(folder, tag, "1.0")
    sys.path.insert(0, str(folder))
    yield folder, tag
    sys.path.remove(str(folder))
    for name in [n for n in sys.modules if tag in n]:
        del sys.modules[name]


def _install(folder: Path, tag: str, version: str) -> None:
    for old in folder.glob("*.dist-info"):
        for file in old.iterdir():
            file.unlink()
        old.rmdir()
    info = folder / f"fakemodel_{tag}-{version}.dist-info"
    info.mkdir()
    (info / "METADATA").write_text(
        f"Metadata-Version: 2.1\nName: fakemodel-{tag}\nVersion: {version}\n"
    )
    (info / "top_level.txt").write_text(f"fakemodel_{tag}\n")


def _load(folder: Path, source: str, name: str) -> ModuleType:
    path = folder / f"{name}.py"
    path.write_text(source)
    spec = importlib.util.spec_from_file_location(name, path)
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    sys.modules[name] = module
    spec.loader.exec_module(module)
    return module


def test_upgrading_an_imported_distribution_gives_a_new_ref(
    tmp_path: Path, site: tuple[Path, str]
) -> None:
    folder, tag = site
    ops = tmp_path / "ops"
    ops.mkdir()
    before = _load(ops, OPS.format(tag=tag), f"moderation_{tag}_a")
    assert before.offensiveness.distributions == {f"fakemodel-{tag}": "1.0"}

    _install(folder, tag, "2.0")  # pip install -U fakemodel
    after = _load(ops, OPS.format(tag=tag), f"moderation_{tag}_b")
    assert after.offensiveness.distributions == {f"fakemodel-{tag}": "2.0"}
    assert after.offensiveness.ref != before.offensiveness.ref
    assert after.offensiveness("abc") == before.offensiveness("abc")  # same code, new ref

    # version= is the user's word for what the code uses: distributions are not looked at.
    assert after.pinned.distributions == {}
    assert after.pinned.ref == before.pinned.ref
    assert after.pinned.ref != after.offensiveness.ref


def test_an_op_importing_only_the_standard_library_keeps_its_version(tmp_path: Path) -> None:
    first = _load(tmp_path, PLAIN, f"plain_{uuid.uuid4().hex[:8]}")
    assert first.plain.distributions == {}
    from weave_stream.ops.versioning import code_digest, version_digest

    unchanged = version_digest("plain", code_digest(first.plain.__wrapped_op__), {})
    assert first.plain.version == unchanged
