"""Keeping the store small and fast: compaction, retention, vacuum, and what it holds.

A streaming sink writes one small file per table, date partition and batch (every
``store_batch_seconds`` per worker); :func:`compact` rewrites a partition's small
files into few large ones (readers then open far fewer files). :func:`apply_retention`
deletes whole date partitions older than a number of days, in every table (a Delta
delete on the partition column: files are dropped, nothing is rewritten);
:func:`vacuum` then removes the files no version of the table still needs, once
they are older than the retention of the table's history (7 days by default, so
time travel and slow readers keep working). Workers run compaction and retention
every ``store_maintenance_seconds``; ``weave-stream store compact|vacuum|info`` runs
them on command.

>>> import tempfile
>>> store = Store(tempfile.mkdtemp()); store.ensure()
>>> [(t.table, t.files, t.rows) for t in info(store)]  # doctest: +NORMALIZE_WHITESPACE
[('calls', 0, 0), ('values', 0, 0), ('alerts', 0, 0), ('catalog', 0, 0),
 ('datasets', 0, 0), ('subcalls', 0, 0)]
"""

from __future__ import annotations

from dataclasses import asdict, dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

import pyarrow as pa
import pyarrow.compute as pc
from deltalake.exceptions import DeltaError

from weave_stream.errors import StoreError
from weave_stream.store.schema import TABLES
from weave_stream.store.tables import Store

__all__ = ["TableInfo", "apply_retention", "compact", "info", "vacuum"]

# Parquet files of about this size after compaction: large enough that a reader
# opens few, small enough that a day partition of a busy table still splits well.
TARGET_FILE_BYTES = 128 * 1024 * 1024


@dataclass
class TableInfo:
    """What one table holds: files, rows, bytes, date partitions, the oldest event."""

    table: str
    version: int
    files: int
    rows: int
    bytes: int
    partitions: int
    oldest_date: str | None
    newest_date: str | None
    oldest_event: datetime | None

    def to_dict(self) -> dict[str, Any]:
        """As JSON-ready data."""
        data = asdict(self)
        data["oldest_event"] = self.oldest_event.isoformat() if self.oldest_event else None
        return data


def info(store: Store) -> list[TableInfo]:
    """Files, rows, bytes, date range and oldest event of each table (from the log only)."""
    found = []
    for name in TABLES:
        table = store.table(name)
        actions = pa.table(table.get_add_actions(flatten=True))
        event = {
            "calls": "started_at",
            "values": "started_at",
            "alerts": "time",
            "datasets": "created_at",
        }.get(name, "stored_at")
        dated = actions.num_rows and "partition.date" in actions.column_names
        dates = actions.column("partition.date") if dated else pa.array([], pa.string())
        oldest = None
        if actions.num_rows and f"min.{event}" in actions.column_names:
            oldest = pc.min(actions.column(f"min.{event}")).as_py()
        found.append(
            TableInfo(
                table=name,
                version=table.version(),
                files=actions.num_rows,
                rows=int(pc.sum(actions.column("num_records")).as_py() or 0)
                if actions.num_rows
                else 0,
                bytes=int(pc.sum(actions.column("size_bytes")).as_py() or 0)
                if actions.num_rows
                else 0,
                partitions=len(set(dates.to_pylist())),
                oldest_date=pc.min(dates).as_py() if dated else None,
                newest_date=pc.max(dates).as_py() if dated else None,
                oldest_event=oldest,
            )
        )
    return found


def compact(
    store: Store, *, older_than_today: bool = False, target_bytes: int = TARGET_FILE_BYTES
) -> dict[str, dict[str, Any]]:
    """Rewrite small files into large ones, per table and date partition.

    ``older_than_today`` leaves today's partitions alone (the sinks are adding to them;
    compaction and appends never conflict in Delta, so it is only a way to do less).
    Returns per table Delta's metrics (files added and removed...).
    """
    today = datetime.now(UTC).strftime("%Y-%m-%d")
    results = {}
    for name in TABLES:
        table = store.table(name)
        dated = "date" in TABLES[name].partition_by
        filters = [("date", "<", today)] if older_than_today and dated else None
        try:
            results[name] = table.optimize.compact(
                partition_filters=filters,
                target_size=target_bytes,
            )
        except (DeltaError, OSError) as exc:
            raise StoreError(f"compacting the {name} table at {store.uri(name)}: {exc}") from exc
    return results


def apply_retention(store: Store, days: float, *, now: datetime | None = None) -> dict[str, int]:
    """Delete every row in a date partition wholly older than ``days``; rows deleted per table.

    A partition is dropped only once its whole day lies before ``now - days``: a
    call is never removed earlier than its retention.
    """
    if days <= 0:
        raise StoreError(f"retention must be a positive number of days, got {days}")
    cutoff = (now or datetime.now(UTC)) - timedelta(days=days)
    # The cutoff's own day is partly within the retention: it is the first day kept.
    first_kept = cutoff.strftime("%Y-%m-%d")
    deleted = {}
    for name, spec in TABLES.items():
        if not spec.retained:
            continue
        table = store.table(name)
        result = table.delete(f"date < '{first_kept}'")
        deleted[name] = int(result.get("num_deleted_rows", 0) or 0)
    return deleted


def vacuum(
    store: Store, *, retention_hours: float | None = None, dry_run: bool = False
) -> dict[str, list[str]]:
    """Remove files no table version needs any more, older than ``retention_hours``.

    Without ``retention_hours`` each table's own history retention applies (Delta's
    default: 7 days). A shorter one may break readers of older versions.
    """
    removed = {}
    for name in TABLES:
        table = store.table(name)
        hours = None if retention_hours is None else max(0, round(retention_hours))
        removed[name] = table.vacuum(
            retention_hours=hours,
            dry_run=dry_run,
            enforce_retention_duration=retention_hours is None,
        )
    return removed
