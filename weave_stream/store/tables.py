"""Where the store lives and how its tables are opened: :class:`Store`.

A store is a root (a local folder or an object-store URL such as
``s3://bucket/weave-stream``) holding one Delta table per name of
:data:`~weave_stream.store.schema.TABLES`. Opening checks that each table is one
weave-stream wrote, at this schema version: a folder that is not a store, or a
store of another version, is a :class:`~weave_stream.errors.StoreError` that says
what was found and what to do — never a silently empty answer.

>>> import tempfile
>>> store = Store(tempfile.mkdtemp())
>>> store.exists()
False
>>> store.ensure()
>>> sorted(store.present())
['alerts', 'calls', 'catalog', 'datasets', 'subcalls', 'values']
>>> store.table("calls").version()
0
"""

from __future__ import annotations

from collections.abc import Mapping
from datetime import UTC, datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any

from deltalake import DeltaTable
from deltalake.exceptions import DeltaError, TableNotFoundError

from weave_stream.errors import StoreError
from weave_stream.store.schema import (
    SCHEMA_VERSION,
    TABLES,
    parse_table_label,
    table_label,
)

if TYPE_CHECKING:
    import pyarrow.dataset as ds

    from weave_stream.config import Settings

__all__ = ["Store", "StoreLike", "open_store", "stamp"]


def stamp(moment: datetime) -> str:
    """A UTC moment as a literal for pruning predicates on timestamp columns.

    >>> from datetime import UTC, datetime
    >>> stamp(datetime(2026, 11, 26, 3, 0, 1, 5, tzinfo=UTC))
    "'2026-11-26 03:00:01.000005'"
    """
    return "'" + moment.astimezone(UTC).strftime("%Y-%m-%d %H:%M:%S.%f") + "'"


class Store:
    """The call store at ``location`` (a folder or a URL), with object-store options.

    ``scans`` counts the table scans this object has started (a query that only
    builds itself starts none: the laziness tests read it).
    """

    def __init__(self, location: str | Path, storage_options: Mapping[str, str] | None = None):
        text = str(location)
        if text.startswith("file://"):
            text = text.removeprefix("file://")
        self.is_local = "://" not in text
        self.location = str(Path(text).expanduser().resolve()) if self.is_local else text
        self.storage_options = dict(storage_options or {})
        self.scans = 0
        self._tables: dict[str, DeltaTable] = {}

    @classmethod
    def from_settings(cls, settings: Settings) -> Store:
        """The store ``settings`` point at (``store_url``, else ``<data_dir>/store``)."""
        return cls(settings.store_location, settings.store_options)

    def __repr__(self) -> str:
        return f"Store({self.location!r})"

    def uri(self, table: str) -> str:
        """Where table ``table`` lives."""
        if self.is_local:
            return str(Path(self.location) / table)
        return f"{self.location.rstrip('/')}/{table}"

    def _options(self) -> dict[str, str] | None:
        return self.storage_options or None

    def exists(self) -> bool:
        """Whether any table of the store has been created."""
        return bool(self.present())

    def present(self) -> list[str]:
        """The names of the store tables that exist (each a Delta table)."""
        return [name for name in TABLES if self.has(name)]

    def has(self, name: str) -> bool:
        """Whether table ``name`` exists (a Delta table at its place)."""
        return bool(DeltaTable.is_deltatable(self.uri(name), storage_options=self._options()))

    def ensure(self) -> None:
        """Create every missing table (empty, with its schema); check the existing ones."""
        for name, spec in TABLES.items():
            uri = self.uri(name)
            if DeltaTable.is_deltatable(uri, storage_options=self._options()):
                self.table(name)
                continue
            if self.is_local:
                folder = Path(uri)
                if folder.exists() and any(folder.iterdir()):
                    raise StoreError(
                        f"store {self.location}: {uri} exists and is not a Delta table (it "
                        f"holds {sorted(p.name for p in folder.iterdir())[:5]}); point "
                        "store_url at another folder, or move that folder away"
                    )
            try:
                DeltaTable.create(
                    uri,
                    spec.schema,
                    mode="ignore",  # another writer may create it at the same moment
                    partition_by=list(spec.partition_by),
                    name=table_label(name),
                    description=spec.description,
                    configuration={"delta.dataSkippingStatsColumns": ",".join(spec.stats_columns)},
                    storage_options=self._options(),
                )
            except (DeltaError, OSError) as exc:
                raise StoreError(f"cannot create the {name} table at {uri}: {exc}") from exc

    def table(self, name: str) -> DeltaTable:
        """Table ``name`` at its latest version, checked to be a weave-stream table of this
        schema version when first opened (then brought up to date incrementally)."""
        if name not in TABLES:
            raise StoreError(f"no table {name!r} in a weave-stream store; tables: {list(TABLES)}")
        cached = self._tables.get(name)
        if cached is not None:
            try:
                cached.update_incremental()
                return cached
            except (DeltaError, OSError):
                del self._tables[name]  # replaced or removed underneath: open it afresh
        uri = self.uri(name)
        try:
            table = DeltaTable(uri, storage_options=self._options())
        except TableNotFoundError:
            raise StoreError(self._missing(name)) from None
        except (DeltaError, OSError) as exc:
            raise StoreError(f"cannot open the {name} table at {uri}: {exc}") from exc
        label = parse_table_label(table.metadata().name)
        if label is None or label[0] != name:
            raise StoreError(
                f"{uri} is a Delta table, but not weave-stream's {name} table (its name is "
                f"{table.metadata().name!r}); point store_url at a weave-stream store"
            )
        if label[1] != SCHEMA_VERSION:
            raise StoreError(
                f"{uri} holds schema version {label[1]} of the store; this weave-stream reads "
                f"version {SCHEMA_VERSION}: use the weave-stream that wrote it, or point "
                "store_url at another folder"
            )
        self._tables[name] = table
        return table

    def _missing(self, name: str) -> str:
        where = self.location
        if self.is_local and not Path(where).exists():
            return (
                f"no call store at {where}: nothing has been written there yet (run a worker, "
                "or run_local(topology, calls, store=...)), or store_url points elsewhere"
            )
        found = self.present()
        if not found:
            listing = ""
            if self.is_local:
                listing = f" (it holds {sorted(p.name for p in Path(where).iterdir())[:8]})"
            return (
                f"{where} is not a weave-stream call store: it has none of the tables "
                f"{list(TABLES)}{listing}; point store_url (or store=) at a store folder"
            )
        return f"store {where} has no {name} table yet (it has {found}); nothing written to it"

    def dataset(
        self, name: str, prune: str | None = None, table: DeltaTable | None = None
    ) -> ds.Dataset:
        """A lazy Arrow dataset over table ``name`` (counted in :attr:`scans`).

        ``prune`` is a SQL predicate on partition values and file statistics (``date >=
        '2026-11-26'``, ``stored_at < '2026-11-26 03:00:00'``): files it rules out are
        left out of the dataset before anything is opened.
        """
        table = table or self.table(name)
        self.scans += 1
        return table.to_pyarrow_dataset(file_pruning_predicate=prune)

    def transaction_versions(self, name: str, app_ids: list[str]) -> dict[str, int | None]:
        """The application-transaction version of each app id in table ``name``."""
        table = self.table(name)
        return {app_id: table.transaction_version(app_id) for app_id in app_ids}

    def describe(self) -> dict[str, Any]:
        """Location and schema version, for messages and ``store info``."""
        return {"location": self.location, "schema_version": SCHEMA_VERSION}


StoreLike = Store | str | Path | None
"""A store, its folder or URL, or None for the settings' store."""


def open_store(store: StoreLike, settings: Settings | None = None) -> Store:
    """A :class:`Store` from a store, a folder or URL, or (None) the settings' store.

    Nothing is read: a store is only a location until a table is opened.
    """
    if isinstance(store, Store):
        return store
    if store is not None:
        return Store(store, settings.store_options if settings else None)
    from weave_stream.config import load_settings

    return Store.from_settings(settings or load_settings())
