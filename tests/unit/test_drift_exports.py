"""The public API of the drift and notify packages: ``__all__`` is honest and documented."""

from __future__ import annotations

import importlib
import inspect

import pytest

PACKAGES = ["weave_stream.drift", "weave_stream.notify"]


@pytest.mark.parametrize("name", PACKAGES)
def test_all_lists_exactly_the_public_names_and_each_is_documented(name: str) -> None:
    package = importlib.import_module(name)

    public = {
        n for n, v in vars(package).items() if not n.startswith("_") and not inspect.ismodule(v)
    }
    public -= {"annotations"}
    assert sorted(package.__all__) == sorted(public)
    defined = [
        n
        for n in package.__all__
        if inspect.isclass(getattr(package, n)) or inspect.isfunction(getattr(package, n))
    ]
    undocumented = [n for n in defined if not (getattr(package, n).__doc__ or "").strip()]
    assert undocumented == []
