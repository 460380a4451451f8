"""The topology filter language, over the store: a mapping compiled to SQL.

The same language as topology filters (:mod:`weave_stream.topology.selection`) —
a key is a path, its value an expected value or a mapping of operators (eq, ne, in,
not_in, contains, startswith, exists, gt, ge, lt, le), combined with ``all``,
``any`` and ``not`` — where a path may also be a derived column
(``text_extract.faithfulness.score``). The semantics are the same: a comparison
with a missing field, or between incomparable values, does not hold (so ``ne`` and
``not_in`` hold for a missing field).

A malformed filter is a :class:`~weave_stream.errors.QueryError` naming its position:

>>> parse_filter({"any": [{"status": "error"}, {"latency_ms": {"gtt": 5}}]})  # doctest: +ELLIPSIS
Traceback (most recent call last):
...
weave_stream.errors.QueryError: where.any[1].latency_ms: unknown operator 'gtt'; use one of ...
>>> node = parse_filter({"inputs.document": {"contains": "invoice"}, "cost": {"lt": 0.5}})
>>> [p.text for p in node.paths]
['inputs.document', 'cost']
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any

from weave_stream.errors import QueryError
from weave_stream.ingest.call import parse_timestamp
from weave_stream.query.accessor import Accessor
from weave_stream.query.paths import Path, literal, parse_path

__all__ = ["OPERATORS", "Condition", "filter_sql", "parse_filter"]

OPERATORS = ("eq", "ne", "in", "not_in", "contains", "startswith", "gt", "ge", "lt", "le")
_LIST_OPERATORS = frozenset({"in", "not_in"})
_ORDER = {"gt": ">", "ge": ">=", "lt": "<", "le": "<="}


@dataclass(frozen=True)
class Condition:
    """A parsed filter: ``all``/``any``/``not`` over children, or an operator on a path."""

    kind: str
    children: tuple[Condition, ...] = ()
    path: Path | None = None
    operand: Any = None
    where: str = "where"

    @property
    def paths(self) -> list[Path]:
        """Every path the filter reads."""
        own = [self.path] if self.path is not None else []
        return own + [path for child in self.children for path in child.paths]


def parse_filter(spec: Any, where: str = "where") -> Condition:
    """Parse a filter mapping; QueryError naming the position (``where.any[1].cost``)."""
    if not isinstance(spec, Mapping) or not spec:
        raise QueryError(
            f"{where}: a filter is a non-empty mapping of field -> condition, got {spec!r}"
        )
    children = [_entry(key, value, f"{where}.{key}") for key, value in spec.items()]
    return children[0] if len(children) == 1 else Condition("all", tuple(children), where=where)


def _entry(key: Any, value: Any, where: str) -> Condition:
    if key in ("all", "any"):
        if not isinstance(value, list) or not value:
            raise QueryError(f"{where}: '{key}' takes a non-empty list of filters, got {value!r}")
        items = tuple(parse_filter(item, f"{where}[{i}]") for i, item in enumerate(value))
        return Condition(key, items, where=where)
    if key == "not":
        return Condition("not", (parse_filter(value, where),), where=where)
    try:
        path = parse_path(key)
    except QueryError as exc:
        raise QueryError(f"{where}: {exc}") from None
    if not isinstance(value, Mapping):
        return Condition("eq", path=path, operand=value, where=where)
    if not value:
        raise QueryError(f"{where}: an empty mapping is not a condition; write {{eq: {{}}}}")
    conditions = []
    for name, operand in value.items():
        if name != "exists" and name not in OPERATORS:
            known = ", ".join(["exists", *OPERATORS])
            raise QueryError(f"{where}: unknown operator {name!r}; use one of {known}")
        if name in _LIST_OPERATORS and not isinstance(operand, list):
            raise QueryError(f"{where}.{name}: takes a list, got {operand!r}")
        if name == "exists" and not isinstance(operand, bool):
            raise QueryError(f"{where}.exists: takes true or false, got {operand!r}")
        if name == "startswith" and not isinstance(operand, str):
            raise QueryError(f"{where}.startswith: takes a string, got {operand!r}")
        if name in _ORDER and (
            isinstance(operand, bool) or not isinstance(operand, int | float | str)
        ):
            raise QueryError(f"{where}.{name}: takes a number or a string, got {operand!r}")
        conditions.append(Condition(name, path=path, operand=operand, where=f"{where}.{name}"))
    return (
        conditions[0] if len(conditions) == 1 else Condition("all", tuple(conditions), where=where)
    )


def filter_sql(condition: Condition, accessor: Callable[[Path], Accessor]) -> str:
    """The SQL boolean of ``condition`` (never NULL); ``accessor`` reads each path."""
    kind = condition.kind
    if kind in ("all", "any"):
        joiner = " AND " if kind == "all" else " OR "
        return "(" + joiner.join(filter_sql(c, accessor) for c in condition.children) + ")"
    if kind == "not":
        return f"(NOT {filter_sql(condition.children[0], accessor)})"
    assert condition.path is not None
    reading = accessor(condition.path)
    operand = condition.operand
    if kind == "ne":
        return f"(NOT {_holds(_eq(reading, operand, condition.where))})"
    if kind == "in":
        return _holds(
            " OR ".join(_eq(reading, item, condition.where) for item in operand) or "FALSE"
        )
    if kind == "not_in":
        inner = " OR ".join(_eq(reading, item, condition.where) for item in operand) or "FALSE"
        return f"(NOT {_holds(inner)})"
    if kind == "exists":
        return f"({reading.exists()} = {literal(bool(operand))})"
    if kind == "contains":
        return _holds(reading.array_contains(operand))
    if kind == "startswith":
        return _holds(f"starts_with({reading.text()}, {literal(operand)})")
    if kind in _ORDER:
        return _holds(_compare(reading, _ORDER[kind], operand, condition.where))
    return _holds(_eq(reading, operand, condition.where))


def _holds(sql: str) -> str:
    return f"coalesce(({sql}), FALSE)"


def _moment(operand: Any, where: str) -> str:
    try:
        return literal(parse_timestamp(operand))
    except ValueError as exc:
        raise QueryError(f"{where}: {operand!r} is not a time: {exc}") from None


def _eq(reading: Accessor, operand: Any, where: str) -> str:
    time = reading.time()
    if time is not None and operand is not None:
        return f"{time} = {_moment(operand, where)}"
    if operand is None:
        return f"NOT {reading.exists()}"
    if isinstance(operand, bool):
        return f"{reading.boolean()} = {literal(operand)}"
    if isinstance(operand, int | float):
        return f"{reading.number()} = {literal(operand)}"
    if isinstance(operand, str):
        return f"{reading.text()} = {literal(operand)}"
    return f"{reading.json()} = CAST(json({literal(operand)}) AS VARCHAR)"


def _compare(reading: Accessor, sign: str, operand: Any, where: str) -> str:
    time = reading.time()
    if time is not None:
        return f"{time} {sign} {_moment(operand, where)}"
    if isinstance(operand, str):
        return f"{reading.text()} {sign} {literal(operand)}"
    return f"{reading.number()} {sign} {literal(operand)}"
