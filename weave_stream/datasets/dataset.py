"""Datasets: named, versioned tables of rows mapped from calls, each row keeping its call.

A row is ``{"id": ..., <mapped fields>..., "source_call": ..., "source_ref": ...}``:
its own id, the fields the dataset's mapping took from the call (and its derived
columns), and the id and Weave ref (``weave:///<project>/call/<id>``) of the call it
came from. Rows never change; every change is a new version, and every version
reads back exactly (see :mod:`weave_stream.datasets.events`).

>>> import tempfile
>>> from weave_stream.store import Store
>>> store = Store(tempfile.mkdtemp())
>>> rows = [NewRow("c1", {"text": "hello", "label": "greeting"}),
...         NewRow("c2", {"text": "2+2?", "label": "math"})]
>>> first = write_rows(store, "qa", rows, mapping={"text": "inputs.text"}, create=True)
>>> data = Dataset("qa", store)
>>> second = data.remove([data.rows()[0]["id"]])
>>> (first.version, first.rows), (second.version, second.rows)
((0, 2), (1, 1))
>>> [r["text"] for r in data.rows(version=0)], [r["text"] for r in data.rows()]
(['hello', '2+2?'], ['2+2?'])
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any

import orjson
import pyarrow.compute as pc

from weave_stream.datasets.events import (
    ATTEMPTS,
    DatasetConflictError,
    NewRow,
    VersionInfo,
    backoff,
    check_name,
    commit_changes,
    load_states,
    version_events,
)
from weave_stream.errors import DatasetError
from weave_stream.ingest.call import Call
from weave_stream.store.rows import call_from_row
from weave_stream.store.tables import Store, StoreLike, open_store

if TYPE_CHECKING:
    import pandas as pd

    from weave_stream.config import Settings

__all__ = ["Dataset", "DatasetDiff", "list_datasets", "write_rows"]


def write_rows(
    store: Store,
    name: str,
    rows: Sequence[NewRow],
    *,
    mapping: Mapping[str, str],
    source: Mapping[str, Any] | None = None,
    create: bool = False,
    append: bool = False,
    note: str = "",
) -> VersionInfo | None:
    """Add ``rows`` to dataset ``name`` as one new version (calls already in it skipped).

    ``create``: make the dataset (refused when it exists, unless ``append``).
    Without ``create`` the dataset must exist, and ``mapping`` must be the one it
    remembers. Returns the new version, or None when every row's call was in it.
    """
    check_name(name)
    store.ensure()
    for attempt in range(ATTEMPTS):
        state = load_states(store, [name])[name]
        if state.exists and create and not append:
            raise DatasetError(
                f"dataset {name!r} exists ({state.rows} rows, version {state.version}); add "
                "to it with append=True (--append), or choose another name"
            )
        if not state.exists and not create:
            raise DatasetError(
                f"no dataset {name!r} in the store at {store.location}; create it first "
                f"(known: {', '.join(i.dataset for i in list_datasets(store)) or 'none'})"
            )
        if state.exists and dict(mapping) != state.mapping:
            raise DatasetError(
                f"dataset {name!r} remembers the mapping {state.mapping}; got {dict(mapping)}. "
                "Add with the remembered mapping (leave it out), or make a new dataset"
            )
        built_on = state.version
        planned = version_events(
            state, rows, mapping=mapping, source=source or state.source, note=note
        )
        if planned is None:
            return None
        events, info = planned
        try:
            commit_changes(store, {name: (built_on, events)})
        except DatasetConflictError:
            backoff(attempt)
            continue  # another writer made a version meanwhile: plan again on top of it
        return info
    raise DatasetError(f"dataset {name!r}: {ATTEMPTS} writers in a row got there first; retry")


@dataclass(frozen=True)
class DatasetDiff:
    """The rows one version has that another has not, both ways."""

    dataset: str
    old: int
    new: int
    added: list[dict[str, Any]]
    removed: list[dict[str, Any]]


class Dataset:
    """Dataset ``name`` in ``store`` (a :class:`Store`, a folder or URL; None: the
    settings' store). Reading it reads the table as it is then."""

    def __init__(self, name: str, store: StoreLike = None, settings: Settings | None = None):
        self.name = check_name(name)
        self.store = open_store(store, settings)

    def __repr__(self) -> str:
        return f"Dataset({self.name!r}, {self.store.location!r})"

    def _events(self, version: int | None = None) -> list[dict[str, Any]]:
        condition = pc.field("dataset") == self.name
        if version is not None:
            condition = condition & (pc.field("version") <= version)
        table = self.store.dataset("datasets").to_table(filter=condition)
        return table.sort_by([("version", "ascending"), ("position", "ascending")]).to_pylist()

    def versions(self) -> list[VersionInfo]:
        """Every version, oldest first (a :class:`DatasetError` when there is none)."""
        found = [
            VersionInfo(
                e["dataset"],
                e["version"],
                e["rows"],
                e["added"],
                e["removed"],
                e["created_at"],
                orjson.loads(e["mapping"] or "{}"),
                orjson.loads(e["source"] or "{}"),
                e["note"] or "",
            )
            for e in self._events()
            if e["kind"] == "version"
        ]
        if not found:
            known = [i.dataset for i in list_datasets(self.store)]
            raise DatasetError(
                f"no dataset {self.name!r} in the store at {self.store.location} "
                f"(known: {', '.join(known) or 'none'})"
            )
        return found

    @property
    def latest(self) -> VersionInfo:
        """The latest version."""
        return self.versions()[-1]

    @property
    def mapping(self) -> dict[str, str]:
        """The mapping it remembers: field -> call path or derived column."""
        return self.latest.mapping

    def _check_version(self, version: int | None) -> int:
        versions = self.versions()
        if version is None:
            return versions[-1].version
        if not any(v.version == version for v in versions):
            raise DatasetError(
                f"dataset {self.name!r} has no version {version}; its versions are "
                f"0..{versions[-1].version}"
            )
        return version

    def row_events(self, version: int | None = None) -> list[dict[str, Any]]:
        """The ``row`` events of the rows in ``version`` (default: the latest), in order."""
        version = self._check_version(version)
        events = self._events(version)
        removed = {e["row_id"] for e in events if e["kind"] == "remove"}
        return [e for e in events if e["kind"] == "row" and e["row_id"] not in removed]

    def rows(self, version: int | None = None) -> list[dict[str, Any]]:
        """The rows of ``version`` (default: the latest) as dicts, in the order added."""
        return [_row(event) for event in self.row_events(version)]

    def __len__(self) -> int:
        return self.latest.rows

    def to_pandas(self, version: int | None = None) -> pd.DataFrame:
        """The rows of ``version`` as a DataFrame: ``id``, the fields, ``source_call``,
        ``source_ref`` (an experiment reads it as examples; pandas as any frame)."""
        import pandas as pd

        rows = self.rows(version)
        columns = ["id", *self._field_names(version), "source_call", "source_ref"]
        return pd.DataFrame(rows, columns=columns)

    def _field_names(self, version: int | None) -> list[str]:
        version = self._check_version(version)
        mapping = next(v.mapping for v in self.versions() if v.version == version)
        return list(mapping)

    def remove(self, row_ids: Iterable[str], note: str = "") -> VersionInfo:
        """A new version without the rows ``row_ids`` (they stay in the older versions)."""
        removed = list(row_ids)
        for attempt in range(ATTEMPTS):
            state = load_states(self.store, [self.name])[self.name]
            if not state.exists:
                self.versions()  # raises, naming the known datasets
            built_on = state.version
            planned = version_events(
                state,
                [],
                mapping=state.mapping,
                source=state.source,
                remove=removed,
                note=note,
            )
            if planned is None:
                raise DatasetError(f"dataset {self.name!r}: no row ids given to remove")
            try:
                commit_changes(self.store, {self.name: (built_on, planned[0])})
            except DatasetConflictError:
                backoff(attempt)
                continue
            return planned[1]
        raise DatasetError(f"dataset {self.name!r}: other writers kept adding versions; retry")

    def diff(self, old: int, new: int) -> DatasetDiff:
        """The rows ``new`` has that ``old`` has not (added), and the reverse (removed)."""
        before = {e["row_id"]: e for e in self.row_events(old)}
        after = {e["row_id"]: e for e in self.row_events(new)}
        return DatasetDiff(
            self.name,
            old,
            new,
            [_row(e) for key, e in after.items() if key not in before],
            [_row(e) for key, e in before.items() if key not in after],
        )

    def source_calls(self, version: int | None = None) -> list[Call]:
        """The calls the rows of ``version`` came from, as the call store holds them, in
        the rows' order (what ``run_local(topology, dataset)`` runs on)."""
        ids = [e["call_id"] for e in self.row_events(version)]
        if not ids:
            return []
        found = {
            row["id"]: row
            for row in self.store.dataset("calls")
            .to_table(filter=pc.field("id").isin(ids))
            .to_pylist()
        }
        missing = [call_id for call_id in ids if call_id not in found]
        if missing:
            raise DatasetError(
                f"dataset {self.name!r}: {len(missing)} source calls are not in the call store "
                f"at {self.store.location} (e.g. {missing[:3]}; retention may have dropped "
                "them); use the rows' fields instead (dataset.to_pandas())"
            )
        return [call_from_row(found[call_id]) for call_id in ids]

    def example_calls(self, version: int | None = None, op_name: str = "example") -> list[Call]:
        """The rows of ``version`` as calls whose ``inputs`` are the row's fields (as Weave's
        evaluations pass a dataset row to a model): ``run_local(topology,
        dataset.example_calls(op_name=...))`` runs a topology reading ``inputs.<field>``.
        Each keeps the row's id, its source call's trace and time."""
        return [
            Call(
                id=event["row_id"],
                op_name=op_name,
                trace_id=event["trace_id"],
                started_at=event["started_at"] or event["created_at"],
                ended_at=event["started_at"] or event["created_at"],
                inputs=orjson.loads(event["fields"] or "{}"),
                attributes={"source_call": event["call_id"], "source_ref": event["call_ref"]},
            )
            for event in self.row_events(version)
        ]

    def export(self, path: str | Path, version: int | None = None) -> Path:
        """Write ``version``'s rows to ``path`` (``.jsonl``, ``.csv`` or ``.parquet``)."""
        from weave_stream.datasets.export import export_rows

        return export_rows(self.to_pandas(version), Path(path))


def _row(event: Mapping[str, Any]) -> dict[str, Any]:
    return {
        "id": event["row_id"],
        **orjson.loads(event["fields"] or "{}"),
        "source_call": event["call_id"],
        "source_ref": event["call_ref"],
    }


def list_datasets(store: StoreLike = None) -> list[VersionInfo]:
    """The latest version of every dataset in the store, by name (``versions`` = its
    number + 1; ``source`` says where its rows came from)."""
    store = open_store(store)
    if "datasets" not in store.present():
        return []
    events = (
        store.dataset("datasets")
        .to_table(filter=pc.field("kind") == "version")
        .sort_by([("dataset", "ascending"), ("version", "ascending")])
        .to_pylist()
    )
    latest: dict[str, VersionInfo] = {}
    for e in events:
        latest[e["dataset"]] = VersionInfo(
            e["dataset"],
            e["version"],
            e["rows"],
            e["added"],
            e["removed"],
            e["created_at"].astimezone(UTC) if e["created_at"] else datetime.now(UTC),
            orjson.loads(e["mapping"] or "{}"),
            orjson.loads(e["source"] or "{}"),
            e["note"] or "",
        )
    return list(latest.values())
