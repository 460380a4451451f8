"""``calls(...).to_dataset(name, mapping)``: a query's calls as a dataset's rows.

The mapping names each field of a row and the call path or derived column it comes
from, in the query's vocabulary (``inputs.document``,
``text_extract.doc_class.label``). The query runs once with those columns; each call
becomes a row keeping its id and Weave ref. The dataset remembers the mapping, so
adding to it later needs only the query.

A mapping path that resolves in no call of the query is an error naming the path and
the nearest paths that do resolve (keys found in the calls' JSON fields, fields the
store's catalog knows for a derived column), never a column of nulls.
"""

from __future__ import annotations

import difflib
from collections.abc import Mapping
from typing import TYPE_CHECKING, Any

import orjson

from weave_stream.datasets.dataset import Dataset, write_rows
from weave_stream.datasets.events import RESERVED_FIELDS, NewRow
from weave_stream.errors import DatasetError, QueryError
from weave_stream.query.paths import CALL_FIELDS, CallPath, ValuePath, parse_path
from weave_stream.query.plan import QuerySpec
from weave_stream.store.tables import Store

if TYPE_CHECKING:
    from weave_stream.query.calls import Query

__all__ = ["call_ref", "describe", "query_to_dataset"]

_META = {"__ws_trace": "trace_id", "__ws_project": "project_id", "__ws_started": "started_at"}
_SAMPLE = 200  # calls read to find the keys near a path that resolves nowhere


def call_ref(project_id: str | None, call_id: str) -> str | None:
    """A call's Weave ref, when its project is known.

    >>> call_ref("acme/support", "c1"), call_ref(None, "c1")
    ('weave:///acme/support/call/c1', None)
    """
    return f"weave:///{project_id}/call/{call_id}" if project_id else None


def describe(spec: QuerySpec) -> str:
    """A short text of what a query selects (kept as a dataset's source).

    >>> describe(QuerySpec(op_names=("predict",), parent=QuerySpec(op_names=("root",))))
    'calls(op=root).children(op=predict)'
    """
    parts = []
    if spec.op_names:
        parts.append("op=" + ",".join(spec.op_names))
    if spec.time.start is not None or spec.time.end is not None:
        start = spec.time.start.isoformat() if spec.time.start else ""
        end = spec.time.end.isoformat() if spec.time.end else ""
        parts.append(f"time={start}..{end}")
    for name, values in (("trace_id", spec.trace_ids), ("parent_id", spec.parent_ids)):
        if values:
            parts.append(f"{name}={','.join(values[:3])}{'...' if len(values) > 3 else ''}")
    if spec.call_ids is not None:
        parts.append(f"call_ids={len(spec.call_ids)}")
    if spec.trace_roots:
        parts.append("roots")
    if spec.conditions:
        parts.append(f"where={len(spec.conditions)} filter(s)")
    if spec.limit is not None:
        parts.append(f"limit={spec.limit}")
    text = ", ".join(parts)
    if spec.parent is None:
        return f"calls({text})"
    if spec.recursive:
        text = ", ".join(["recursive", *parts])
    return f"{describe(spec.parent)}.children({text})"


def _check_mapping(mapping: Any) -> dict[str, str]:
    if not isinstance(mapping, Mapping) or not mapping:
        raise DatasetError(
            "a dataset needs a mapping: row field -> call path or derived column, e.g. "
            "{'document': 'inputs.document', 'label': 'text_extract.doc_class.label'}"
        )
    checked = {}
    for name, path in mapping.items():
        if not isinstance(name, str) or not name or name.startswith("__ws_"):
            raise DatasetError(f"mapping: {name!r} is not a field name")
        if name in RESERVED_FIELDS:
            raise DatasetError(
                f"mapping: {name!r} is a column every row has "
                f"({', '.join(sorted(RESERVED_FIELDS))}); name the field otherwise"
            )
        try:
            parse_path(path)
        except QueryError as exc:
            raise DatasetError(f"mapping {name}={path!r}: {exc}") from None
        checked[name] = str(path)
    return checked


def query_to_dataset(
    query: Query,
    name: str,
    mapping: Mapping[str, str] | None = None,
    *,
    append: bool = False,
    note: str = "",
) -> Dataset:
    """Run ``query`` and make (or, with ``append``, add to) dataset ``name`` from its calls.

    Without ``mapping`` the dataset's remembered one is used (it must exist). Raises
    :class:`DatasetError` for a name taken (without ``append``), a mapping that differs
    from the remembered one, a path that resolves in no call, or a query without calls.
    """
    store = query.store
    dataset = Dataset(name, store)
    if mapping is None:
        if not append:
            _check_mapping(None)
        mapping = dataset.mapping  # raises for an unknown dataset
    fields = _check_mapping(mapping)
    columns = {**fields, **_META}
    try:
        rows = list(iter(query.select(**columns)))  # iter: no len(), so no count query first
    except QueryError as exc:
        raise DatasetError(f"dataset {name!r}, mapping {fields}: {exc}") from None
    if not rows:
        raise DatasetError(
            f"dataset {name!r}: the query {describe(query.spec)} matched no calls in the store "
            f"at {store.location}; nothing to add"
        )
    for field, path in fields.items():
        if all(row[field] is None for row in rows):
            raise DatasetError(_unresolved(query, store, field, path, len(rows)))
    new = [
        NewRow(
            call_id=row["id"],
            fields={field: _plain(row[field]) for field in fields},
            call_ref=call_ref(row["__ws_project"], row["id"]),
            trace_id=row["__ws_trace"],
            started_at=row["__ws_started"],
        )
        for row in rows
    ]
    source = {"kind": "query", "query": describe(query.spec)}
    write_rows(
        store, name, new, mapping=fields, source=source, create=True, append=append, note=note
    )
    return dataset


def _plain(value: Any) -> Any:
    """A value as JSON holds it (numpy scalars and arrays to Python)."""
    return orjson.loads(
        orjson.dumps(value, option=orjson.OPT_SERIALIZE_NUMPY | orjson.OPT_NON_STR_KEYS)
    )


def _unresolved(query: Query, store: Store, field: str, text: str, count: int) -> str:
    path = parse_path(text)
    near = difflib.get_close_matches(text, _known_paths(query, store, path), n=3, cutoff=0.5)
    hint = f"nearest known: {', '.join(near)}" if near else "no path near it resolves either"
    return (
        f"mapping {field}={text!r} resolves in none of the {count} calls the query "
        f"matched ({hint}); fix the path, or map another field"
    )


def _known_paths(query: Query, store: Store, path: CallPath | ValuePath) -> list[str]:
    """Paths that resolve in (a sample of) the query's calls, near where ``path`` points."""
    if isinstance(path, CallPath):
        known = list(CALL_FIELDS)
        if CALL_FIELDS[path.column] == "json":
            sample = query.select(**{"__ws_v": path.column}).limit(_SAMPLE)
            for row in sample:
                known += _flatten(path.column, row["__ws_v"])
        return known
    catalog = store.table("catalog").to_pyarrow_table().to_pylist()
    known = []
    for row in catalog:
        base = f"{row['topology']}.{row['column_name']}"
        known.append(base)
        if row["field"]:
            known.append(f"{base}.{row['field']}")
    return list(dict.fromkeys(known))


def _flatten(prefix: str, value: Any, depth: int = 3) -> list[str]:
    if depth == 0 or not isinstance(value, dict):
        return []
    found = []
    for key, item in value.items():
        path = f"{prefix}.{key}"
        found.append(path)
        found += _flatten(path, item, depth - 1)
    return found
