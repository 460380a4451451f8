"""What makes a row one row, per table, and the index of identities written lately.

Each table has :class:`TableRules`: a record's identity (a call's id; a value's
call, column, op ref and trial; an alert's id), its state (a value: ``ok`` or
``error``; a call: ``complete``, ``start`` or ``end``), how a record relates to a
stored one of the same identity (a duplicate, or it supersedes it: a success over
an error, a complete call over a half, two halves merged), and how to look
identities up in the table.

:class:`IdentityIndex` holds the identities stored lately (warmed from the table's
recent rows, then every commit) and knows since when it holds *all* of them
(``covers_since``): an identity not in the index can only be stored if it was
stored before that moment, which is what a lookup then searches (row-group
statistics on ``stored_at`` skip every recent file).
"""

from __future__ import annotations

from collections import OrderedDict
from collections.abc import Callable, Hashable, Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any, Generic, TypeVar

import pyarrow as pa
import pyarrow.compute as pc
from deltalake import DeltaTable

from weave_stream.columns.derive import DerivedValue
from weave_stream.columns.values import identity
from weave_stream.ingest.call import Call, merge
from weave_stream.notify.alerts import Alert
from weave_stream.store.rows import alert_row, call_from_row, call_row, value_row
from weave_stream.store.tables import stamp

__all__ = ["RULES", "IdentityIndex", "TableRules", "combine_calls"]

R = TypeVar("R")


class IdentityIndex:
    """Identities and their states, at most ``capacity`` (the oldest stored go first).

    >>> from datetime import UTC, datetime
    >>> index = IdentityIndex(capacity=2)
    >>> index.covers_since is None  # nothing known: every unknown identity is looked up
    True
    >>> index.warmed(datetime(2026, 1, 1, 0, tzinfo=UTC))  # the rows stored since 00:00 are in
    >>> for hour, key in [(1, "c1"), (2, "c2"), (3, "c3")]:
    ...     index.put(key, "ok", datetime(2026, 1, 1, hour, tzinfo=UTC))
    >>> index.get("c1"), index.get("c3"), len(index), index.covers_since.hour  # c1 forgotten
    (None, 'ok', 2, 1)
    """

    def __init__(self, capacity: int = 200_000) -> None:
        self.capacity = capacity
        self._states: OrderedDict[int, tuple[str, datetime]] = OrderedDict()
        self._since: datetime | None = None

    def __len__(self) -> int:
        return len(self._states)

    @property
    def covers_since(self) -> datetime | None:
        """Every identity stored since then is held (None: no such moment is known)."""
        return self._since

    def warmed(self, since: datetime) -> None:
        """The rows stored since ``since`` have all been put (read from the table)."""
        self._since = since if self._since is None else min(self._since, since)

    def get(self, key: Hashable) -> str | None:
        """The state of ``key``, or None when it is not held."""
        held = self._states.get(hash(key))
        return held[0] if held else None

    def put(self, key: Hashable, state: str, stored_at: datetime) -> None:
        """Remember ``key`` in ``state``, forgetting the oldest beyond the capacity."""
        hashed = hash(key)
        self._states[hashed] = (state, stored_at)
        self._states.move_to_end(hashed)
        while len(self._states) > self.capacity:
            _, (_, forgotten) = self._states.popitem(last=False)
            if self._since is not None:
                # What was stored up to the forgotten one may be missing now.
                self._since = max(self._since, forgotten)


@dataclass(frozen=True)
class TableRules(Generic[R]):
    """How one table's records are identified, compared, looked up and turned into rows."""

    row: Callable[[R, datetime], dict[str, Any]]
    identity: Callable[[R], Hashable]
    state: Callable[[R], str]
    event_time: Callable[[R], datetime | None]
    # Stored states of these records' identities, among rows stored before a moment.
    lookup: Callable[[DeltaTable, list[R], datetime | None], dict[Hashable, Any]]
    # None: what is stored wins (a duplicate); else the record to store in its place.
    supersede: Callable[[Any, R], R | None]
    # The Delta merge predicate that finds the stored row a superseding record replaces.
    merge_on: str
    # The identity columns of a row and its state, to warm the index from the table.
    key_columns: tuple[str, ...]
    key_of_row: Callable[[Mapping[str, Any]], tuple[Hashable, str]]
    # Whether a record needs the stored row itself, not only its state (half + half).
    needs_row: Callable[[str, R], bool] = lambda state, record: False


def _isin(
    table: DeltaTable,
    column: str,
    keys: Sequence[str],
    dates: set[str] | None,
    stored_before: datetime | None,
) -> pa.Table:
    """The rows whose ``column`` is one of ``keys``, in the files that may hold them."""
    prune = []
    if dates:
        prune.append("date IN (" + ", ".join(f"'{d}'" for d in sorted(dates)) + ")")
    if stored_before is not None:
        prune.append(f"stored_at < {stamp(stored_before)}")
    dataset = table.to_pyarrow_dataset(file_pruning_predicate=" AND ".join(prune) or None)
    return dataset.to_table(filter=pc.field(column).isin(sorted(set(keys))))


def _day(moment: datetime | None) -> str:
    return moment.astimezone(UTC).strftime("%Y-%m-%d") if moment else ""


# -- values: the first success, else the first error ---------------------------------


def _lookup_values(
    table: DeltaTable, values: list[DerivedValue], before: datetime | None
) -> dict[Hashable, Any]:
    dates = {_day(v.started_at or v.computed_at) for v in values}
    found = _isin(table, "call_id", [v.call_id for v in values], dates, before)
    states: dict[Hashable, Any] = {}
    for row in found.select(["call_id", "column_name", "op_ref", "trial", "error"]).to_pylist():
        key, state = _value_key(row)
        if states.get(key) != "ok":
            states[key] = state
    return states


def _value_key(row: Mapping[str, Any]) -> tuple[Hashable, str]:
    key = (row["call_id"], row["column_name"], row["op_ref"], row["trial"])
    return key, "ok" if row["error"] is None else "error"


VALUES: TableRules[DerivedValue] = TableRules(
    row=value_row,
    identity=identity,
    state=lambda value: "ok" if value.error is None else "error",
    event_time=lambda value: value.started_at or value.computed_at,
    lookup=_lookup_values,
    supersede=lambda state, value: value if state == "error" and value.error is None else None,
    merge_on="t.date = s.date AND t.call_id = s.call_id AND t.column_name = s.column_name "
    "AND t.op_ref = s.op_ref AND t.trial = s.trial",
    key_columns=("call_id", "column_name", "op_ref", "trial", "error"),
    key_of_row=_value_key,
)


# -- calls: a complete call over a half, two halves merged ---------------------------


def combine_calls(held: Call, incoming: Call) -> Call:
    """Two records of one call: a complete one wins; two halves merge; else the first."""
    if held.kind == "complete":
        return held
    if incoming.kind == "complete":
        return incoming
    if held.kind != incoming.kind:
        start, end = (held, incoming) if held.kind == "start" else (incoming, held)
        return merge(start, end)
    return held


def _lookup_calls(
    table: DeltaTable, calls: list[Call], before: datetime | None
) -> dict[Hashable, Any]:
    # A half's partner may sit in another day's partition: look halves up everywhere.
    complete = all(c.kind == "complete" for c in calls)
    dates = {_day(c.started_at or c.ended_at) for c in calls} if complete else None
    found = _isin(table, "id", [c.id for c in calls], dates, before)
    return {row["id"]: call_from_row(row) for row in found.to_pylist()}


def _supersede_call(held: Any, call: Call) -> Call | None:
    held_kind = held.kind if isinstance(held, Call) else held
    if held_kind == "complete" or held_kind == call.kind:
        return None
    if call.kind == "complete" or not isinstance(held, Call):
        return call
    return combine_calls(held, call)


CALLS: TableRules[Call] = TableRules(
    row=call_row,
    identity=lambda call: call.id,
    state=lambda call: call.kind,
    event_time=lambda call: call.started_at or call.ended_at,
    lookup=_lookup_calls,
    supersede=_supersede_call,
    merge_on="t.id = s.id",  # a stored half may sit in another day's partition
    key_columns=("id", "kind"),
    key_of_row=lambda row: (row["id"], row["kind"]),
    needs_row=lambda state, call: "complete" not in (state, call.kind) and state != call.kind,
)


# -- alerts: the first record of an alert id -----------------------------------------


def _lookup_alerts(
    table: DeltaTable, alerts: list[Alert], before: datetime | None
) -> dict[Hashable, Any]:
    found = _isin(table, "id", [a.id for a in alerts], None, before)
    return dict.fromkeys(found.column("id").to_pylist(), "stored")


ALERTS: TableRules[Alert] = TableRules(
    row=alert_row,
    identity=lambda alert: alert.id,
    state=lambda alert: "stored",
    event_time=lambda alert: alert.time,
    lookup=_lookup_alerts,
    supersede=lambda state, alert: None,
    merge_on="t.id = s.id",
    key_columns=("id",),
    key_of_row=lambda row: (row["id"], "stored"),
)

RULES: dict[str, TableRules[Any]] = {"calls": CALLS, "values": VALUES, "alerts": ALERTS}
"""The rules of every table."""
