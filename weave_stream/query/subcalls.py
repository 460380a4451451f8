"""The sub-calls behind a query's calls, read back from the store's ``subcalls`` table.

``calls(...).sub_calls()`` gives one row per sub-call of the calls' derived values
(an op called by a column's op, see the README's "Ops that call ops"), and
``calls(...).tree(call_id)`` draws a call's values with the ops they called, as
:meth:`~weave_stream.runners.results.ResultTable.tree` does for a local run.

>>> import tempfile
>>> from weave_stream import Column, Topology, op, run_local
>>> @op
... def words(text: str) -> int:
...     return len(text.split())
>>> @op
... def longer(text: str) -> bool:
...     return words(text) > 2
>>> topology = Topology("demo", [Column("long", longer, args={"text": "inputs.document"})])
>>> store = tempfile.mkdtemp()
>>> _ = run_local(topology, [{"id": "c1", "started_at": 1795662000, "ended_at": 1795662001,
...                           "inputs": {"document": "an invoice for ACME"}}], store=store)
>>> from weave_stream.query.calls import calls
>>> frame = calls(store=store).sub_calls()
>>> frame[["call_id", "column", "position", "value"]].values.tolist()
[['c1', 'long', '0', 4]]
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import TYPE_CHECKING

import pandas as pd
import pyarrow.compute as pc

from weave_stream.columns.derive import DerivedValue
from weave_stream.columns.tree import (
    SUB_CALL_COLUMNS,
    position_order,
    render_tree,
    shown_values,
)
from weave_stream.errors import QueryError
from weave_stream.store.rows import value_from_row
from weave_stream.store.subcalls import read_sub_calls, sub_call_from_row

if TYPE_CHECKING:
    from weave_stream.store.tables import Store

__all__ = ["SUB_CALL_COLUMNS", "sub_calls_frame", "tree_text"]


def sub_calls_frame(
    store: Store, call_ids: Sequence[str], column: str | None = None
) -> pd.DataFrame:
    """The sub-calls of ``call_ids`` (of ``column`` only, when given), one row each, in
    call order and then tree order (a parent before its children)."""
    order = {call_id: index for index, call_id in enumerate(call_ids)}
    rows = [r for r in read_sub_calls(store, call_ids) if column in (None, r["column_name"])]
    rows.sort(
        key=lambda r: (
            order.get(r["call_id"], len(order)),
            r["column_name"],
            r["column_ref"],
            r["trial"],
            position_order(r["position"]),
        )
    )
    records = []
    for row in rows:
        sub = sub_call_from_row(row)
        records.append(
            {
                **{name: getattr(sub, name, None) for name in SUB_CALL_COLUMNS},
                "column_ref": row["column_ref"],
            }
        )
    return pd.DataFrame(records, columns=SUB_CALL_COLUMNS)


def tree_text(store: Store, call_id: str, column: str | None = None, trial: int = 0) -> str:
    """The tree of ``call_id``'s values in the store (of ``column``, else every column)
    and the calls their ops made; :class:`~weave_stream.errors.QueryError` when the call
    has no value there."""
    table = store.dataset("values").to_table(filter=pc.field("call_id") == call_id)
    # The latest computed first: a column's op changed since shows its newest value.
    rows = sorted(table.to_pylist(), key=lambda r: r["computed_at"], reverse=True)
    values = [value_from_row(row) for row in rows]
    shown = shown_values(values, call_id, column, trial)
    if not shown:
        raise QueryError(
            f"store {store.location} has no derived value for call {call_id!r}"
            + (f" in column {column!r}" if column else "")
            + "; pick a call id from calls(...).to_pandas() and a column its topology has"
        )
    wanted = {(v.column, v.op_ref, v.trial) for v in shown}
    subs: list[DerivedValue] = [
        sub_call_from_row(row)
        for row in read_sub_calls(store, [call_id])
        if (row["column_name"], row["column_ref"], row["trial"]) in wanted
    ]
    return render_tree(shown, subs, call_id, column, trial)
