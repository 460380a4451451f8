"""Queries as text: a ``--where`` filter read from YAML, results as a table, CSV or JSON lines.

Shared by ``weave-stream calls`` and the workers' ``GET /calls``.
"""

from __future__ import annotations

import math
from typing import Any

import orjson
import yaml

from weave_stream.errors import QueryError

__all__ = ["format_frame", "parse_where"]

_CELL_CHARS = 60


def parse_where(text: str | None) -> dict[str, Any] | None:
    """A ``--where`` filter: a YAML (or JSON) mapping; errors name the line and column.

    >>> parse_where("{text_extract.faithfulness.score: {lt: 0.5}}")
    {'text_extract.faithfulness.score': {'lt': 0.5}}
    >>> parse_where("{status: error")  # doctest: +ELLIPSIS
    Traceback (most recent call last):
    ...
    weave_stream.errors.QueryError: --where is not a YAML mapping: ... at line 1, column 15
    """
    if text is None or not text.strip():
        return None
    try:
        parsed = yaml.safe_load(text)
    except yaml.MarkedYAMLError as exc:
        mark = exc.problem_mark
        where = f" at line {mark.line + 1}, column {mark.column + 1}" if mark else ""
        raise QueryError(f"--where is not a YAML mapping: {exc.problem}{where}") from None
    except yaml.YAMLError as exc:
        raise QueryError(f"--where is not a YAML mapping: {exc}") from None
    if not isinstance(parsed, dict):
        raise QueryError(f"--where must be a mapping such as '{{status: error}}', got {parsed!r}")
    return parsed


def _cell(value: Any) -> Any:
    if isinstance(value, dict | list):
        value = orjson.dumps(value, option=orjson.OPT_NON_STR_KEYS).decode()
    if isinstance(value, str):
        value = " ".join(value.split())
        if len(value) > _CELL_CHARS:
            value = value[: _CELL_CHARS - 1] + "…"
    return value


def _plain(value: Any) -> Any:
    """JSON for what orjson does not know: timestamps as ISO-8601, arrays as lists."""
    if hasattr(value, "isoformat"):
        return value.isoformat()
    if hasattr(value, "tolist"):
        return value.tolist()
    return str(value)


def format_frame(frame: Any, output: str) -> str:
    """A result DataFrame as an aligned table (long cells cut), CSV or JSON lines."""
    if output == "json":
        lines = []
        for record in frame.to_dict("records"):
            clean = {
                k: None if isinstance(v, float) and math.isnan(v) else v for k, v in record.items()
            }
            lines.append(
                orjson.dumps(clean, default=_plain, option=orjson.OPT_NON_STR_KEYS).decode()
            )
        return "\n".join(lines) + ("\n" if lines else "")
    if output == "csv":
        shown = frame.copy()
        for name in shown.columns:
            shown[name] = shown[name].map(
                lambda v: orjson.dumps(v).decode() if isinstance(v, dict | list) else v
            )
        return str(shown.to_csv(index=False))
    if frame.empty:
        return "(no calls)\n"
    shown = frame.copy()
    for name in shown.columns:
        shown[name] = shown[name].map(_cell)
    return str(shown.to_string(index=False, na_rep="-", float_format=lambda x: f"{x:.4g}")) + "\n"
