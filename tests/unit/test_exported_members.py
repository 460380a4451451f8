"""The public surface: ``__all__`` is honest, every public item is documented."""

from __future__ import annotations

import inspect

import weave_stream


def test_all_names_exactly_the_public_members() -> None:
    public = {name for name in dir(weave_stream) if not name.startswith("_")}
    modules = {name for name in public if inspect.ismodule(getattr(weave_stream, name))}
    future = {"annotations"}  # `from __future__ import annotations`
    assert set(weave_stream.__all__) == public - modules - future
    assert weave_stream.__all__ == sorted(weave_stream.__all__)


def test_every_exported_item_has_a_docstring() -> None:
    undocumented = [
        name for name in weave_stream.__all__ if not inspect.getdoc(getattr(weave_stream, name))
    ]
    assert undocumented == []
