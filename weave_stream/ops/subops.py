"""What an op calls: the ops its code uses, and how they enter its version.

An op that calls other ops (``summarise`` calling ``embed`` and ``judge``) computes
what they compute: editing ``judge``'s prompt changes ``summarise``'s results, so it
must change ``summarise``'s ref too, or its cached values go stale. The ops an op
calls are found three ways:

* **statically**, from the names its code uses (:func:`static_sub_ops`): module
  globals and closure variables that are ops, ``module.attribute`` chains that reach
  one, same-module helper functions followed recursively, and for a class op the
  attributes of its instance its methods read (``self.embedder``) and the
  constructor parameters that are ops;
* **declared** with ``@op(calls=[embed, judge])`` (or ``calls={embed: 3}``, three
  calls per input, which cost plans use), for code that picks its ops at run time;
* **at run time**, a sub-op called but found neither way is recorded on the calling
  op (``undeclared_calls``) and warned about once: its changes do not reach the
  caller's version until it is declared.

The version of an op is then :func:`fold_calls` of its *own* version (code,
parameters, state: :mod:`weave_stream.ops.versioning`) and the own refs of every op
it reaches through calls, transitively. A reachable set, not a nested digest: it is
the same whichever op is asked first, and a cycle (an op that calls itself, or two
that call each other) simply contains each op once. An op that calls nothing keeps
the version it had before calls counted.

>>> fold_calls("0123456789ab", []) == "0123456789ab"
True
>>> fold_calls("0123456789ab", ["embed:aaa"]) != fold_calls("0123456789ab", ["embed:bbb"])
True
"""

from __future__ import annotations

import hashlib
import inspect
import logging
import threading
import types
from collections.abc import Iterable, Mapping
from typing import Any

from weave_stream.errors import OpDefinitionError

__all__ = [
    "covers",
    "declared_calls",
    "fold_calls",
    "is_op",
    "ops_in_params",
    "reachable_ops",
    "static_sub_ops",
    "unique_ops",
    "version_with_calls",
    "warn_undeclared",
]

log = logging.getLogger(__name__)

_OP_MEMBERS = ("name", "ref", "version", "run_batch", "estimate", "policy")
_warned: set[tuple[str, str]] = set()
_warned_lock = threading.Lock()


def is_op(value: Any) -> bool:
    """Whether ``value`` is an op (checked on its type: reading ``version`` could recurse).

    >>> from weave_stream.ops.decorator import op
    >>> is_op(op(lambda text: text)), is_op(len), is_op(op)
    (True, False, False)
    """
    if isinstance(value, type | types.ModuleType):
        return False
    kind = type(value)
    return all(hasattr(kind, member) for member in _OP_MEMBERS)


def fold_calls(own_version: str, refs: Iterable[str]) -> str:
    """``own_version`` folded with the refs of the ops it calls (unchanged when none)."""
    ordered = sorted(set(refs))
    if not ordered:
        return own_version
    hasher = hashlib.sha256(b"weave-stream-calls/1\0")
    for part in (own_version, *ordered):
        hasher.update(len(part).to_bytes(8, "big"))
        hasher.update(part.encode())
    return hasher.hexdigest()[: len(own_version)]


def own_ref(op: Any) -> str:
    """An op's ref without what it calls (an op that does not fold calls: its ref)."""
    own = getattr(op, "own_version", None)
    return f"{op.name}:{own}" if isinstance(own, str) else str(op.ref)


def reachable_ops(op: Any) -> list[Any]:
    """Every op ``op`` calls, directly or through others, once each (itself excluded)."""
    start = own_ref(op)
    seen = {id(op)}
    found: dict[str, Any] = {}
    stack = list(getattr(op, "sub_ops", ()))
    while stack:
        sub = stack.pop()
        if id(sub) in seen:
            continue
        seen.add(id(sub))
        ref = own_ref(sub)
        if ref != start:
            found.setdefault(ref, sub)
        stack.extend(getattr(sub, "sub_ops", ()))
    return list(found.values())


def version_with_calls(op: Any, own_version: str) -> str:
    """The version of ``op``: ``own_version`` folded with the own refs of all it reaches."""
    return fold_calls(own_version, (own_ref(sub) for sub in reachable_ops(op)))


def declared_calls(calls: Any, where: str) -> tuple[tuple[Any, float | None], ...]:
    """``calls=`` as ``((op, calls per input or None), ...)``; an error names a non-op.

    >>> from weave_stream.ops.decorator import op
    >>> shout = op(lambda text: text.upper())
    >>> [(o.name, n) for o, n in declared_calls({shout: 2}, "f")]
    [('<lambda>', 2.0)]
    >>> declared_calls(["embed"], "summarise")  # doctest: +ELLIPSIS
    Traceback (most recent call last):
    ...
    weave_stream.errors.OpDefinitionError: op 'summarise': calls= lists 'embed', which is...
    """
    if calls is None:
        return ()
    pairs = list(calls.items()) if isinstance(calls, Mapping) else [(item, None) for item in calls]
    declared = []
    for item, count in pairs:
        if not is_op(item):
            hint = (
                " (a class op: pass the op it makes, e.g. Judge(prompt=...))"
                if inspect.isclass(getattr(item, "__wrapped_op__", None))
                else ""
            )
            raise OpDefinitionError(
                f"op {where!r}: calls= lists {item!r:.80}, which is not an op{hint}; "
                "list the ops its code calls, e.g. calls=[embed, judge]"
            )
        if count is not None and (
            isinstance(count, bool) or not isinstance(count, int | float) or count < 0
        ):
            raise OpDefinitionError(
                f"op {where!r}: calls= says {count!r} calls of {item.name!r} per input; "
                "give a number >= 0"
            )
        declared.append((item, None if count is None else float(count)))
    return tuple(declared)


def static_sub_ops(target: Any, instance: Any = None) -> list[Any]:
    """The ops the code of ``target`` (a function or class) uses by name, in a stable order."""
    found: dict[int, Any] = {}
    _scan(target, found, set())
    if instance is not None:
        read = _names_read(_functions_of(type(instance)))
        for name, value in vars(instance).items():
            if name in read:
                for item in value if isinstance(value, list | tuple) else (value,):
                    if is_op(item):
                        found.setdefault(id(item), item)
    return list(found.values())


def unique_ops(ops: Iterable[Any], owner: Any) -> tuple[Any, ...]:
    """``ops`` once each (by identity), in order, without ``owner`` itself."""
    return tuple({id(sub): sub for sub in ops if sub is not owner}.values())


def ops_in_params(params: Mapping[str, Any]) -> tuple[list[Any], dict[str, Any]]:
    """The ops among a class op's parameters (alone or in a list), and the parameters
    with each op written as ``op:<name>`` (its ref enters the version as a call).

    >>> from weave_stream.ops.decorator import op
    >>> shout = op(name="shout")(lambda text: text.upper())
    >>> found, written = ops_in_params({"inner": shout, "labels": ["a"]})
    >>> [o.name for o in found], written
    (['shout'], {'inner': 'op:shout', 'labels': ['a']})
    """
    found: list[Any] = []
    written: dict[str, Any] = {}
    for key, value in params.items():
        items = value if isinstance(value, list | tuple) else (value,)
        ops = [item for item in items if is_op(item)]
        found += ops
        if not ops:
            written[key] = value
        elif is_op(value):
            written[key] = f"op:{value.name}"
        else:
            written[key] = [f"op:{item.name}" if is_op(item) else item for item in value]
    return found, written


def covers(caller: Any, sub: Any, undeclared: set[str]) -> bool:
    """Whether ``caller``'s version covers calls of ``sub``; a sub-op it does not cover
    is added to ``undeclared`` and warned about once."""
    known = getattr(caller, "sub_ops", ())
    if sub is caller or any(sub is op for op in known):
        return True
    ref = sub.ref
    if ref == caller.ref or any(op.ref == ref for op in known):
        return True
    if ref not in undeclared:
        undeclared.add(ref)
        warn_undeclared(caller, sub)
    return False


def warn_undeclared(caller: Any, sub: Any) -> None:
    """Warn, once per process and pair, that ``caller`` called ``sub`` without covering it."""
    pair = (str(caller.name), str(sub.ref))
    with _warned_lock:
        if pair in _warned:
            return
        _warned.add(pair)
    log.warning(
        "op %s called op %s, which its version does not cover: a change to %s will not "
        "change %s's ref, so its cached values would go stale; declare it with "
        "@op(calls=[%s]) or call it by a name the code uses",
        caller.ref,
        sub.ref,
        sub.name,
        caller.name,
        sub.name,
    )


def _scan(obj: Any, found: dict[int, Any], seen: set[int]) -> None:
    if id(obj) in seen:
        return
    seen.add(id(obj))
    for function in _functions_of(obj):
        names = _names_read([function])
        module_name = getattr(function, "__module__", None)
        # Sorted: the order of sub-ops (plans list them so) is the same in every process.
        candidates = [function.__globals__[n] for n in sorted(names) if n in function.__globals__]
        cells = zip(function.__code__.co_freevars, function.__closure__ or (), strict=False)
        for _, cell in cells:
            try:
                candidates.append(cell.cell_contents)
            except ValueError:  # an empty cell: a name bound later in the outer function
                continue
        for value in candidates:
            if is_op(value):
                found.setdefault(id(value), value)
            elif isinstance(value, types.ModuleType):
                for name in sorted(names):  # module.attribute: an op reached through a module
                    attribute = getattr(value, name, None)
                    if attribute is not None and is_op(attribute):
                        found.setdefault(id(attribute), attribute)
            elif (inspect.isfunction(value) or inspect.isclass(value)) and (
                getattr(value, "__module__", None) == module_name
            ):
                _scan(value, found, seen)  # a helper of the same module may call ops


def _functions_of(obj: Any) -> list[Any]:
    obj = inspect.unwrap(obj) if inspect.isfunction(obj) or inspect.ismethod(obj) else obj
    obj = getattr(obj, "__func__", obj)
    if inspect.isfunction(obj):
        return [obj]
    functions = []
    if inspect.isclass(obj):
        for klass in obj.__mro__:
            if klass is object or klass.__module__ == "builtins":
                continue
            for member in vars(klass).values():
                member = getattr(member, "__func__", member)  # staticmethod, classmethod
                if isinstance(member, property):
                    member = member.fget
                if inspect.isfunction(member):
                    functions.append(member)
    return functions


def _names_read(functions: Iterable[Any]) -> set[str]:
    names: set[str] = set()
    for function in functions:
        stack = [function.__code__]
        while stack:
            code = stack.pop()
            names.update(code.co_names)
            names.update(code.co_freevars)
            stack.extend(c for c in code.co_consts if isinstance(c, types.CodeType))
    return names
