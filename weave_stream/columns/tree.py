"""The calls behind derived values, as a tree of text: a value, then the ops it called.

The result table of a local run (:meth:`~weave_stream.runners.results.ResultTable.tree`)
and a query over the store (:meth:`~weave_stream.query.calls.Query.tree`) draw the same
tree from the same records: :class:`~weave_stream.columns.derive.DerivedValue` s of the
columns, and those of their sub-calls (with a ``parent_ref`` and a ``position``).

>>> from datetime import UTC, datetime
>>> now = datetime(2026, 1, 1, tzinfo=UTC)
>>> value = DerivedValue(call_id="c1", topology="t", column="s", op_ref="summarise:v1",
...                      latency_ms=12.0, computed_at=now)
>>> embed = DerivedValue(call_id="c1", topology="t", column="s", op_ref="embed:v2",
...                      latency_ms=3.0, cached=True, computed_at=now,
...                      parent_ref="summarise:v1", position="0")
>>> print(render_tree([value], [embed], "c1"))
s: summarise:v1  12.0 ms
    └─ embed:v2  cached  3.0 ms
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence

import orjson

from weave_stream.columns.derive import DerivedValue
from weave_stream.columns.values import derived_key

__all__ = [
    "SUB_CALL_COLUMNS",
    "column_ref_of",
    "node_text",
    "position_order",
    "render_tree",
    "shown_values",
    "tree_records",
    "trees",
]

SUB_CALL_COLUMNS = [
    "call_id",
    "topology",
    "column",
    "column_ref",
    "trial",
    "position",
    "parent_ref",
    "op_ref",
    "value",
    "error",
    "latency_ms",
    "cost",
    "cached",
]
"""The columns of a query's sub-calls (:func:`~weave_stream.query.subcalls.sub_calls_frame`);
a local run's ``sub_calls_frame()`` has the same, less ``topology`` and ``column_ref``."""


def node_text(value: DerivedValue) -> str:
    """One line of a tree: the op ref, whether cached, latency, cost and error."""
    parts = [value.op_ref]
    if value.cached:
        parts.append("cached")
    if value.latency_ms is not None:
        parts.append(f"{value.latency_ms:.1f} ms")
    if value.cost:
        parts.append(f"${value.cost:.6f}")
    if value.error is not None:
        parts.append(f"error: {value.error}")
    return "  ".join(parts)


def position_order(position: str | None) -> list[int]:
    """A sort key that puts ``"2"`` before ``"10"`` and a parent before its children."""
    return [int(part) for part in (position or "").split(".") if part]


def shown_values(
    values: Iterable[DerivedValue], call_id: str, column: str | None = None, trial: int = 0
) -> list[DerivedValue]:
    """The values of ``call_id`` a tree shows: per column (or only ``column``), trial
    ``trial``, else the last trial below it (a deterministic column has one)."""
    shown: dict[str, DerivedValue] = {}
    for v in values:
        asked = v.call_id == call_id and (column is None or v.column == column)
        later = v.column not in shown or v.trial > shown[v.column].trial
        if asked and v.trial <= trial and later:
            shown[v.column] = v
    return list(shown.values())


def render_tree(
    values: Sequence[DerivedValue],
    sub_calls: Sequence[DerivedValue],
    call_id: str,
    column: str | None = None,
    trial: int = 0,
) -> str:
    """The tree of ``call_id``'s values (see :func:`shown_values`) and their sub-calls;
    empty when the call has no value among ``values``."""
    lines = []
    for value in shown_values(values, call_id, column, trial):
        lines.append(f"{value.column}: {node_text(value)}")
        subs = [
            s
            for s in sub_calls
            if (s.call_id, s.column, s.trial) == (call_id, value.column, value.trial)
        ]
        for sub in sorted(subs, key=lambda s: position_order(s.position)):
            depth = (sub.position or "").count(".") + 1
            lines.append(f"{'    ' * depth}└─ {node_text(sub)}")
    return "\n".join(lines)


_Group = tuple[str, str, int]  # call id, column, trial


def trees(sub_calls: Iterable[DerivedValue]) -> dict[_Group, tuple[str, list[DerivedValue]]]:
    """Sub-call records of one run grouped by the value they were made for: ``(call id,
    column, trial) -> (column ref, records)``. The column ref is the parent of the
    top-level records (a run computes each value's tree once)."""
    grouped: dict[_Group, list[DerivedValue]] = {}
    for sub in sub_calls:
        grouped.setdefault((sub.call_id, sub.column, sub.trial), []).append(sub)
    return {group: (column_ref_of(records), records) for group, records in grouped.items()}


def column_ref_of(records: Sequence[DerivedValue]) -> str:
    """The op ref of the value ``records`` (one tree) were made for."""
    for record in records:
        if record.position is not None and "." not in record.position and record.parent_ref:
            return record.parent_ref
    raise ValueError(f"sub-calls of call {records[0].call_id!r} have no top-level call")


def tree_records(sub_calls: Iterable[DerivedValue]) -> list[tuple[bytes, bytes]]:
    """``(key, value)`` records of ``<prefix>.subcalls.<topology>``: one per value's tree."""
    out = []
    for (call_id, _, trial), (column_ref, records) in trees(sub_calls).items():
        body = b",".join(record.to_json() for record in records)
        raw = b'{"column_ref":' + orjson.dumps(column_ref) + b',"sub_calls":[' + body + b"]}"
        out.append((derived_key(call_id, trial), raw))
    return out
