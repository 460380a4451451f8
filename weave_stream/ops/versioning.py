"""Op versions: a digest of an op's code, the code it uses, and its parameters.

The code digest hashes the *syntax tree* of the source, with docstrings and
decorators removed. So:

* a change of behaviour (any token of code) gives a new version;
* a comment-only, whitespace-only or docstring-only change keeps the version
  (they cannot change what the op computes, and re-computing a column for them
  would waste money);
* changing the decorator's options (timeout, retries, batch size) keeps it too:
  they change how an op runs, not what it returns.

Besides its own source, a function's digest covers what it reads from its module:
constants (UPPER_CASE names bound to numbers, strings or tuples of them) and
functions or classes defined in the same module, followed recursively. Other
globals are state (a lazily loaded model, a cache), not code: they change while
the process runs and must not change the version. Code imported from other
modules is not followed; list it in ``depends=`` to have it counted.

The version also covers the installed *distributions* the op's module imports
(:func:`imported_distributions`: every ``import`` statement of the module, mapped to
the distribution that provides it, with its version; the standard library and
weave-stream itself left out): upgrading the package whose model the op wraps gives
a new ref. ``@op(version="...")`` replaces them with a label the user bumps, and
``@op(distributions=[...])`` names exactly which distributions count. An op that
imports no installed distribution keeps the version it had without this rule.

>>> def double(x):
...     return 2 * x
>>> code_digest(double) == code_digest(double)
True
>>> len(params_digest({"labels": ["a", "b"]}))
64
"""

from __future__ import annotations

import ast
import functools
import hashlib
import importlib.metadata
import inspect
import sys
import textwrap
import types
from collections.abc import Iterable, Mapping
from pathlib import PurePath
from typing import Any

import orjson

from weave_stream.errors import OpError

__all__ = [
    "canonical_json",
    "code_digest",
    "imported_distributions",
    "params_digest",
    "version_digest",
]

_SIMPLE = (int, float, str, bytes, bool, type(None))
VERSION_LENGTH = 12


def version_digest(
    name: str,
    code: str,
    params: Mapping[str, Any],
    state: Any = None,
    dependencies: Mapping[str, str] | None = None,
) -> str:
    """The version of an op: 12 hex digits over its name, code digest, parameters, state
    and ``dependencies`` (distribution versions, or the user's ``version=`` label).

    >>> version_digest("embed", "c0de", {"model": "m"})
    'cfa38988acd7'
    >>> version_digest("embed", "c0de", {"model": "m"}) != version_digest("embed", "c0de", {})
    True
    >>> version_digest("f", "c0de", {}, dependencies={}) == version_digest("f", "c0de", {})
    True
    """
    hasher = hashlib.sha256(b"weave-stream-op/1\0")
    parts = [name.encode(), code.encode(), canonical_json(params, name)]
    parts.append(canonical_json(state, name))
    if dependencies:  # none: the version an op had before dependencies counted
        parts.append(canonical_json(dict(dependencies), name))
    for part in parts:
        hasher.update(len(part).to_bytes(8, "big"))
        hasher.update(part)
    return hasher.hexdigest()[:VERSION_LENGTH]


_OWN_DISTRIBUTIONS = frozenset({"weave-stream", "weave_stream"})


def imported_distributions(targets: Iterable[Any]) -> dict[str, str]:
    """``{distribution: version}`` of the installed distributions that the modules of
    ``targets`` (functions, classes or modules) import, anywhere in the module.

    The standard library, weave-stream itself and modules no installed distribution
    provides (the user's own files, versioned by their code) are left out.

    >>> sorted(imported_distributions([imported_distributions]))   # this module imports orjson
    ['orjson']
    """
    names: set[str] = set()
    for target in targets:
        module = target if isinstance(target, types.ModuleType) else _module_of(target)
        if module is not None:
            names.update(_imported_top_names(module))
    providers = _distributions_by_module(tuple(sys.path))
    found: dict[str, str] = {}
    for name in sorted(names - set(sys.stdlib_module_names)):
        for distribution in providers.get(name, ()):
            if distribution.lower().replace("_", "-") in _OWN_DISTRIBUTIONS:
                continue
            try:
                found[distribution] = importlib.metadata.version(distribution)
            except importlib.metadata.PackageNotFoundError:
                continue  # metadata gone since the mapping was read: it provides nothing
    return found


def _module_of(target: Any) -> types.ModuleType | None:
    try:
        return inspect.getmodule(inspect.unwrap(target) if callable(target) else target)
    except (TypeError, ValueError):
        return None


def _imported_top_names(module: types.ModuleType) -> set[str]:
    try:
        tree = ast.parse(inspect.getsource(module))
    except (OSError, TypeError, SyntaxError):  # no readable source (a REPL): nothing to see
        return set()
    names: set[str] = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            names.update(alias.name.split(".")[0] for alias in node.names)
        elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
            names.add(node.module.split(".")[0])
    return names


@functools.lru_cache(maxsize=8)
def _distributions_by_module(path: tuple[str, ...]) -> Mapping[str, list[str]]:
    # Which distribution provides which top-level module: read once per sys.path (it
    # scans every installed distribution); versions are read fresh each time.
    return importlib.metadata.packages_distributions()


def canonical_json(value: Any, where: str = "op") -> bytes:
    """``value`` as JSON with sorted keys (the form digests are taken over).

    Floats with an integral value are written as integers (``1.0 == 1`` in Python,
    so YAML's ``[0, 1]`` and Python's ``(0.0, 1.0)`` give one version).

    >>> canonical_json({"b": 1.0, "a": (1, 2.5)})
    b'{"a":[1,2.5],"b":1}'
    """
    try:
        return orjson.dumps(
            _normalise(value),
            default=_json_default,
            option=orjson.OPT_SORT_KEYS | orjson.OPT_NON_STR_KEYS | orjson.OPT_SERIALIZE_NUMPY,
        )
    except TypeError as exc:
        raise OpError(
            f"{where}: a parameter is not JSON-serialisable ({exc}); pass plain data "
            "(numbers, strings, lists, dicts), or list the parameter in unversioned= "
            "if it does not change what the op returns"
        ) from None


def params_digest(params: Mapping[str, Any]) -> str:
    """SHA-256 of the canonical JSON of ``params``."""
    return hashlib.sha256(canonical_json(params)).hexdigest()


def code_digest(target: Any, depends: Iterable[Any] = ()) -> str:
    """SHA-256 over the normalised code of ``target`` (a function, class or module) and more."""
    hasher = hashlib.sha256()
    seen: set[int] = set()
    for item in (target, *depends):
        _digest_object(item, hasher, seen)
    return hasher.hexdigest()


def _digest_object(obj: Any, hasher: Any, seen: set[int]) -> None:
    obj = inspect.unwrap(obj) if callable(obj) else obj
    if id(obj) in seen:
        return
    seen.add(id(obj))
    hasher.update(_normalised_code(obj).encode())
    module = inspect.getmodule(obj)
    if module is None or isinstance(obj, types.ModuleType):
        return
    for name in sorted(_global_names(obj)):
        if name not in vars(module):
            continue
        value = vars(module)[name]
        if name.isupper() and _is_simple(value):
            hasher.update(f"\0{name}=".encode() + canonical_json(value))
        elif (inspect.isfunction(value) or inspect.isclass(value)) and (
            getattr(value, "__module__", None) == module.__name__
        ):
            _digest_object(value, hasher, seen)
        elif hasattr(value, "__wrapped_op__"):
            # A function already decorated with @op: follow the function it wraps.
            _digest_object(value.__wrapped_op__, hasher, seen)


def _normalised_code(obj: Any) -> str:
    try:
        source = textwrap.dedent(inspect.getsource(obj))
    except (OSError, TypeError):
        return _bytecode_identity(obj)
    try:
        tree = ast.parse(source)
    except SyntaxError:
        return source  # e.g. a lambda inside a larger expression: its text is its identity.
    for node in ast.walk(tree):
        if isinstance(node, ast.FunctionDef | ast.AsyncFunctionDef | ast.ClassDef):
            node.decorator_list = []
        if isinstance(node, ast.Module | ast.FunctionDef | ast.AsyncFunctionDef | ast.ClassDef):
            body = node.body
            first = body[0] if body else None
            if (
                isinstance(first, ast.Expr)
                and isinstance(first.value, ast.Constant)
                and isinstance(first.value.value, str)
            ):
                node.body = body[1:] or [ast.Pass()]
    return ast.dump(tree, annotate_fields=False, include_attributes=False)


def _bytecode_identity(obj: Any) -> str:
    """For code without readable source (a REPL, exec): its bytecode and constants."""
    code = getattr(obj, "__code__", None)
    if code is None and inspect.isclass(obj):
        parts = [
            f"{name}:{_bytecode_identity(member)}"
            for name, member in sorted(vars(obj).items())
            if inspect.isfunction(member)
        ]
        return f"class {obj.__qualname__}(" + ";".join(parts) + ")"
    if code is None:
        raise OpError(
            f"cannot read the code of {obj!r} to version it; define the op in a module file "
            "(or as a function or class), so that its source can be read"
        )
    return _code_object_identity(code)


def _code_object_identity(code: types.CodeType) -> str:
    consts = [
        _code_object_identity(c) if isinstance(c, types.CodeType) else repr(c)
        for c in code.co_consts
    ]
    return f"{code.co_code.hex()}|{consts}|{code.co_names}|{code.co_varnames}"


def _global_names(obj: Any) -> set[str]:
    """Names a function (or every method of a class) reads from its module's globals."""
    names: set[str] = set()
    functions: list[Any] = []
    if inspect.isfunction(obj):
        functions.append(obj)
    elif inspect.isclass(obj):
        for member in vars(obj).values():
            member = getattr(member, "__func__", member)  # staticmethod, classmethod
            if isinstance(member, property):
                member = member.fget
            if inspect.isfunction(member):
                functions.append(member)
    for function in functions:
        stack = [function.__code__]
        while stack:
            code = stack.pop()
            names.update(code.co_names)
            stack.extend(c for c in code.co_consts if isinstance(c, types.CodeType))
    return names


def _is_simple(value: Any) -> bool:
    if isinstance(value, _SIMPLE):
        return True
    if isinstance(value, tuple | frozenset):
        return all(_is_simple(item) for item in value)
    return False


def _normalise(value: Any) -> Any:
    if isinstance(value, float) and value.is_integer():
        return int(value)
    if isinstance(value, Mapping):
        return {key: _normalise(item) for key, item in value.items()}
    if isinstance(value, list | tuple):
        return [_normalise(item) for item in value]
    return value


def _json_default(value: Any) -> Any:
    if isinstance(value, tuple | set | frozenset):
        return sorted(value, key=repr) if not isinstance(value, tuple) else list(value)
    if isinstance(value, PurePath):
        return str(value)
    raise TypeError(f"{type(value).__name__} {value!r:.60}")
