"""SQL that reads one path, typed by what a comparison, sort or aggregate needs.

A call field is a column of the calls table (``c.latency_ms``) or a JSON path into one
(``json_extract(c.inputs, '$."document"')``); a derived column's value is read from
its typed columns (``number``, ``text``, ``fields_number['score']``,
``fields_text['label']``), from ``value_json`` for what only JSON holds, or from its
metadata (``error``, ``op_ref``...). A reading of the wrong type is NULL, so a
comparison between incomparable values does not hold, as in topology filters.

>>> from weave_stream.query.paths import parse_path
>>> print(Accessor(parse_path("support.quality.score"), "d0").number())
d0."fields_number"['score']
>>> Accessor(parse_path("latency_ms"), "c").text()
'NULL::VARCHAR'
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import orjson

from weave_stream.query.paths import (
    CALL_FIELDS,
    META_FIELDS,
    CallPath,
    Path,
    ValuePath,
    json_path,
    literal,
    quote,
)

__all__ = ["Accessor", "Hints"]

_NUMERIC_JSON = "('BIGINT', 'UBIGINT', 'DOUBLE', 'HUGEINT', 'INTEGER')"


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
