"""From the SQL's candidate columns to the columns a user asked for.

The SQL gives each output column one or more candidates (``name\\tsuffix``): ``v`` a
typed column as it is; ``j`` JSON text (a path into inputs/output..., or into a
value kept as JSON); ``n`` / ``t`` a derived field read as a number / a text; ``w_*``
the typed parts of a whole derived value. :func:`assemble` picks, per row, the first
candidate present, keeping Arrow arrays whole where one candidate holds everything
(the common case: no per-row Python).

>>> import pyarrow as pa
>>> raw = pa.table({"id\\tv": ["c1", "c2"], "x\\tj": [None, None], "x\\tn": [0.5, None],
...                 "x\\tt": [None, "money"]})
>>> columns = assemble(raw)
>>> list(columns), columns["x"]
(['id', 'x'], [0.5, 'money'])
"""

from __future__ import annotations

from collections import defaultdict
from typing import TYPE_CHECKING, Any

import orjson
import pyarrow as pa

from weave_stream.store.rows import join_value

if TYPE_CHECKING:
    import pandas as pd

__all__ = ["Columns", "assemble", "to_arrow", "to_pandas"]

Columns = dict[str, pa.ChunkedArray | pa.Array | list[Any]]
_WHOLE = ("kind", "number", "text", "vector", "fields_number", "fields_text", "value_json")


def assemble(raw: pa.Table) -> Columns:
    """The output columns of a result: Arrow arrays, or Python lists where rows differ."""
    candidates: dict[str, dict[str, Any]] = defaultdict(dict)
    for name in raw.column_names:
        output, _, suffix = name.rpartition("\t")
        candidates[output][suffix] = raw.column(name)
    return {name: _pick(parts) for name, parts in candidates.items()}


def _pick(parts: dict[str, Any]) -> Any:
    if "v" in parts:
        return parts["v"]
    if "w_kind" in parts:
        return _whole(parts)
    present = {k: v for k, v in parts.items() if v.null_count < len(v)}
    if not present:
        return next(iter(parts.values()))
    if set(present) == {"n"} or set(present) == {"t"}:
        return next(iter(present.values()))
    order = [suffix for suffix in ("j", "n", "t") if suffix in present]
    lists = [(suffix, present[suffix].to_pylist()) for suffix in order]
    merged: list[Any] = []
    for cells in zip(*(values for _, values in lists), strict=True):
        value = None
        for (suffix, _), item in zip(lists, cells, strict=True):
            if item is not None:
                value = orjson.loads(item) if suffix == "j" else item
                break
        merged.append(value)
    return merged


def _whole(parts: dict[str, Any]) -> Any:
    kinds = set(parts["w_kind"].to_pylist()) - {None}
    for kind, column in (("number", "w_number"), ("text", "w_text")):
        if kinds == {kind}:
            return parts[column]
    columns = {name: parts[f"w_{name}"].to_pylist() for name in _WHOLE}
    return [
        join_value({name: columns[name][i] for name in _WHOLE}) if columns["kind"][i] else None
        for i in range(len(columns["kind"]))
    ]


def to_arrow(columns: Columns) -> pa.Table:
    """An Arrow table; Python columns become typed arrays, or JSON text when rows differ."""
    arrays = {}
    for name, column in columns.items():
        if isinstance(column, list):
            try:
                arrays[name] = pa.array(column)
                if pa.types.is_struct(arrays[name].type):
                    raise pa.ArrowInvalid("objects are kept as JSON text")
            except (pa.ArrowInvalid, pa.ArrowTypeError):
                arrays[name] = pa.array([None if v is None else _json(v) for v in column])
        else:
            arrays[name] = column
    return pa.table(arrays)


def to_pandas(columns: Columns) -> pd.DataFrame:
    """A DataFrame; JSON fields become Python objects (dicts, lists, strings)."""
    import pandas as pd

    frame = {}
    for name, column in columns.items():
        if isinstance(column, list):
            frame[name] = pd.Series(column, dtype=object)
        else:
            frame[name] = column.to_pandas()
    return pd.DataFrame(frame)


def _json(value: Any) -> str:
    return orjson.dumps(value, option=orjson.OPT_NON_STR_KEYS).decode()
