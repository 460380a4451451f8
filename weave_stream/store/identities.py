"""What makes a row one row, per table, and the index of identities written lately.

Each table has :class:`TableRules` over its rows: a row's identity (a call's id; a value's
call, column, op ref and trial; an alert's id), its state (a value: ``ok`` or
``error``; a call: ``complete``, ``start`` or ``end``), how a row relates to a
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
from collections.abc import Callable, Hashable, Iterable, Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any

import pyarrow as pa
import pyarrow.compute as pc
from deltalake import DeltaTable

from weave_stream.ingest.merge import merge
from weave_stream.store.rows import call_from_row, call_row
from weave_stream.store.tables import stamp

__all__ = ["RULES", "IdentityIndex", "Row", "TableRules", "combine_calls", "first_values"]


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


Row = dict[str, Any]


@dataclass(frozen=True)
class TableRules:
    """How one table's rows are identified, compared, looked up and deduplicated."""

    identity: Callable[[Mapping[str, Any]], Hashable]
    state: Callable[[Mapping[str, Any]], str]
    event_time: Callable[[Row], datetime | None]
    # Stored states (or rows) of these rows' identities, among rows stored before a moment.
    lookup: Callable[[DeltaTable, list[Row], datetime | None], dict[Hashable, Any]]
    # None: what is stored wins (a duplicate); else the row to store in its place.
    supersede: Callable[[Any, Row], Row | None]
    # One row per identity within a batch, by the same rule.
    first: Callable[[Iterable[Row]], list[Row]]
    # The Delta merge predicate that finds the stored row a superseding row replaces.
    merge_on: str
    # The identity columns of a row and its state, to warm the index from the table.
    key_columns: tuple[str, ...]
    # Whether a row needs the stored row itself, not only its state (half + half).
    needs_row: Callable[[str, Row], bool] = lambda state, row: False


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


# -- values and sub-calls: the first success, else the first error -------------------


def _value_state(row: Mapping[str, Any]) -> str:
    return "ok" if row["error"] is None else "error"


def _first_success_rules(identity: tuple[str, ...]) -> TableRules:
    """The rules of a table whose rows are kept per ``identity`` (columns of the row):
    the first success, else the first error, a later success replacing a stored error."""

    def key(row: Mapping[str, Any]) -> Hashable:
        return tuple(row[column] for column in identity)

    columns = (*identity, "error")

    def lookup(table: DeltaTable, rows: list[Row], before: datetime | None) -> dict[Hashable, Any]:
        dates = {r["date"] for r in rows}
        found = _isin(table, "call_id", [r["call_id"] for r in rows], dates, before)
        states: dict[Hashable, Any] = {}
        for stored in found.select(list(columns)).to_pylist():
            if states.get(key(stored)) != "ok":
                states[key(stored)] = _value_state(stored)
        return states

    def first(rows: Iterable[Row]) -> list[Row]:
        kept: dict[Hashable, Row] = {}
        for row in rows:
            held = kept.get(key(row))
            if held is None or (held["error"] is not None and row["error"] is None):
                kept[key(row)] = row
        return list(kept.values())

    return TableRules(
        identity=key,
        state=_value_state,
        event_time=lambda row: row["started_at"] or row["computed_at"],
        lookup=lookup,
        supersede=lambda state, row: row if state == "error" and row["error"] is None else None,
        first=first,
        merge_on=" AND ".join(f"t.{c} = s.{c}" for c in ("date", *identity)),
        key_columns=columns,
    )


VALUES = _first_success_rules(("call_id", "column_name", "op_ref", "trial"))
# Sub-calls: per place in a value's tree.
SUBCALLS = _first_success_rules(("call_id", "column_name", "column_ref", "trial", "position"))


def first_values(rows: Iterable[Row]) -> list[Row]:
    """One row per identity: the first success, else the first error (the readers' rule of
    :func:`weave_stream.columns.values.first_values`, on rows)."""
    return VALUES.first(rows)


# -- calls: a complete call over a half, two halves merged ---------------------------


def combine_calls(held: Row, incoming: Row) -> Row:
    """Two rows of one call: a complete one wins; two halves merge; else the first."""
    if held["kind"] == "complete":
        return held
    if incoming["kind"] == "complete":
        return incoming
    if held["kind"] != incoming["kind"]:
        start, end = (held, incoming) if held["kind"] == "start" else (incoming, held)
        return call_row(merge(call_from_row(start), call_from_row(end)), incoming["stored_at"])
    return held


def _first_calls(rows: Iterable[Row]) -> list[Row]:
    combined: dict[str, Row] = {}
    for row in rows:
        held = combined.get(row["id"])
        combined[row["id"]] = row if held is None else combine_calls(held, row)
    return list(combined.values())


def _lookup_calls(
    table: DeltaTable, rows: list[Row], before: datetime | None
) -> dict[Hashable, Any]:
    # A half's partner may sit in another day's partition: look halves up everywhere.
    complete = all(r["kind"] == "complete" for r in rows)
    dates = {r["date"] for r in rows} if complete else None
    found = _isin(table, "id", [r["id"] for r in rows], dates, before)
    return {stored["id"]: stored for stored in found.to_pylist()}


def _supersede_call(held: Any, row: Row) -> Row | None:
    held_kind = held["kind"] if isinstance(held, Mapping) else held
    if held_kind == "complete" or held_kind == row["kind"]:
        return None
    if row["kind"] == "complete" or not isinstance(held, Mapping):
        return row
    return combine_calls(dict(held), row)


CALLS = TableRules(
    identity=lambda row: row["id"],
    state=lambda row: row["kind"],
    event_time=lambda row: row["started_at"] or row["ended_at"],
    lookup=_lookup_calls,
    supersede=_supersede_call,
    first=_first_calls,
    merge_on="t.id = s.id",  # a stored half may sit in another day's partition
    key_columns=("id", "kind"),
    needs_row=lambda state, row: "complete" not in (state, row["kind"]) and state != row["kind"],
)


# -- alerts: the first record of an alert id -----------------------------------------


def _lookup_alerts(
    table: DeltaTable, rows: list[Row], before: datetime | None
) -> dict[Hashable, Any]:
    found = _isin(table, "id", [r["id"] for r in rows], None, before)
    return dict.fromkeys(found.column("id").to_pylist(), "stored")


def _first_alerts(rows: Iterable[Row]) -> list[Row]:
    unique: dict[str, Row] = {}
    for row in rows:
        unique.setdefault(row["id"], row)
    return list(unique.values())


ALERTS = TableRules(
    identity=lambda row: row["id"],
    state=lambda row: "stored",
    event_time=lambda row: row["time"],
    lookup=_lookup_alerts,
    supersede=lambda state, row: None,
    first=_first_alerts,
    merge_on="t.id = s.id",
    key_columns=("id",),
)

RULES: dict[str, TableRules] = {
    "calls": CALLS,
    "values": VALUES,
    "alerts": ALERTS,
    "subcalls": SUBCALLS,
}
"""The rules of every table."""
