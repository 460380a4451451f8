"""Names in a query: call fields and derived columns, and the SQL that reads them.

A **call field** is a column of the calls table (``op_name``, ``trace_id``,
``started_at``, ``latency_ms``, ``status``...) or a path into one of its JSON fields
(``inputs.document``, ``output.total``, ``attributes.env``, ``summary.usage``).

A **derived column** is ``<topology>.<column>[@<op ref>][.<field>...][#<meta>]``:
``text_extract.doc_class.label``, ``text_extract.faithfulness.score``, the whole
value ``text_extract.doc_class``, a pinned version
``text_extract.doc_class@classify:1a2b3c.label``, or what is known about the value
rather than the value: ``#error``, ``#op_ref``, ``#latency_ms``, ``#cost``,
``#computed_at``, ``#cached``.

>>> parse_path("inputs.document")
CallPath(text='inputs.document', column='inputs', parts=('document',))
>>> p = parse_path("text_extract.doc_class@classify:ab12.label")
>>> (p.topology, p.column, p.op_ref, p.parts, p.meta)
('text_extract', 'doc_class', 'classify:ab12', ('label',), None)
>>> parse_path("text_extract.faithfulness#error").meta
'error'
>>> json_path(("messages", "0", "content"))
'$."messages"[0]."content"'
>>> literal("it's"), literal(3), literal(None)
("'it''s'", '3', 'NULL')
"""

from __future__ import annotations

import difflib
import math
import re
from dataclasses import dataclass
from datetime import datetime
from typing import Any

import orjson

from weave_stream.errors import QueryError

__all__ = [
    "CALL_FIELDS",
    "META_FIELDS",
    "Accessor",
    "CallPath",
    "Hints",
    "Path",
    "ValuePath",
    "json_path",
    "literal",
    "parse_path",
    "quote",
]

# Every column of the calls table a query may read, and what it holds.
CALL_FIELDS: dict[str, str] = {
    **dict.fromkeys(
        [
            "id",
            "project_id",
            "op_name",
            "op",
            "display_name",
            "trace_id",
            "parent_id",
            "thread_id",
            "turn_id",
            "kind",
            "status",
            "exception",
            "wb_user_id",
            "wb_run_id",
            "date",
        ],
        "text",
    ),
    **dict.fromkeys(
        [
            "latency_ms",
            "prompt_tokens",
            "completion_tokens",
            "total_tokens",
            "cost",
            "wb_run_step",
            "wb_run_step_end",
            "storage_size_bytes",
            "total_storage_size_bytes",
        ],
        "number",
    ),
    **dict.fromkeys(["started_at", "ended_at", "deleted_at", "stored_at"], "time"),
    **dict.fromkeys(["inputs", "output", "summary", "attributes", "otel_dump", "extra"], "json"),
}
META_FIELDS: dict[str, str] = {
    "error": "text",
    "op_ref": "text",
    "latency_ms": "number",
    "cost": "number",
    "computed_at": "time",
    "cached": "bool",
    "trial": "number",
}
_NAME = r"[A-Za-z0-9_\-]+"
_VALUE_PATH = re.compile(
    rf"^(?P<topology>{_NAME})\.(?P<column>{_NAME})"
    r"(?:@(?P<ref>[^.#@\s]+:[^.#@\s]+))?"
    r"(?P<fields>(?:\.[^.#@]+)*)"
    r"(?:#(?P<meta>\w+))?$"
)
_NUMERIC_JSON = "('BIGINT', 'UBIGINT', 'DOUBLE', 'HUGEINT', 'INTEGER')"


@dataclass(frozen=True)
class CallPath:
    """A call field, or a path into one of its JSON fields."""

    text: str
    column: str
    parts: tuple[str, ...] = ()


@dataclass(frozen=True)
class ValuePath:
    """A derived column (optionally pinned to an op ref), a field of it, or a meta field."""

    text: str
    topology: str
    column: str
    op_ref: str | None = None
    parts: tuple[str, ...] = ()
    meta: str | None = None

    @property
    def key(self) -> tuple[str, str, str | None]:
        """The values joined for it: (topology, column, op ref or None for the latest)."""
        return (self.topology, self.column, self.op_ref)


Path = CallPath | ValuePath


def parse_path(text: Any) -> Path:
    """Parse a field or derived-column name; QueryError naming the known fields when wrong."""
    if not isinstance(text, str) or not text.strip():
        raise QueryError(
            f"a field name is a non-empty string such as inputs.document, got {text!r}"
        )
    text = text.strip()
    head, _, rest = text.partition(".")
    if head in CALL_FIELDS and "@" not in head and "#" not in text:
        if rest and CALL_FIELDS[head] != "json":
            raise QueryError(
                f"{text!r} goes into {head!r}, which is a plain value; only "
                f"{', '.join(k for k, v in CALL_FIELDS.items() if v == 'json')} hold fields"
            )
        parts = tuple(rest.split(".")) if rest else ()
        if any(not part for part in parts):
            raise QueryError(f"{text!r} has an empty part (two dots, or a trailing dot)")
        return CallPath(text, head, parts)
    match = _VALUE_PATH.match(text)
    if match is None:
        close = difflib.get_close_matches(head, list(CALL_FIELDS), n=1)
        hint = f"did you mean {close[0]!r}? " if close else ""
        raise QueryError(
            f"unknown field {text!r}: {hint}a call field is one of {', '.join(CALL_FIELDS)} "
            "(paths go into inputs, output, summary, attributes, otel_dump: inputs.document); "
            "a derived column is <topology>.<column>[@<op ref>][.<field>][#<meta>], e.g. "
            "text_extract.faithfulness.score"
        )
    meta = match.group("meta")
    if meta is not None and meta not in META_FIELDS:
        raise QueryError(f"{text!r}: unknown meta field #{meta}; known: {', '.join(META_FIELDS)}")
    fields = tuple(match.group("fields").split(".")[1:])
    return ValuePath(text, match["topology"], match["column"], match["ref"], fields, meta)


def quote(name: str) -> str:
    """A quoted SQL identifier."""
    return '"' + name.replace('"', '""') + '"'


def literal(value: Any) -> str:
    """A SQL literal for a filter operand (strings quoted, JSON for lists and dicts)."""
    if value is None:
        return "NULL"
    if isinstance(value, bool):
        return "TRUE" if value else "FALSE"
    if isinstance(value, int):
        return str(value)
    if isinstance(value, float):
        return repr(value) if math.isfinite(value) else f"'{value}'::DOUBLE"
    if isinstance(value, datetime):
        return f"TIMESTAMPTZ '{value.isoformat()}'"
    if isinstance(value, str):
        return "'" + value.replace("'", "''") + "'"
    return literal(orjson.dumps(value, option=orjson.OPT_NON_STR_KEYS).decode())


def json_path(parts: tuple[str, ...]) -> str:
    """A JSON path (``$."a"[0]``) for path parts; numeric parts index lists."""
    out = "$"
    for part in parts:
        if part.lstrip("-").isdigit():
            index = int(part)
            out += f"[{index}]" if index >= 0 else f"[#{index}]"
        else:
            out += '."' + part.replace('"', '\\"') + '"'
    return out


@dataclass(frozen=True)
class Hints:
    """Types a derived column has held (the catalog): of its values, of one field."""

    kinds: frozenset[str] | None = None  # value kinds: number, text, object, json...
    field: frozenset[str] | None = None  # a top-level field's types: number, text


class Accessor:
    """SQL reading one path, typed by what a comparison or aggregate needs.

    ``relation`` is the SQL alias holding the path's column (``c`` for calls, the
    join alias of a derived column). A reading of the wrong type is NULL, so a
    comparison between incomparable values does not hold (as in topology filters).
    ``hints`` (from the store's catalog) are the types a derived column's values and
    top-level field have held: a type never seen is not read at all.
    """

    def __init__(self, path: Path, relation: str, hints: Hints | None = None) -> None:
        self.path = path
        self.relation = relation
        self.hints = hints

    def _field_lacks(self, kind: str) -> bool:
        """Whether the catalog says this top-level field never held a ``kind``."""
        hints = self.hints
        return hints is not None and hints.field is not None and kind not in hints.field

    def _col(self, name: str) -> str:
        return f"{self.relation}.{quote(name)}"

    def _json_source(self) -> tuple[str, str] | None:
        """(JSON text column, JSON path) when the path is read from JSON."""
        path = self.path
        if isinstance(path, CallPath):
            if CALL_FIELDS[path.column] == "json":
                return self._col(path.column), json_path(path.parts)
            return None
        if path.meta is None and path.parts:
            return self._col("value_json"), json_path(path.parts)
        return None

    def _typed(self) -> tuple[str, str] | None:
        """(SQL, type) of a plain typed column: call columns and meta fields."""
        path = self.path
        if isinstance(path, CallPath) and CALL_FIELDS[path.column] != "json":
            return self._col(path.column), CALL_FIELDS[path.column]
        if isinstance(path, ValuePath) and path.meta is not None:
            return self._col(path.meta), META_FIELDS[path.meta]
        return None

    @property
    def kind(self) -> str:
        """``text``, ``number``, ``time``, ``bool`` for typed columns; ``json`` or ``value``."""
        typed = self._typed()
        if typed is not None:
            return typed[1]
        return "json" if isinstance(self.path, CallPath) else "value"

    def number(self) -> str:
        """The path as DOUBLE (NULL when it is not a number)."""
        typed = self._typed()
        if typed is not None:
            return typed[0] if typed[1] == "number" else "NULL::DOUBLE"
        source = self._json_source()
        json_number = ""
        if source is not None:
            column, where = source
            json_number = (
                f"CASE WHEN json_type({column}, '{where}') IN {_NUMERIC_JSON} "
                f"THEN TRY_CAST(json_extract_string({column}, '{where}') AS DOUBLE) END"
            )
        if isinstance(self.path, CallPath):
            return json_number
        parts = self.path.parts
        if not parts:
            return self._col("number")
        if len(parts) > 1:
            return json_number
        if parts[0].lstrip("-").isdigit():
            index = int(parts[0])
            vector = f"{self._col('vector')}[{index + 1 if index >= 0 else index}]"
            return f"coalesce(CAST({vector} AS DOUBLE), {json_number})"
        # Every scalar top-level field of a dict is in the maps, JSON kept or not.
        if self._field_lacks("number"):
            return "NULL::DOUBLE"
        return f"{self._col('fields_number')}[{literal(parts[0])}]"

    def text(self) -> str:
        """The path as VARCHAR (NULL when it is not a string)."""
        typed = self._typed()
        if typed is not None:
            return typed[0] if typed[1] == "text" else "NULL::VARCHAR"
        source = self._json_source()
        json_text = "NULL::VARCHAR"
        if source is not None:
            column, where = source
            json_text = (
                f"CASE WHEN json_type({column}, '{where}') = 'VARCHAR' "
                f"THEN json_extract_string({column}, '{where}') END"
            )
        if isinstance(self.path, CallPath):
            return json_text
        parts = self.path.parts
        if not parts:
            return self._col("text")
        if len(parts) > 1:
            return json_text
        if parts[0].lstrip("-").isdigit():
            return json_text
        if self._field_lacks("text"):
            return "NULL::VARCHAR"
        return f"{self._col('fields_text')}[{literal(parts[0])}]"

    def time(self) -> str | None:
        """The path as a timestamp, for time columns only."""
        typed = self._typed()
        return typed[0] if typed is not None and typed[1] == "time" else None

    def boolean(self) -> str:
        """The path as BOOLEAN (NULL when it is not one)."""
        typed = self._typed()
        if typed is not None:
            return typed[0] if typed[1] == "bool" else "NULL::BOOLEAN"
        if isinstance(self.path, ValuePath) and not self.path.parts:
            return f"CASE WHEN {self._col('kind')} = 'bool' THEN {self._col('number')} = 1 END"
        source = self._json_source()
        if source is None:
            return "NULL::BOOLEAN"
        column, where = source
        return (
            f"CASE WHEN json_type({column}, '{where}') = 'BOOLEAN' "
            f"THEN CAST(json_extract({column}, '{where}') AS BOOLEAN) END"
        )

    def json(self) -> str:
        """The path as minified JSON text (to compare lists and objects)."""
        source = self._json_source()
        if source is not None:
            return f"CAST(json_extract({source[0]}, '{source[1]}') AS VARCHAR)"
        if isinstance(self.path, ValuePath) and self.path.meta is None:
            return self._col("value_json")
        return "NULL::VARCHAR"

    def exists(self) -> str:
        """Whether the path holds a value (JSON null and a failed value count as absent)."""
        typed = self._typed()
        if typed is not None:
            return f"({typed[0]} IS NOT NULL)"
        source = self._json_source()
        json_exists = "FALSE"
        if source is not None:
            column, where = source
            json_exists = f"coalesce(json_type({column}, '{where}') <> 'NULL', FALSE)"
        if isinstance(self.path, CallPath):
            return json_exists
        if not self.path.parts:
            return f"coalesce({self._col('kind')} <> 'null', FALSE)"
        return f"({self.number()} IS NOT NULL OR {self.text()} IS NOT NULL OR {json_exists})"

    def array_contains(self, item: Any) -> str:
        """Whether the path is a list holding ``item`` (or, for strings, a substring)."""
        source = self._json_source()
        checks = []
        if isinstance(item, str):
            checks.append(f"contains({self.text()}, {literal(item)})")
        if source is not None:
            column, where = source
            element = literal(orjson.dumps(item).decode())
            checks.append(
                f"(json_type({column}, '{where}') = 'ARRAY' AND list_contains("
                f"CAST(json_extract({column}, '{where}[*]') AS VARCHAR[]), {element}))"
            )
            if isinstance(item, str):
                key = json_path((*self._parts(), item))
                is_object = f"json_type({column}, '{where}') = 'OBJECT'"
                checks.append(f"({is_object} AND json_exists({column}, '{key}'))")
        elif isinstance(self.path, ValuePath) and isinstance(item, int | float):
            checks.append(f"list_contains({self._col('vector')}, {literal(float(item))})")
        return "(" + " OR ".join(checks) + ")" if checks else "FALSE"

    def _parts(self) -> tuple[str, ...]:
        return self.path.parts

    def projections(self) -> dict[str, str]:
        """Candidate columns whose first non-null, in order, is the path's value."""
        typed = self._typed()
        if typed is not None:
            return {"v": typed[0]}
        source = self._json_source()
        if isinstance(self.path, CallPath):
            assert source is not None
            return {"j": f"CAST(json_extract({source[0]}, '{source[1]}') AS VARCHAR)"}
        if not self.path.parts:
            return {
                f"w_{name}": self._col(name)
                for name in (
                    [
                        "kind",
                        "number",
                        "text",
                        "vector",
                        "fields_number",
                        "fields_text",
                        "value_json",
                    ]
                )
            }
        hints = self.hints
        out = {}
        if hints is None or hints.kinds is None or "json" in hints.kinds:
            out["j"] = self.json()  # only values kept as JSON hold non-scalar fields
        if len(self.path.parts) == 1:
            if not self._field_lacks("number"):
                out["n"] = self.number()
            if not self._field_lacks("text"):
                out["t"] = self.text()
        return out or {"t": "NULL::VARCHAR"}  # a field the column never held
