"""A dataset's history as immutable events in the store's ``datasets`` table, and its commits.

Every change to a dataset is one Delta commit of events, all with the new version:
a ``row`` event per row added (its id, the mapped fields, the source call), a
``remove`` event per row taken out, and one ``version`` event (the mapping in force,
where the rows came from, the row count). Nothing is rewritten, so any version is
read back exactly by taking the events up to it, after compaction and vacuum too
(the Delta time travel of the commit itself lasts only until a vacuum).

A dataset's version counter *is* a Delta application transaction, ``dataset:<name>``,
committed with its events: a writer states the version it built on, a commit that
finds another version is refused (:class:`DatasetConflictError`, and the caller rebuilds
from the table as it is now), and two writers committing the same dataset at once
collide in Delta's own check. So versions are gapless and two writers never both
make version N — which is what keeps "at most N rows a day" true with several
workers, and each call in a dataset at most once.

>>> row_id("invoices-hard", "c1")
'r-2dc75a6bead1dd6f'
"""

from __future__ import annotations

import hashlib
import random
import time
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

import orjson
import pyarrow as pa
import pyarrow.compute as pc
from deltalake import CommitProperties, DeltaTable, Transaction, write_deltalake
from deltalake.exceptions import CommitFailedError, DeltaError

from weave_stream.errors import DatasetError, FencedError, StoreError
from weave_stream.store.schema import TABLES
from weave_stream.store.tables import Store
from weave_stream.topology.datasets import RESERVED_FIELDS, dataset_name_problem

__all__ = [
    "ATTEMPTS",
    "RESERVED_FIELDS",
    "DatasetConflictError",
    "DatasetState",
    "NewRow",
    "VersionInfo",
    "app_id",
    "backoff",
    "check_name",
    "commit_changes",
    "load_states",
    "row_id",
    "version_events",
]

ATTEMPTS = 20
"""Tries of a commit that other writers of the same dataset keep beating."""

_STATE_COLUMNS = [
    "dataset",
    "version",
    "kind",
    "row_id",
    "call_id",
    "started_at",
    "rule",
    "mapping",
    "source",
    "rows",
    "created_at",
]


def _json(value: Any) -> str:
    return orjson.dumps(value, option=orjson.OPT_NON_STR_KEYS | orjson.OPT_SERIALIZE_NUMPY).decode()


def check_name(name: Any) -> str:
    """``name`` if it is a dataset name, else a :class:`DatasetError` saying what is."""
    problem = dataset_name_problem(name)
    if problem is not None:
        raise DatasetError(problem)
    return str(name)


def backoff(attempt: int) -> None:
    """Wait a little, at random, before planning again: writers that collided spread out."""
    time.sleep(random.uniform(0, min(0.5, 0.01 * 2**attempt)))


def app_id(name: str) -> str:
    """The Delta application-transaction id holding dataset ``name``'s version."""
    return f"dataset:{name}"


def row_id(dataset: str, call_id: str) -> str:
    """A row's id: the same call gives the same id in a dataset (a replay adds nothing)."""
    digest = hashlib.sha256(f"{dataset}\0{call_id}".encode()).hexdigest()
    return f"r-{digest[:16]}"


class DatasetConflictError(StoreError):
    """Another writer made a version of the dataset since this one looked: rebuild, retry."""


@dataclass(frozen=True)
class NewRow:
    """A row to add: the mapped fields and the call they came from."""

    call_id: str
    fields: Mapping[str, Any]
    call_ref: str | None = None
    trace_id: str | None = None
    started_at: datetime | None = None
    rule: str = "query"


@dataclass(frozen=True)
class VersionInfo:
    """One version of a dataset: its rows after it, and what it changed."""

    dataset: str
    version: int
    rows: int
    added: int
    removed: int
    created_at: datetime
    mapping: dict[str, str]
    source: dict[str, Any]
    note: str = ""

    def to_dict(self) -> dict[str, Any]:
        """As JSON-ready data."""
        return {**vars(self), "created_at": self.created_at.isoformat()}


@dataclass
class DatasetState:
    """What the table holds of one dataset now: enough to plan the next version."""

    name: str
    version: int | None = None  # None: no such dataset
    mapping: dict[str, str] = field(default_factory=dict)
    source: dict[str, Any] = field(default_factory=dict)
    rows: int = 0
    call_ids: set[str] = field(default_factory=set)  # every call ever added
    live: set[str] = field(default_factory=set)  # row ids in the latest version
    started: dict[str, list[datetime]] = field(default_factory=dict)  # rule -> its calls' times

    @property
    def exists(self) -> bool:
        """Whether the dataset has a version."""
        return self.version is not None


def load_states(store: Store, names: Iterable[str]) -> dict[str, DatasetState]:
    """The state of each dataset in ``names`` (one scan of the small columns)."""
    wanted = sorted(set(names))
    states = {name: DatasetState(name) for name in wanted}
    if not wanted:
        return states
    events = (
        store.dataset("datasets")
        .to_table(filter=pc.field("dataset").isin(wanted), columns=_STATE_COLUMNS)
        .sort_by([("version", "ascending")])
        .to_pylist()
    )
    for event in events:
        state = states[event["dataset"]]
        kind = event["kind"]
        if kind == "row":
            state.call_ids.add(event["call_id"])
            state.live.add(event["row_id"])
            if event["started_at"] is not None:
                state.started.setdefault(event["rule"] or "", []).append(event["started_at"])
        elif kind == "remove":
            state.live.discard(event["row_id"])
        elif kind == "version":
            state.version = event["version"]
            state.mapping = orjson.loads(event["mapping"] or "{}")
            state.source = orjson.loads(event["source"] or "{}")
            state.rows = event["rows"]
    return states


def version_events(
    state: DatasetState,
    rows: Sequence[NewRow],
    *,
    mapping: Mapping[str, str],
    source: Mapping[str, Any],
    remove: Sequence[str] = (),
    note: str = "",
    now: datetime | None = None,
) -> tuple[list[dict[str, Any]], VersionInfo] | None:
    """The events of ``state``'s next version: ``rows`` whose call is not in the dataset
    yet (nor earlier in ``rows``), ``remove`` (row ids in its latest version), the version
    record. None when it would change nothing. ``state`` is updated as if committed."""
    now = now or datetime.now(UTC)
    version = 0 if state.version is None else state.version + 1
    unknown = [r for r in remove if r not in state.live]
    if unknown:
        raise DatasetError(
            f"dataset {state.name!r} version {state.version} has no rows {unknown[:5]}; "
            "`weave-stream dataset show NAME` lists the row ids"
        )
    events: list[dict[str, Any]] = []
    for position, row in enumerate(_new(state, rows)):
        events.append(
            {
                "dataset": state.name,
                "version": version,
                "kind": "row",
                "row_id": row_id(state.name, row.call_id),
                "position": position,
                "call_id": row.call_id,
                "call_ref": row.call_ref,
                "trace_id": row.trace_id,
                "started_at": row.started_at,
                "fields": _json(dict(row.fields)),
                "rule": row.rule,
                "created_at": now,
            }
        )
    for removed in dict.fromkeys(remove):
        events.append(
            {
                "dataset": state.name,
                "version": version,
                "kind": "remove",
                "row_id": removed,
                "created_at": now,
            }
        )
    added = sum(1 for e in events if e["kind"] == "row")
    removed_count = len(events) - added
    if not events and state.exists:
        return None
    info = VersionInfo(
        state.name,
        version,
        state.rows + added - removed_count,
        added,
        removed_count,
        now,
        dict(mapping),
        dict(source),
        note,
    )
    events.append(
        {
            "dataset": state.name,
            "version": version,
            "kind": "version",
            "mapping": _json(info.mapping),
            "source": _json(info.source),
            "rows": info.rows,
            "added": added,
            "removed": removed_count,
            "note": note,
            "created_at": now,
        }
    )
    for event in events:
        if event["kind"] == "row":
            state.call_ids.add(event["call_id"])
            state.live.add(event["row_id"])
            if event["started_at"] is not None:
                state.started.setdefault(event["rule"], []).append(event["started_at"])
        elif event["kind"] == "remove":
            state.live.discard(event["row_id"])
    state.version, state.rows = version, info.rows
    state.mapping, state.source = dict(mapping), dict(source)
    return events, info


def _new(state: DatasetState, rows: Sequence[NewRow]) -> list[NewRow]:
    seen = set(state.call_ids)
    fresh = []
    for row in rows:
        if row.call_id in seen:
            continue
        seen.add(row.call_id)
        fresh.append(row)
    return fresh


def commit_changes(
    store: Store,
    changes: Mapping[str, tuple[int | None, list[dict[str, Any]]]],
    txns: Mapping[str, int] | None = None,
    expect: Mapping[str, int | None] | None = None,
) -> int:
    """Commit the events of several datasets as one Delta commit; the table's new version.

    ``changes`` maps a dataset to (the version its events were built on, the events);
    ``txns`` are more application transactions to commit with them (a sink's offsets),
    ``expect`` the versions the committer last saw of those (another one: it is fenced,
    :class:`~weave_stream.store.writer.FencedError`). Raises :class:`DatasetConflictError`
    when a dataset moved since, or moves concurrently.
    """
    store.table("datasets")  # checked to be the store's datasets table
    # A table object of its own: the versions checked below and the commit's read
    # snapshot must be one and the same, so any later commit is a conflict Delta checks
    # (a shared object brought up to date by another thread in between would hide it).
    table = DeltaTable(store.uri("datasets"), storage_options=store.storage_options or None)
    moved = {
        key: (seen, table.transaction_version(key))
        for key, seen in (expect or {}).items()
        if table.transaction_version(key) != seen
    }
    if moved:
        raise FencedError(
            f"datasets: another writer has committed for {sorted(moved)} (expected, found: "
            f"{moved}); it owns those partitions now: not written"
        )
    transactions = [Transaction(a, v) for a, v in (txns or {}).items()]
    events: list[dict[str, Any]] = []
    for name, (built_on, dataset_events) in changes.items():
        found = table.transaction_version(app_id(name))
        if found != built_on:
            raise DatasetConflictError(
                f"dataset {name!r}: version {found} was made by another writer since version "
                f"{built_on} was read"
            )
        version = 0 if built_on is None else built_on + 1
        transactions.append(Transaction(app_id(name), version))
        events.extend(dataset_events)
    data = pa.Table.from_pylist(events, schema=TABLES["datasets"].schema)
    properties = CommitProperties(app_transactions=transactions or None, max_commit_retries=20)
    try:
        write_deltalake(table, data, mode="append", commit_properties=properties)
    except CommitFailedError as exc:
        if "Concurrent transaction" in str(exc):
            if set(txns or {}) and not changes:
                raise FencedError(f"datasets: {sorted(txns or {})} committed concurrently") from exc
            raise DatasetConflictError(
                f"datasets {sorted(changes)}: committed concurrently"
            ) from exc
        raise StoreError(f"cannot commit to the datasets table: {exc}") from exc
    except (DeltaError, OSError) as exc:
        raise StoreError(
            f"cannot write {len(events)} dataset events to {store.uri('datasets')}: {exc} "
            "(check free space and permissions)"
        ) from exc
    return table.version()
