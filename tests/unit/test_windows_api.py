"""The public surface of ``weave_stream.windows`` is what ``__all__`` says, and documented."""

from __future__ import annotations

import doctest
import importlib
import inspect
import pkgutil

import pytest

import weave_stream.windows as windows

MODULES = sorted(
    f"weave_stream.windows.{info.name}" for info in pkgutil.iter_modules(windows.__path__)
)


@pytest.mark.parametrize("name", ["weave_stream.windows", *MODULES])
def test_all_lists_exactly_the_public_names_and_each_is_documented(name: str) -> None:
    module = importlib.import_module(name)
    assert module.__doc__ and module.__doc__.strip()
    exported = set(module.__all__)
    assert len(exported) == len(module.__all__), "a name is listed twice"
    for item in exported:
        assert hasattr(module, item), f"{name}.__all__ lists {item!r}, which it lacks"
        value = getattr(module, item)
        if inspect.isclass(value) or inspect.isfunction(value):
            assert value.__doc__, f"{name}.{item} has no docstring"
    if name != "weave_stream.windows":
        defined = {
            attr
            for attr, value in vars(module).items()
            if not attr.startswith("_")
            and (inspect.isclass(value) or inspect.isfunction(value))
            and value.__module__ == name
        }
        assert defined <= exported, f"public but not exported from {name}: {defined - exported}"


@pytest.mark.parametrize("name", MODULES)
def test_docstring_examples_run(name: str) -> None:
    module = importlib.import_module(name)
    results = doctest.testmod(module, optionflags=doctest.ELLIPSIS)
    assert results.failed == 0, f"{results.failed} doctest example(s) of {name} failed"
