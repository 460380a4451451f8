"""Sub-calls in the store: the children of derived values, as rows and as stream records.

An op that calls ops (``summarise`` calling ``embed``) leaves, besides its column's
value, one record per sub-call (:class:`~weave_stream.columns.derive.DerivedValue`
with a ``parent_ref`` and a ``position``). They go to the ``subcalls`` table, never to
``values``: a sub-call is not a value of the column, and aggregates over the values
would count it twice. Each row also names ``column_ref``, the op ref of the value it
was made for (a tree belongs to one version of the column's op).

On the stream, a worker writes the tree of each value as *one* record of
``<prefix>.subcalls.<topology>`` (:func:`~weave_stream.columns.tree.tree_records`,
keyed ``<call id>/<trial>`` like the derived values), so the store sink commits a tree
whole.

>>> from datetime import UTC, datetime
>>> now = datetime(2026, 1, 1, tzinfo=UTC)
>>> embed = DerivedValue(call_id="c1", topology="t", column="s", op_ref="embed:v2",
...                      value=[0.5], computed_at=now, parent_ref="summarise:v1", position="0")
>>> [(key, len(raw) > 0) for key, raw in tree_records([embed])]
[(b'c1/0', True)]
>>> row = sub_call_rows_from_json(tree_records([embed])[0][1], now)[0]
>>> row["column_ref"], row["position"], row["kind"], sub_call_from_row(row) == embed
('summarise:v1', '0', 'vector', True)
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from datetime import UTC, datetime
from typing import Any

import orjson
import pyarrow.compute as pc

from weave_stream.columns.derive import DerivedValue
from weave_stream.columns.tree import tree_records, trees
from weave_stream.store.rows import split_value, value_from_row
from weave_stream.store.tables import Store

__all__ = [
    "read_sub_calls",
    "sub_call_from_row",
    "sub_call_rows",
    "sub_call_rows_from_json",
    "tree_records",
]


def _row(data: Mapping[str, Any], column_ref: str, stored_at: datetime) -> dict[str, Any]:
    computed, started = data["computed_at"], data.get("started_at")
    if isinstance(computed, str):
        computed = datetime.fromisoformat(computed)
    if isinstance(started, str):
        started = datetime.fromisoformat(started)
    details = data.get("details")
    day = (started or computed).astimezone(UTC).strftime("%Y-%m-%d")
    return {
        "call_id": data["call_id"],
        "trace_id": data.get("trace_id"),
        "topology": data["topology"],
        "column_name": data["column"],
        "column_ref": column_ref,
        "trial": data.get("trial", 0),
        "position": data["position"],
        "parent_ref": data.get("parent_ref"),
        "op_ref": data["op_ref"],
        "op": data["op_ref"].rsplit(":", 1)[0],
        **split_value(data.get("value")),
        "error": data.get("error"),
        "latency_ms": data.get("latency_ms"),
        "cost": data.get("cost"),
        "cached": bool(data.get("cached")),
        "input_digest": data.get("input_digest"),
        "details": orjson.dumps(details).decode() if details else None,
        "computed_at": computed,
        "started_at": started,
        "stored_at": stored_at,
        "date": day,
    }


def sub_call_rows(sub_calls: Iterable[DerivedValue], stored_at: datetime) -> list[dict[str, Any]]:
    """The ``subcalls`` rows of one run's sub-call records."""
    rows = []
    for column_ref, records in trees(sub_calls).values():
        for record in records:
            data = orjson.loads(record.to_json())  # the same path as the stream's records
            rows.append(_row(data, column_ref, stored_at))
    return rows


def sub_call_rows_from_json(raw: bytes | str, stored_at: datetime) -> list[dict[str, Any]]:
    """The ``subcalls`` rows of one record of a sub-calls topic (one tree)."""
    data = orjson.loads(raw)
    column_ref = data["column_ref"]
    if not isinstance(column_ref, str) or not isinstance(data["sub_calls"], list):
        raise ValueError(f"not a tree of sub-calls: column_ref {column_ref!r}")
    return [_row(sub, column_ref, stored_at) for sub in data["sub_calls"]]


def sub_call_from_row(row: Mapping[str, Any]) -> DerivedValue:
    """The sub-call record a ``subcalls`` row holds (the inverse of :func:`sub_call_rows`):
    a ``values`` row's fields plus its place in the tree."""
    return value_from_row(row).model_copy(
        update={"parent_ref": row.get("parent_ref"), "position": row["position"]}
    )


def read_sub_calls(store: Store, call_ids: Sequence[str]) -> list[dict[str, Any]]:
    """The ``subcalls`` rows of ``call_ids`` (none from a store written before the table
    existed: nothing was recorded there)."""
    if not call_ids or "subcalls" not in store.present():
        return []
    dataset = store.dataset("subcalls")
    table = dataset.to_table(filter=pc.field("call_id").isin(sorted(set(call_ids))))
    return list(table.to_pylist())
