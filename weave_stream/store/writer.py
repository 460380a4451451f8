"""Writing to the store: each row once, committed with the source offsets it covers.

:class:`StoreWriter` writes calls, derived values and alerts to their tables, one
Delta commit per table and batch. Two guarantees:

* **Exactly once per source record.** A commit may carry application transactions
  (``{app id: version}``: the stream sink's ``<topic>:<partition>`` and the highest
  offset written), committed atomically with the rows, so after a crash the sink
  resumes after what the table holds. A writer whose partitions another writer
  has committed for since it last looked (``expect``), or concurrently (Delta's
  conflict check on the same app id), is fenced: :class:`FencedError`.
* **One row per identity** (see :mod:`weave_stream.store.identities`), by the readers'
  first-value rule. Identities stored lately are held in an index (warmed from the
  table's recent rows by :meth:`StoreWriter.warm`); an identity not there is looked
  up in the rows stored before the index's horizon, when its record's event is old
  enough to have been stored then. Without a warmed index every identity is looked
  up (the local runner), so re-running over the same calls adds nothing.

A batch that supersedes stored rows commits as one Delta ``merge`` (the old rows
replaced and the new ones added atomically); any other batch is an append.
Concurrent appends by other workers are retried by Delta (optimistic concurrency).
"""

from __future__ import annotations

import logging
import time
from collections.abc import Hashable, Iterable, Mapping
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

import pyarrow as pa
import pyarrow.compute as pc
from deltalake import CommitProperties, DeltaTable, Transaction, write_deltalake
from deltalake.exceptions import CommitFailedError, DeltaError

from weave_stream.columns.derive import DerivedValue
from weave_stream.errors import FencedError, StoreError
from weave_stream.ingest.call import Call
from weave_stream.metrics import (
    STORE_COMMIT_SECONDS,
    STORE_COMMITS,
    STORE_DUPLICATES,
    STORE_ROWS,
    STORE_UNTYPED_VALUES,
)
from weave_stream.notify.alerts import Alert
from weave_stream.store.identities import RULES, IdentityIndex, Row, TableRules
from weave_stream.store.rows import alert_row, call_row, value_row
from weave_stream.store.schema import TABLES
from weave_stream.store.subcalls import sub_call_rows
from weave_stream.store.tables import Store, stamp

__all__ = ["CLOCK_MARGIN", "FencedError", "StoreWriter", "WriteResult"]

log = logging.getLogger(__name__)

CLOCK_MARGIN = timedelta(seconds=60)
"""How far a producer's clock may run ahead: a record whose event is within this of
the index's horizon is looked up, in case it was stored just before it."""


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


class StoreWriter:
    """Writes records to a :class:`~weave_stream.store.tables.Store` (see the module docstring).

    Each ``write_*`` takes ``txns`` (app id -> version to commit with the rows) and
    ``expect`` (app id -> the version this writer last saw; a different one in the
    table raises :class:`FencedError`).

    Parameters:
        store: where to write (its tables are created when missing).
        index_capacity: identities remembered per table.
        attempts: tries of a commit that conflicts with a concurrent one.
    """

    def __init__(self, store: Store, *, index_capacity: int = 200_000, attempts: int = 8) -> None:
        self.store = store
        self.attempts = attempts
        self.indexes = {name: IdentityIndex(index_capacity) for name in RULES}
        self._catalog: set[tuple[str, ...]] | None = None  # catalog rows known to be stored
        store.ensure()

    def warm(self, window: timedelta = timedelta(minutes=5)) -> dict[str, int]:
        """Index the identities stored in the last ``window``; rows read per table.

        From then on only records of events older than the window are looked up.
        """
        since = datetime.now(UTC) - window
        read = {}
        for name, rules in RULES.items():
            dataset = self.store.dataset(name, prune=f"stored_at >= {stamp(since)}")
            rows = (
                dataset.to_table(
                    filter=pc.field("stored_at") >= pa.scalar(since, pa.timestamp("us", "UTC")),
                    columns=[*rules.key_columns, "stored_at"],
                )
                .sort_by("stored_at")
                .to_pylist()
            )
            index = self.indexes[name]
            index.warmed(since)
            for row in rows:
                index.put(rules.identity(row), rules.state(row), row["stored_at"])
            read[name] = len(rows)
        return read

    def write_calls(
        self,
        calls: Iterable[Call],
        *,
        txns: Mapping[str, int] | None = None,
        expect: Mapping[str, int | None] | None = None,
    ) -> WriteResult:
        """Write ``calls`` (one row per call id; halves merged, complete calls win)."""
        now = datetime.now(UTC)
        return self.write_rows("calls", [call_row(c, now) for c in calls], txns, expect)

    def write_values(
        self,
        values: Iterable[DerivedValue],
        *,
        txns: Mapping[str, int] | None = None,
        expect: Mapping[str, int | None] | None = None,
    ) -> WriteResult:
        """Write derived values, one per (call, column, op ref, trial): the first success."""
        now = datetime.now(UTC)
        return self.write_rows("values", [value_row(v, now) for v in values], txns, expect)

    def write_sub_calls(
        self,
        sub_calls: Iterable[DerivedValue],
        *,
        txns: Mapping[str, int] | None = None,
        expect: Mapping[str, int | None] | None = None,
    ) -> WriteResult:
        """Write sub-call records (see :mod:`weave_stream.store.subcalls`), one per place
        in a value's tree: the first success."""
        now = datetime.now(UTC)
        return self.write_rows("subcalls", sub_call_rows(sub_calls, now), txns, expect)

    def write_alerts(
        self,
        alerts: Iterable[Alert],
        *,
        txns: Mapping[str, int] | None = None,
        expect: Mapping[str, int | None] | None = None,
    ) -> WriteResult:
        """Write alerts, one per alert id (the first)."""
        now = datetime.now(UTC)
        return self.write_rows("alerts", [alert_row(a, now) for a in alerts], txns, expect)

    def write_rows(
        self,
        name: str,
        rows: Iterable[Row],
        txns: Mapping[str, int] | None = None,
        expect: Mapping[str, int | None] | None = None,
    ) -> WriteResult:
        """Write rows of table ``name`` (as :mod:`weave_stream.store.rows` makes them)."""
        started = time.perf_counter()
        rules = RULES[name]
        batch = rules.first(rows)
        for attempt in range(1, self.attempts + 1):
            table = self.store.table(name)
            _check_versions(table, name, expect or {})
            new, superseding, duplicates, looked_up = self._resolve(name, table, batch, rules)
            now = datetime.now(UTC)
            chosen = [{**row, "stored_at": now} for row in [*new, *superseding]]
            if name == "values":
                self._describe(chosen, now)  # before the values: the catalog never lags them
            try:
                version = _commit(
                    table, name, chosen, rules.merge_on if superseding else None, txns
                )
            except CommitFailedError as exc:
                if "Concurrent transaction" in str(exc):
                    STORE_COMMITS.labels(name, "fenced").inc()
                    raise FencedError(
                        f"{name}: another writer committed for {sorted(txns or {})} at the "
                        "same time (it owns those partitions now): not written"
                    ) from exc
                STORE_COMMITS.labels(name, "conflict").inc()
                log.info("%s: commit conflict (attempt %d): %s", name, attempt, exc)
                time.sleep(min(2.0, 0.05 * 2**attempt))
                continue
            except (DeltaError, OSError) as exc:
                STORE_COMMITS.labels(name, "failed").inc()
                raise StoreError(
                    f"cannot write {len(chosen)} rows to the {name} table at "
                    f"{self.store.uri(name)}: {exc} (check free space and permissions)"
                ) from exc
            STORE_COMMITS.labels(name, "ok").inc()
            index = self.indexes[name]
            for row in chosen:
                index.put(rules.identity(row), rules.state(row), now)
            untyped = sum(1 for r in chosen if r.get("kind") == "json") if name == "values" else 0
            STORE_UNTYPED_VALUES.inc(untyped)
            STORE_ROWS.labels(name).inc(len(chosen))
            STORE_DUPLICATES.labels(name).inc(duplicates)
            STORE_COMMIT_SECONDS.labels(name).observe(time.perf_counter() - started)
            return WriteResult(
                name, len(new), duplicates, len(superseding), looked_up, untyped, version
            )
        raise StoreError(
            f"{name}: {self.attempts} commits in a row conflicted with concurrent writers; "
            "not written (the batch will be retried)"
        )

    def _describe(self, rows: list[dict[str, Any]], now: datetime) -> None:
        """Add to the catalog the (column, op ref, day, field, type) these rows bring."""
        if self._catalog is None:
            known = self.store.table("catalog").to_pyarrow_table(columns=list(_CATALOG_KEY))
            self._catalog = {tuple(row.values()) for row in known.to_pylist()}
        entries: set[tuple[str, ...]] = set()
        for row in rows:
            base = (row["topology"], row["column_name"], row["op_ref"], row["date"])
            entries.add((*base, "", row["kind"]))
            for field_name, _ in row["fields_number"] or ():
                entries.add((*base, field_name, "number"))
            for field_name, _ in row["fields_text"] or ():
                entries.add((*base, field_name, "text"))
        fresh = entries - self._catalog
        if not fresh:
            return
        table = pa.Table.from_pylist(
            [{**dict(zip(_CATALOG_KEY, entry, strict=True)), "stored_at": now} for entry in fresh],
            schema=TABLES["catalog"].schema,
        )
        try:
            write_deltalake(self.store.table("catalog"), table, mode="append")
        except (DeltaError, OSError) as exc:
            raise StoreError(
                f"cannot write the catalog at {self.store.uri('catalog')}: {exc} "
                "(check free space and permissions)"
            ) from exc
        self._catalog |= fresh

    def _resolve(
        self, name: str, table: DeltaTable, records: list[Row], rules: TableRules
    ) -> tuple[list[Row], list[Row], int, int]:
        """(new records, superseding records, duplicates, identities looked up)."""
        index = self.indexes[name]
        horizon = index.covers_since
        states: dict[Hashable, Any] = {}
        wanted = []
        for record in records:
            key = rules.identity(record)
            state = index.get(key)
            if state is not None and not rules.needs_row(state, record):
                states[key] = state
                continue
            event = rules.event_time(record)
            old = horizon is None or event is None or event < horizon + CLOCK_MARGIN
            if state is not None or old:
                wanted.append(record)
        if wanted:
            # Held in the index or stored since its horizon: only older rows can match.
            before = None if any(index.get(rules.identity(r)) for r in wanted) else horizon
            states.update(rules.lookup(table, wanted, before))
        new, superseding, duplicates = [], [], 0
        for record in records:
            held = states.get(rules.identity(record))
            if held is None:
                new.append(record)
                continue
            replacement = rules.supersede(held, record)
            if replacement is None:
                duplicates += 1
            else:
                superseding.append(replacement)
        return new, superseding, duplicates, len(wanted)


_CATALOG_KEY = ("topology", "column_name", "op_ref", "date", "field", "type")


def _check_versions(table: DeltaTable, name: str, expect: Mapping[str, int | None]) -> None:
    """Fence a writer whose partitions someone else has written since it last looked."""
    moved = {}
    for app_id, version in expect.items():
        found = table.transaction_version(app_id)
        if found != version:
            moved[app_id] = (version, found)
    if moved:
        STORE_COMMITS.labels(name, "fenced").inc()
        raise FencedError(
            f"{name}: another writer has committed for {sorted(moved)} (expected version, "
            f"found: {moved}); it owns those partitions now: not written"
        )


def _commit(
    table: DeltaTable,
    name: str,
    rows: list[dict[str, Any]],
    merge_on: str | None,
    txns: Mapping[str, int] | None,
) -> int:
    """Append ``rows`` (or merge them on ``merge_on``) with ``txns``; the new version."""
    data = pa.Table.from_pylist(rows, schema=TABLES[name].schema)
    transactions = [Transaction(app_id, version) for app_id, version in (txns or {}).items()]
    properties = CommitProperties(app_transactions=transactions or None, max_commit_retries=20)
    if merge_on is None:
        if rows or txns:
            write_deltalake(table, data, mode="append", commit_properties=properties)
        return table.version()
    merger = table.merge(
        data, predicate=merge_on, source_alias="s", target_alias="t", commit_properties=properties
    )
    merger.when_matched_update_all().when_not_matched_insert_all().execute()
    return table.version()
