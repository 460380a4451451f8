"""Which calls, and which of their fields: dotted paths, filters and sampling.

**Paths** name a field of a call (``inputs.document``, ``output.total``,
``attributes.model``, ``summary.usage``, ``inputs.messages.0.content``) or the
value of another column (``columns.doc_class.label``). The first part must be a
field of a Weave call; a numeric part indexes a list.

**Filters** are plain mappings, so a topology never runs user code to select
calls. A key is a path, its value an expected value or a mapping of operators::

    attributes.env: prod                       # equals
    attributes.model: {in: [gpt-4o, gpt-4o-mini]}
    output.total: {gt: 0, le: 10000}           # several operators: all must hold
    exception: {exists: false}
    inputs.document: {contains: invoice}       # substring, or member of a list
    any: [{attributes.env: prod}, {attributes.env: staging}]
    not: {op_name: {startswith: test-}}

Operators: eq, ne, in, not_in, contains, startswith, exists, gt, ge, lt, le. A
comparison with a missing field, or between incomparable values, does not hold.

**Sampling** is deterministic per call id: a call is kept when a hash of its id,
read as a number in [0, 1), is below the rate. Every runner, every process and
every topology keeps the same calls for the same rate.

>>> f = compile_filter({"attributes.env": "prod", "output.total": {"gt": 10}})
>>> f.matches({"attributes": {"env": "prod"}, "output": {"total": 12}}, {})
True
>>> f.matches({"attributes": {"env": "dev"}, "output": {"total": 12}}, {})
False
>>> FieldPath.parse("columns.doc_class.label").column
'doc_class'
>>> sampled("call-1", 1.0), round(sample_point("call-1"), 3)
(True, 0.365)
"""

from __future__ import annotations

import difflib
import fnmatch
import hashlib
import operator
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from weave_stream.errors import MissingFieldError
from weave_stream.ingest.call import Call

__all__ = [
    "MISSING",
    "FieldPath",
    "Filter",
    "compile_filter",
    "op_name_matches",
    "sample_point",
    "sampled",
]

# Fields of a call that hold structured data a path may go into.
_NESTED_FIELDS = frozenset({"inputs", "output", "attributes", "summary", "otel_dump"})
_CALL_FIELDS = frozenset(Call.model_fields)
MISSING = object()  # what :func:`walk` gives for a path that is not there


@dataclass(frozen=True)
class FieldPath:
    """A parsed dotted path into a call, or into another column's value."""

    text: str
    parts: tuple[str, ...]
    column: str | None = None  # set for columns.<name>...

    @classmethod
    def parse(cls, text: Any) -> FieldPath:
        """Parse ``text``; raise ValueError saying what is wrong and what would be right."""
        if not isinstance(text, str) or not text.strip():
            raise ValueError(
                f"a path must be a dotted string such as inputs.document, got {text!r}"
            )
        parts = tuple(text.strip().split("."))
        if any(not part for part in parts):
            raise ValueError(f"path {text!r} has an empty part (two dots, or a leading dot)")
        if parts[0] == "columns":
            if len(parts) < 2:
                raise ValueError(f"path {text!r} names no column; write columns.<column>[.field]")
            return cls(text, parts[2:], column=parts[1])
        head = parts[0]
        if head not in _CALL_FIELDS:
            close = difflib.get_close_matches(head, _CALL_FIELDS, n=1)
            hint = f"did you mean {close[0]!r}? " if close else ""
            raise ValueError(
                f"path {text!r} starts with {head!r}, which is not a field of a call; {hint}use "
                f"one of {', '.join(sorted(_CALL_FIELDS))}, or columns.<column> for another column"
            )
        if len(parts) > 1 and head not in _NESTED_FIELDS:
            raise ValueError(
                f"path {text!r} goes into {head!r}, which is a plain value; only "
                f"{', '.join(sorted(_NESTED_FIELDS))} hold fields"
            )
        return cls(text, parts)

    def resolve(self, call: Mapping[str, Any], columns: Mapping[str, Any]) -> Any:
        """The value at this path; raise :class:`MissingFieldError` when it is not there."""
        if self.column is not None:
            if self.column not in columns:
                raise MissingFieldError(f"column {self.column!r} has no value for this call")
            return _walk(columns[self.column], self.parts, self.text, f"columns.{self.column}")
        head, rest = self.parts[0], self.parts[1:]
        return _walk(call.get(head), rest, self.text, head)


def walk(value: Any, parts: Sequence[str]) -> Any:
    """The value at ``parts`` below ``value`` (mapping keys, list indexes), or
    :data:`MISSING`.

    >>> walk({"a": [{"b": 1}, {"b": 2}]}, ["a", "-1", "b"]), walk({"a": []}, ["a", "0"]) is MISSING
    (2, True)
    """
    for part in parts:
        if value.__class__ is dict and part in value:  # the common case first: hot path
            value = value[part]
        elif (
            isinstance(value, list)
            and part.lstrip("-").isdigit()
            and -len(value) <= int(part) < len(value)
        ):
            value = value[int(part)]
        elif isinstance(value, Mapping) and part in value:
            value = value[part]
        else:
            return MISSING
    return value


def _walk(value: Any, parts: Sequence[str], text: str, walked: str) -> Any:
    """:func:`walk`, raising :class:`MissingFieldError` that names the missing part."""
    found = walk(value, parts)
    if found is not MISSING:
        return found
    depth = next(d for d in range(len(parts)) if walk(value, parts[: d + 1]) is MISSING)
    reached = ".".join([walked, *parts[:depth]])
    raise MissingFieldError(f"{text}: {reached} has no {parts[depth]!r}")


def _contains(container: Any, item: Any) -> bool:
    if isinstance(container, str):
        return isinstance(item, str) and item in container
    return isinstance(container, list | tuple | Mapping) and item in container


_OPERATORS: dict[str, Callable[[Any, Any], bool]] = {
    "eq": operator.eq,
    "ne": operator.ne,
    "in": lambda value, options: value in options,
    "not_in": lambda value, options: value not in options,
    "contains": _contains,
    "startswith": lambda value, prefix: isinstance(value, str) and value.startswith(prefix),
    "gt": operator.gt,
    "ge": operator.ge,
    "lt": operator.lt,
    "le": operator.le,
}
_LIST_OPERATORS = frozenset({"in", "not_in"})


@dataclass(frozen=True)
class Filter:
    """A compiled filter: a tree of conditions over paths (see the module docstring)."""

    kind: str  # "all", "any", "not", or an operator
    children: tuple[Filter, ...] = ()
    path: FieldPath | None = None
    operand: Any = None

    def matches(self, call: Mapping[str, Any], columns: Mapping[str, Any]) -> bool:
        """True when ``call`` (as JSON data) and its ``columns`` values pass."""
        if self.kind == "all":
            return all(child.matches(call, columns) for child in self.children)
        if self.kind == "any":
            return any(child.matches(call, columns) for child in self.children)
        if self.kind == "not":
            return not self.children[0].matches(call, columns)
        assert self.path is not None
        try:
            value = self.path.resolve(call, columns)
        except MissingFieldError:
            value = MISSING
        if self.kind == "exists":
            return (value is not MISSING and value is not None) == bool(self.operand)
        if value is MISSING:
            return self.kind in ("ne", "not_in")
        try:
            return bool(_OPERATORS[self.kind](value, self.operand))
        except TypeError:  # e.g. "abc" > 3: incomparable, so the condition does not hold
            return False

    @property
    def paths(self) -> list[FieldPath]:
        """Every path the filter reads."""
        own = [self.path] if self.path is not None else []
        return own + [path for child in self.children for path in child.paths]


def compile_filter(spec: Any, where: str = "filter") -> Filter:
    """Compile a filter mapping; raise ValueError naming the part of ``where`` that is wrong."""
    if not isinstance(spec, Mapping) or not spec:
        raise ValueError(
            f"{where}: a filter is a non-empty mapping of path -> condition, got {spec!r}"
        )
    children = [_compile_entry(key, value, f"{where}.{key}") for key, value in spec.items()]
    return children[0] if len(children) == 1 else Filter("all", tuple(children))


def _compile_entry(key: Any, value: Any, where: str) -> Filter:
    if key in ("all", "any"):
        if not isinstance(value, list) or not value:
            raise ValueError(f"{where}: '{key}' takes a non-empty list of filters, got {value!r}")
        return Filter(
            key, tuple(compile_filter(item, f"{where}[{i}]") for i, item in enumerate(value))
        )
    if key == "not":
        return Filter("not", (compile_filter(value, where),))
    path = FieldPath.parse(key) if isinstance(key, str) else FieldPath.parse(repr(key))
    if not isinstance(value, Mapping):
        return Filter("eq", path=path, operand=value)
    if not value:
        raise ValueError(
            f"{where}: an empty mapping is not a condition; write {{eq: {{}}}} to compare"
        )
    conditions = []
    for name, operand in value.items():
        if name != "exists" and name not in _OPERATORS:
            known = ", ".join(["exists", *_OPERATORS])
            raise ValueError(f"{where}: unknown operator {name!r}; use one of {known}")
        if name in _LIST_OPERATORS and not isinstance(operand, list):
            raise ValueError(f"{where}: '{name}' takes a list, got {operand!r}")
        if name == "exists" and not isinstance(operand, bool):
            raise ValueError(f"{where}: 'exists' takes true or false, got {operand!r}")
        conditions.append(Filter(name, path=path, operand=operand))
    return conditions[0] if len(conditions) == 1 else Filter("all", tuple(conditions))


def sample_point(call_id: str) -> float:
    """The call's fixed point in [0, 1): the first 8 bytes of SHA-256 of its id."""
    digest = hashlib.sha256(call_id.encode()).digest()
    return int.from_bytes(digest[:8], "big") / 2**64


def sampled(call_id: str, rate: float) -> bool:
    """True when the call is in a sample of ``rate`` (the same answer everywhere)."""
    return rate >= 1.0 or sample_point(call_id) < rate


def op_name_matches(pattern: str, op_name: str | None) -> bool:
    """Whether a call's ``op_name`` matches ``pattern`` (a glob: exact, or its short name).

    >>> op_name_matches("text-extract", "weave:///acme/app/op/text-extract:v3")
    True
    >>> op_name_matches("text-*", "text-extract"), op_name_matches("extract", "text-extract")
    (True, False)
    """
    if op_name is None:
        return False
    short = op_name.rsplit("/op/", 1)[-1].split(":", 1)[0]  # weave:///e/p/op/NAME:digest
    return fnmatch.fnmatchcase(op_name, pattern) or fnmatch.fnmatchcase(short, pattern)
