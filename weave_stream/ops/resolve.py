"""Ops by name, for topologies written in YAML: built-ins, registered names, import paths.

An op is named by

* a built-in name: ``embed``, ``classify``, ``judge``, ``explain``;
* a name given to :func:`register_op`;
* an import path ``package.module:attribute`` (an ``@op`` function or class, or a
  plain function or class, which is made an op). ``module.py`` next to the
  topology file comes first (the topology's own files win, and travel with its
  registration: :mod:`weave_stream.topology.modules`); else the module is imported.

A name's ``params`` are the keyword arguments of an op class (built-ins are
classes); a function takes none.

>>> resolve_op("classify", {"labels": ["spam", "ham"]}).name
'classify'
>>> resolve_op("weave_stream.ops.resolve:_example_length").signature.required
('text',)
"""

from __future__ import annotations

import contextlib
import difflib
import hashlib
import importlib
import importlib.util
import inspect
import sys
from collections.abc import Callable, Iterator, Mapping
from pathlib import Path
from typing import Any

from weave_stream.config import Settings
from weave_stream.errors import OpDefinitionError
from weave_stream.ops.base import Op
from weave_stream.ops.classify import Classify
from weave_stream.ops.decorator import FunctionOp, OpClass, op
from weave_stream.ops.embed import Embed, configure_model
from weave_stream.ops.explain import Explain
from weave_stream.ops.judge import Judge

__all__ = [
    "BUILTIN_OPS",
    "importable_from",
    "op_spec",
    "register_op",
    "registered_ops",
    "resolve_op",
]

BUILTIN_OPS: dict[str, OpClass] = {
    "embed": Embed,
    "classify": Classify,
    "judge": Judge,
    "explain": Explain,
}
_registered: dict[str, Callable[..., Op]] = {}


def register_op(name: str, factory: Callable[..., Op]) -> None:
    """Make ``name`` usable as ``op: name`` in YAML; ``factory(**params)`` builds the op."""
    if name in BUILTIN_OPS:
        raise OpDefinitionError(
            f"cannot register op {name!r}: it is a built-in op; choose another name"
        )
    _registered[name] = factory


def registered_ops() -> list[str]:
    """Every name ``op:`` accepts besides import paths."""
    return sorted({*BUILTIN_OPS, *_registered})


def resolve_op(
    name: str,
    params: Mapping[str, Any] | None = None,
    *,
    settings: Settings | None = None,
    search_path: Path | None = None,
) -> Op:
    """The op ``name`` with ``params``; an :class:`OpDefinitionError` names what is wrong."""
    params = dict(params or {})
    factory: Any
    if name in BUILTIN_OPS:
        factory = BUILTIN_OPS[name]
        if name in ("judge", "explain") and settings is not None:
            params.setdefault("settings", settings)
        if name in ("embed", "classify") and settings is not None:
            configure_model(settings)  # the process's model runs where these settings say
    elif name in _registered:
        factory = _registered[name]
    elif ":" in name:
        factory = _import(name, search_path)
    else:
        close = difflib.get_close_matches(name, registered_ops(), n=1)
        hint = f"did you mean {close[0]!r}? " if close else ""
        raise OpDefinitionError(
            f"unknown op {name!r}; {hint}use one of {', '.join(registered_ops())}, "
            "or an import path such as my_package.my_ops:word_count"
        )
    return _build(name, factory, params)


def op_spec(an_op: Op) -> tuple[str, dict[str, Any]]:
    """How to name ``an_op`` in a spec: ``(name or import path, params)``."""
    params = dict(getattr(an_op, "params", {}) or {})
    if an_op.name in BUILTIN_OPS:
        return an_op.name, params
    target = getattr(an_op, "__wrapped_op__", None)
    module, qualname = getattr(target, "__module__", None), getattr(target, "__qualname__", "")
    if module and qualname and "<" not in qualname:
        return f"{module}:{qualname}", params
    raise OpDefinitionError(
        f"op {an_op.ref} has no import path; define it at the top level of a module"
    )


def _build(name: str, factory: Any, params: dict[str, Any]) -> Op:
    if isinstance(factory, FunctionOp) or (not callable(factory) and isinstance(factory, Op)):
        if params:
            raise OpDefinitionError(
                f"op {name!r} is a function; it takes no params (got {sorted(params)})"
            )
        return factory
    if inspect.isclass(factory) and not isinstance(factory, OpClass):
        factory = op(factory)
    elif inspect.isfunction(factory):
        if params:
            raise OpDefinitionError(
                f"op {name!r} is a function; it takes no params (got {sorted(params)})"
            )
        return op(factory)
    try:
        built = factory(**params)
    except (TypeError, ValueError) as exc:  # a user's own op class raises what it likes
        raise OpDefinitionError(
            f"op {name!r} cannot be built with params {sorted(params)}: {exc}"
        ) from None
    if not isinstance(built, Op):
        raise OpDefinitionError(
            f"op {name!r}: its factory returned {type(built).__name__}, not an op"
        )
    return built


def _import(path: str, search_path: Path | None) -> Any:
    module_name, _, attribute = path.partition(":")
    if not module_name or not attribute:
        raise OpDefinitionError(f"op import path {path!r} must look like package.module:function")
    module = _load_beside(module_name, search_path)
    if module is None:
        try:
            module = importlib.import_module(module_name)
        except ModuleNotFoundError as exc:
            where = (
                f" (nor is {module_name}.py beside the topology in {search_path})"
                if search_path
                else ""
            )
            raise OpDefinitionError(
                f"op {path!r}: module {module_name!r} is not importable: {exc}{where}; put "
                "it beside the topology file (it then travels with the registration), or "
                "install it where the workers run"
            ) from None
    target: Any = module
    for part in attribute.split("."):
        if not hasattr(target, part):
            raise OpDefinitionError(f"op {path!r}: {module_name} has no attribute {attribute!r}")
        target = getattr(target, part)
    return target


def _load_beside(module_name: str, search_path: Path | None) -> Any:
    if search_path is None:
        return None
    file = search_path / (module_name.replace(".", "/") + ".py")
    if not file.is_file():
        return None
    # One name per folder: two topologies' modules of the same name never mix.
    folder = hashlib.sha256(str(search_path.resolve()).encode()).hexdigest()[:10]
    unique = f"weave_stream_user_ops.d{folder}.{module_name}"
    if unique in sys.modules:
        return sys.modules[unique]
    spec = importlib.util.spec_from_file_location(unique, file)
    if spec is None or spec.loader is None:
        return None
    module = importlib.util.module_from_spec(spec)
    sys.modules[unique] = module
    with importable_from(search_path):  # the module's own imports of its neighbours
        try:
            spec.loader.exec_module(module)
        except Exception as exc:
            del sys.modules[unique]
            raise OpDefinitionError(
                f"module {module_name!r} beside the topology ({file}) failed to import: "
                f"{type(exc).__name__}: {exc}"
            ) from None
    return module


@contextlib.contextmanager
def importable_from(folder: Path) -> Iterator[None]:
    """Let ``import x`` find ``x.py`` in ``folder`` while the block runs."""
    entry = str(folder)
    sys.path.insert(0, entry)
    try:
        yield
    finally:
        with contextlib.suppress(ValueError):
            sys.path.remove(entry)


def _example_length(text: str) -> int:
    """An op for this module's doctest: the length of ``text``."""
    return len(text)
