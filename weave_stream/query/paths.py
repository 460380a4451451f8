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
    "CallPath",
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
