"""Writing to the store: each row once, committed with the source offsets it covers.

:class:`StoreWriter` writes calls, derived values and alerts to their tables, one
Delta commit per table and batch. Two guarantees:

* **Exactly once per source record.** A commit may carry application transactions
  (``{app id: version}``, the stream sink's ``<topic>:<partition>`` → highest offset
  written): Delta commits them atomically with the rows, so after a crash the sink
  resumes after what the table holds. A concurrent commit for the same app id (a
  zombie writer that lost its partition) fails ours: :class:`FencedError`.
* **One row per identity** (:data:`~weave_stream.store.schema.TABLES` ``identity``),
  by the readers' first-value rule: a value's first success, else its first error
  (a later success supersedes a stored error); a complete call supersedes a stored
  half, and two halves are merged; an alert's first record wins. Identities written
  recently are held in a bounded in-memory index; an identity not there is looked
  up in the table when it may be old (``lookup_before``), so a re-delivered record,
  after a crash or a replay, never becomes a second row.

A batch that supersedes a stored row commits as one Delta ``merge`` (the old row
replaced and the new ones added atomically); any other batch is an append.
Concurrent appends by other workers are retried by Delta (optimistic concurrency).
"""

from __future__ import annotations

import logging
import time
from collections import OrderedDict
from collections.abc import Callable, Hashable, Iterable, Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any, Generic, TypeVar

import pyarrow as pa
import pyarrow.compute as pc
from deltalake import CommitProperties, DeltaTable, Transaction, write_deltalake
from deltalake.exceptions import CommitFailedError, DeltaError

from weave_stream import metrics
from weave_stream.columns.derive import DerivedValue
from weave_stream.columns.values import first_values, identity
from weave_stream.errors import StoreError
from weave_stream.ingest.call import Call, merge
from weave_stream.notify.alerts import Alert
from weave_stream.store.rows import alert_row, call_from_row, call_row, value_row
from weave_stream.store.schema import TABLES
from weave_stream.store.tables import Store

__all__ = ["FencedError", "IdentityIndex", "StoreWriter", "WriteResult"]

log = logging.getLogger(__name__)

R = TypeVar("R")


class FencedError(StoreError):
    """Another writer committed for one of our app ids: we no longer own that partition."""


@dataclass
class WriteResult:
    """What one write did: rows added, duplicates skipped, stored rows superseded."""

    table: str
    written: int = 0
    duplicates: int = 0
    superseded: int = 0
    looked_up: int = 0
    untyped: int = 0
    version: int | None = None


class IdentityIndex:
    """The identities written lately and their state, at most ``capacity`` (oldest out).

    >>> index = IdentityIndex(capacity=2)
    >>> index.put(("c1",), "ok"); index.put(("c2",), "error"); index.put(("c3",), "ok")
    >>> index.get(("c1",)), index.get(("c3",)), len(index)
    (None, 'ok', 2)
    """

    def __init__(self, capacity: int = 200_000) -> None:
        self.capacity = capacity
        self._states: OrderedDict[int, str] = OrderedDict()

    def __len__(self) -> int:
        return len(self._states)

    def get(self, key: Hashable) -> str | None:
        """The state of ``key``, or None when it is not held."""
        return self._states.get(hash(key))

    def put(self, key: Hashable, state: str) -> None:
        """Remember ``key`` in ``state``, forgetting the oldest beyond the capacity."""
        hashed = hash(key)
        self._states[hashed] = state
        self._states.move_to_end(hashed)
        while len(self._states) > self.capacity:
            self._states.popitem(last=False)


@dataclass
class _Plan(Generic[R]):
    """The outcome of resolving a batch against the index and the table."""

    new: list[R]
    superseding: list[R]
    duplicates: int
    looked_up: int


class StoreWriter:
    """Writes records to a :class:`~weave_stream.store.tables.Store` (see the module docstring).

    Each ``write_*`` takes ``txns`` (app id -> version to commit with the rows),
    ``expect`` (app id -> the version this writer last saw: a different one in the
    table raises :class:`FencedError`) and ``lookup_before`` (records whose event is
    older are looked up in the table when the index does not know them; None: all).

    Parameters:
        store: where to write (its tables are created when missing).
        index_capacity: identities remembered per table.
        attempts: tries of a commit that conflicts with a concurrent one.
    """

    def __init__(self, store: Store, *, index_capacity: int = 200_000, attempts: int = 8) -> None:
        self.store = store
        self.attempts = attempts
        self.indexes = {name: IdentityIndex(index_capacity) for name in TABLES}
        store.ensure()

    # -- the three tables -------------------------------------------------------------

    def write_calls(
        self,
        calls: Iterable[Call],
        *,
        txns: Mapping[str, int] | None = None,
        expect: Mapping[str, int | None] | None = None,
        lookup_before: datetime | None = None,
    ) -> WriteResult:
        """Write ``calls`` (one row per call id; halves merged, complete calls win)."""
        combined: dict[str, Call] = {}
        for call in calls:
            held = combined.get(call.id)
            combined[call.id] = call if held is None else _combine_calls(held, call)
        return self._write(
            "calls",
            list(combined.values()),
            _CALLS,
            txns=txns,
            expect=expect,
            lookup_before=lookup_before,
        )

    def write_values(
        self,
        values: Iterable[DerivedValue],
        *,
        txns: Mapping[str, int] | None = None,
        expect: Mapping[str, int | None] | None = None,
        lookup_before: datetime | None = None,
    ) -> WriteResult:
        """Write derived values, one per (call, column, op ref, trial): the first success."""
        return self._write(
            "values",
            first_values(values),
            _VALUES,
            txns=txns,
            expect=expect,
            lookup_before=lookup_before,
        )

    def write_alerts(
        self,
        alerts: Iterable[Alert],
        *,
        txns: Mapping[str, int] | None = None,
        expect: Mapping[str, int | None] | None = None,
        lookup_before: datetime | None = None,
    ) -> WriteResult:
        """Write alerts, one per alert id."""
        unique = list({alert.id: alert for alert in reversed(list(alerts))}.values())[::-1]
        return self._write(
            "alerts", unique, _ALERTS, txns=txns, expect=expect, lookup_before=lookup_before
        )

    # -- the common path ----------------------------------------------------------------

    def _write(
        self,
        name: str,
        records: list[Any],
        kind: _Kind[Any],
        *,
        txns: Mapping[str, int] | None,
        expect: Mapping[str, int | None] | None,
        lookup_before: datetime | None,
    ) -> WriteResult:
        started = time.perf_counter()
        result = WriteResult(name)
        for attempt in range(1, self.attempts + 1):
            table = self.store.table(name)
            _check_versions(table, name, expect or {})
            plan = self._resolve(name, table, records, kind, lookup_before)
            now = datetime.now(UTC)
            rows = [kind.row(record, now) for record in [*plan.new, *plan.superseding]]
            try:
                replace = kind.merge_on if plan.superseding else None
                result.version = _commit(table, name, rows, replace, txns)
            except CommitFailedError as exc:
                if "Concurrent transaction" in str(exc):
                    metrics.STORE_COMMITS.labels(name, "fenced").inc()
                    raise FencedError(
                        f"{name}: another writer committed for {sorted(txns or {})} since this "
                        "one read the table (it owns those partitions now): not written"
                    ) from exc
                metrics.STORE_COMMITS.labels(name, "conflict").inc()
                log.info("%s: commit conflict (attempt %d): %s", name, attempt, exc)
                time.sleep(min(2.0, 0.05 * 2**attempt))
                continue
            except (DeltaError, OSError) as exc:
                metrics.STORE_COMMITS.labels(name, "failed").inc()
                raise StoreError(
                    f"cannot write {len(rows)} rows to the {name} table at "
                    f"{self.store.uri(name)}: {exc} (check free space and permissions)"
                ) from exc
            metrics.STORE_COMMITS.labels(name, "ok").inc()
            for record in [*plan.new, *plan.superseding]:
                self.indexes[name].put(kind.identity(record), kind.state(record))
            result.written = len(plan.new)
            result.superseded = len(plan.superseding)
            result.duplicates = plan.duplicates
            result.looked_up = plan.looked_up
            if name == "values":
                result.untyped = sum(1 for row in rows if row["kind"] == "json")
                metrics.STORE_UNTYPED_VALUES.inc(result.untyped)
            metrics.STORE_ROWS.labels(name).inc(len(rows))
            metrics.STORE_DUPLICATES.labels(name).inc(plan.duplicates)
            metrics.STORE_COMMIT_SECONDS.labels(name).observe(time.perf_counter() - started)
            return result
        raise StoreError(
            f"{name}: {self.attempts} commits in a row conflicted with concurrent writers; "
            "not written (the batch will be retried)"
        )

    def _resolve(
        self,
        name: str,
        table: DeltaTable,
        records: list[Any],
        kind: _Kind[Any],
        lookup_before: datetime | None,
    ) -> _Plan[Any]:
        index = self.indexes[name]
        states: dict[Hashable, Any] = {}
        wanted = []
        for record in records:
            key = kind.identity(record)
            state = index.get(key)
            if state is not None and not kind.needs_row(state, record):
                states[key] = state
            elif (
                state is not None or lookup_before is None or kind.may_be_old(record, lookup_before)
            ):
                wanted.append(record)
        if wanted:
            states.update(kind.lookup(table, wanted))
        new, superseding, duplicates = [], [], 0
        for record in records:
            held = states.get(kind.identity(record))
            if held is None:
                new.append(record)
                continue
            replacement = kind.supersede(held, record)
            if replacement is None:
                duplicates += 1
            else:
                superseding.append(replacement)
        return _Plan(new, superseding, duplicates, len(wanted))


def _check_versions(table: DeltaTable, name: str, expect: Mapping[str, int | None]) -> None:
    """Fence a writer whose partitions someone else has written since it last looked."""
    moved = {
        app_id: (version, table.transaction_version(app_id))
        for app_id, version in expect.items()
        if table.transaction_version(app_id) != version
    }
    if moved:
        metrics.STORE_COMMITS.labels(name, "fenced").inc()
        raise FencedError(
            f"{name}: another writer has committed for {sorted(moved)} (expected version, "
            f"found: {moved}); it owns those partitions now: not written"
        )


def _commit(
    table: DeltaTable,
    name: str,
    rows: list[dict[str, Any]],
    replace: str | None,
    txns: Mapping[str, int] | None,
) -> int:
    spec = TABLES[name]
    data = pa.Table.from_pylist(rows, schema=spec.schema)
    properties = CommitProperties(
        app_transactions=[Transaction(app_id, version) for app_id, version in (txns or {}).items()]
        or None,
        max_commit_retries=20,
    )
    if replace is None:
        if not rows and not txns:
            return table.version()
        write_deltalake(table, data, mode="append", commit_properties=properties)
        return table.version()
    table.merge(
        data,
        predicate=replace,
        source_alias="s",
        target_alias="t",
        commit_properties=properties,
    ).when_matched_update_all().when_not_matched_insert_all().execute()
    return table.version()


def _combine_calls(held: Call, incoming: Call) -> Call:
    """Two records of one call in one batch: a complete one wins; two halves merge."""
    if held.kind == "complete":
        return held
    if incoming.kind == "complete":
        return incoming
    if held.kind != incoming.kind:
        start, end = (held, incoming) if held.kind == "start" else (incoming, held)
        return merge(start, end)
    return held


def _isin(table: DeltaTable, column: str, keys: Sequence[str], dates: set[str] | None) -> pa.Table:
    dataset = table.to_pyarrow_dataset()
    where = pc.field(column).isin(sorted(set(keys)))
    if dates:
        where = pc.field("date").isin(sorted(dates)) & where
    return dataset.to_table(filter=where)


@dataclass(frozen=True)
class _Kind(Generic[R]):
    """How one table's records are identified, compared and turned into rows."""

    row: Callable[[R, datetime], dict[str, Any]]
    identity: Callable[[R], Hashable]
    state: Callable[[R], Any]
    may_be_old: Callable[[R, datetime], bool]
    lookup: Callable[[DeltaTable, list[R]], dict[Hashable, Any]]
    # None: the stored state wins (a duplicate); else the record to store in its place.
    supersede: Callable[[Any, R], R | None]
    # The Delta merge predicate that finds the stored row a superseding record replaces.
    merge_on: str
    needs_row: Callable[[Any, R], bool] = lambda state, record: False


def _value_state(value: DerivedValue) -> str:
    return "ok" if value.error is None else "error"


def _lookup_values(table: DeltaTable, values: list[DerivedValue]) -> dict[Hashable, Any]:
    dates = {value_row_date(v) for v in values}
    found = _isin(table, "call_id", [v.call_id for v in values], dates)
    columns = found.select(["call_id", "column_name", "op_ref", "trial", "error"]).to_pylist()
    states: dict[Hashable, Any] = {}
    for row in columns:
        key = (row["call_id"], row["column_name"], row["op_ref"], row["trial"])
        if states.get(key) != "ok":  # a stored success and error (never by us): success wins
            states[key] = "ok" if row["error"] is None else "error"
    return states


def value_row_date(value: DerivedValue) -> str:
    """The ``date`` partition of a value's row (its call's start day)."""
    moment = value.started_at or value.computed_at
    return moment.astimezone(UTC).strftime("%Y-%m-%d")


def _supersede_value(state: str, value: DerivedValue) -> DerivedValue | None:
    return value if state == "error" and value.error is None else None


_VALUES: _Kind[DerivedValue] = _Kind(
    row=value_row,
    identity=identity,
    state=_value_state,
    # A re-emitted value (from a worker's results table) or one of an older call may
    # already be stored by another worker or an earlier run.
    may_be_old=lambda v, before: v.cached or (v.started_at or v.computed_at) < before,
    lookup=_lookup_values,
    supersede=_supersede_value,
    merge_on="t.date = s.date AND t.call_id = s.call_id AND t.column_name = s.column_name "
    "AND t.op_ref = s.op_ref AND t.trial = s.trial",
)


def _lookup_calls(table: DeltaTable, calls: list[Call]) -> dict[Hashable, Any]:
    # A half's partner may sit in another day's partition: look halves up everywhere.
    dates = None if any(c.kind != "complete" for c in calls) else {_call_date(c) for c in calls}
    found = _isin(table, "id", [c.id for c in calls], dates)
    return {row["id"]: call_from_row(row) for row in found.to_pylist()}


def _call_date(call: Call) -> str:
    moment = call.started_at or call.ended_at
    return moment.astimezone(UTC).strftime("%Y-%m-%d") if moment else ""


def _supersede_call(held: Any, call: Call) -> Call | None:
    held_kind = held.kind if isinstance(held, Call) else held
    if held_kind == "complete" or held_kind == call.kind:
        return None
    if call.kind == "complete" or not isinstance(held, Call):
        return call
    return _combine_calls(held, call)


_CALLS: _Kind[Call] = _Kind(
    row=call_row,
    identity=lambda call: call.id,
    state=lambda call: call.kind,
    may_be_old=lambda c, before: (
        c.kind != "complete" or (c.started_at or c.ended_at or before) < before
    ),
    lookup=_lookup_calls,
    supersede=_supersede_call,
    merge_on="t.id = s.id",  # a stored half may sit in another day's partition
    # Merging a half with a stored half needs the stored row, not only its kind.
    needs_row=lambda state, call: (
        isinstance(state, str)
        and state != "complete"
        and state != call.kind
        and call.kind != "complete"
    ),
)


def _lookup_alerts(table: DeltaTable, alerts: list[Alert]) -> dict[Hashable, Any]:
    found = _isin(table, "id", [a.id for a in alerts], None)
    return dict.fromkeys(found.column("id").to_pylist(), "stored")


_ALERTS: _Kind[Alert] = _Kind(
    row=alert_row,
    identity=lambda alert: alert.id,
    state=lambda alert: "stored",
    may_be_old=lambda a, before: a.time < before,
    lookup=_lookup_alerts,
    supersede=lambda state, alert: None,
    merge_on="t.id = s.id",
)
