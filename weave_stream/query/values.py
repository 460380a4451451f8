"""``derived_values``: a topology's derived values, from the call store when one is set.

With ``store_url`` set (a worker's store sink writes there) the values come from the
store's ``values`` table, their calls' ids from a :func:`~weave_stream.query.calls.calls`
query: no broker is needed, and the store already holds one row per (call, column,
op ref, trial) -- the first success, as every reader keeps it. Without one they are
read from the derived topics on Kafka
(:func:`weave_stream.columns.values.derived_values`). Both give the same frame:
:data:`~weave_stream.columns.values.VALUE_FIELDS`, sorted by start time, call, column
and trial.

>>> import tempfile
>>> from weave_stream import Column, Source, Topology, op, run_local
>>> @op
... def words(text: str) -> int:
...     return len(text.split())
>>> topology = Topology(name="demo", source=Source(op_name="extract"),
...                     columns=[Column("words", words, args={"text": "inputs.document"})])
>>> store = tempfile.mkdtemp()
>>> _ = run_local(topology, [{"id": "c1", "op_name": "extract", "trace_id": "t1",
...                           "started_at": 1795662000, "ended_at": 1795662001,
...                           "inputs": {"document": "an invoice for ACME"}}], store=store)
>>> frame = stored_values(store, "demo")
>>> frame[["call_id", "trace_id", "op_name", "column", "value"]].values.tolist()
[['c1', 't1', 'extract', 'words', 4]]
"""

from __future__ import annotations

from datetime import datetime
from typing import Any

import pandas as pd
import pyarrow.compute as pc

from weave_stream.columns.values import CALL_ID_FIELDS, since_time, values_frame
from weave_stream.columns.values import derived_values as kafka_values
from weave_stream.config import Settings, load_settings
from weave_stream.errors import TopologyError
from weave_stream.query.calls import calls
from weave_stream.store.rows import value_from_row
from weave_stream.store.tables import StoreLike, open_store

__all__ = ["derived_values", "stored_values"]


def derived_values(
    topology: str,
    column: str | None = None,
    since: str | float | datetime | None = None,
    settings: Settings | None = None,
) -> pd.DataFrame:
    """The derived values of ``topology`` (or of one ``column``) as a DataFrame, one row each.

    Each row carries its call's identifying fields (call id, trace and parent ids,
    project, op name, start time) and the value's (column, op ref, trial, value,
    error, latency, cost, when computed), each (call, column, op ref, trial) once.
    ``since`` keeps the calls started from then on: a time (datetime, epoch seconds,
    ISO-8601) or a duration back from now (``"6h"``, ``"2d"``). When the settings name
    a call store (``store_url``) the values are read from it, else from Kafka's derived
    topics (without ``settings`` the running broker is found as the commands find it).
    The columns are :data:`~weave_stream.columns.values.VALUE_FIELDS`.
    """
    loaded = settings if settings is not None else load_settings()
    if loaded.store_url is None:
        return kafka_values(topology, column=column, since=since, settings=settings)
    return stored_values(open_store(None, loaded), topology, column=column, since=since)


def stored_values(
    store: StoreLike,
    topology: str,
    column: str | None = None,
    since: str | float | datetime | None = None,
) -> pd.DataFrame:
    """:func:`derived_values` read from the call store ``store`` (a folder, URL or Store)."""
    store = open_store(store)
    start = since_time(since)
    columns = _stored_columns(store, topology)
    if column is not None and column not in columns:
        raise TopologyError(
            f"topology {topology!r} has no values of column {column!r} in the call store at "
            f"{store.location} (its columns with values: {', '.join(columns)})"
        )
    wanted = pc.field("topology") == topology
    if column is not None:
        wanted &= pc.field("column_name") == column
    # A value's day is its call's start day: a start time prunes the older days' files.
    prune = f"date >= '{start:%Y-%m-%d}'" if start is not None else None
    rows = store.dataset("values", prune).to_table(filter=wanted).to_pylist()
    values = [
        value
        for value in map(value_from_row, rows)
        if start is None or (value.started_at or value.computed_at) >= start
    ]
    return values_frame(values, _call_fields(store, {v.call_id for v in values}))


def _stored_columns(store: Any, topology: str) -> list[str]:
    """The columns of ``topology`` with values in the store (from its catalog), sorted."""
    catalog = store.table("catalog").to_pyarrow_table(columns=["topology", "column_name"])
    found: dict[str, set[str]] = {}
    for row in catalog.to_pylist():
        found.setdefault(row["topology"], set()).add(row["column_name"])
    if topology not in found:
        raise TopologyError(
            f"no derived values of topology {topology!r} in the call store at {store.location} "
            f"(topologies with values: {', '.join(sorted(found)) or 'none'}); register it with "
            "`weave-stream register FILE` and send calls, or check store_url"
        )
    return sorted(found[topology])


def _call_fields(store: Any, call_ids: set[str]) -> dict[str, dict[str, Any]]:
    """Call id -> the identifying fields of that call, for the calls the store holds."""
    if not call_ids:
        return {}
    query = calls(store=store, call_ids=sorted(call_ids), columns=list(CALL_ID_FIELDS))
    return {str(row["id"]): {name: row[name] for name in CALL_ID_FIELDS} for row in query}
