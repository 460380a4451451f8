"""Running a planned query: DuckDB over the store's tables, scanned as Arrow datasets.

Each run opens a fresh in-memory DuckDB connection (UTC), registers the tables it
needs (``calls``; ``values`` when a derived column is read) as lazy Arrow datasets
(filter and projection pushdown: a time range prunes ``date`` partitions), and
the call-id lists of drill-downs as small Arrow tables. Before the main SQL it
checks every derived column named against the store's catalog (a few rows per
column and day): an unknown column or op ref is a
:class:`~weave_stream.errors.QueryError` naming the known ones, a column with values
of several op refs in the range is read per call at its latest value, and the
types a field has held decide which typed columns the SQL reads.
"""

from __future__ import annotations

import difflib
from collections.abc import Callable, Iterable
from typing import Any

import duckdb
import pyarrow as pa

from weave_stream.errors import QueryError, StoreError
from weave_stream.query.accessor import Hints
from weave_stream.query.paths import CALL_FIELDS, Path, ValuePath, literal
from weave_stream.query.plan import QuerySpec, SqlBuilder, ValueKey, value_keys
from weave_stream.query.times import TimeRange
from weave_stream.store.tables import Store

__all__ = ["run_sql"]


def _specs(spec: QuerySpec) -> list[QuerySpec]:
    found = [spec]
    while found[-1].parent is not None:
        found.append(found[-1].parent)
    return found


def run_sql(
    store: Store,
    spec: QuerySpec,
    build: Callable[[SqlBuilder], str],
    extra_paths: Iterable[Path] = (),
) -> pa.Table:
    """Run the SQL ``build`` makes for ``spec`` (and its parents) on ``store``."""
    specs = _specs(spec)
    by_range: dict[TimeRange, list[ValueKey]] = {}
    for index, each in enumerate(specs):
        paths = each.paths() + (list(extra_paths) if index == 0 else [])
        for key in value_keys(paths):
            by_range.setdefault(each.time, []).append(key)
    prune = _date_prune([each.time for each in specs])
    connection = duckdb.connect()
    try:
        connection.execute("SET TimeZone = 'UTC'")
        connection.register("calls", store.dataset("calls", prune))
        latest: set[ValueKey] = set()
        catalog = Catalog([])
        if by_range:
            catalog = Catalog(store.table("catalog").to_pyarrow_table().to_pylist())
            connection.register("values", store.dataset("values", prune))
            for time, keys in by_range.items():
                latest |= catalog.check(sorted(set(keys), key=str), time)
        ids_tables = {}
        for index, each in enumerate(specs):
            if each.call_ids is not None and each.call_ids not in ids_tables:
                name = f"ids_{index}"
                connection.register(name, pa.table({"id": pa.array(each.call_ids, pa.string())}))
                ids_tables[each.call_ids] = name
        sql = build(SqlBuilder(latest, ids_tables, catalog.hints))
        try:
            return connection.sql(sql).to_arrow_table()
        except duckdb.Error as exc:
            raise StoreError(f"the query failed on the store at {store.location}: {exc}") from exc
    finally:
        connection.close()


def _date_prune(ranges: list[TimeRange]) -> str | None:
    """The ``date`` partitions every range lies in (None: some range is open)."""
    days = [time.days() for time in ranges]
    bounds = []
    if all(first is not None for first, _ in days):
        bounds.append(f"date >= {literal(min(str(first) for first, _ in days))}")
    if all(last is not None for _, last in days):
        bounds.append(f"date <= {literal(max(str(last) for _, last in days))}")
    return " AND ".join(bounds) or None


class Catalog:
    """The store's catalog rows: which columns and op refs exist, and their types."""

    def __init__(self, rows: list[dict[str, Any]]) -> None:
        self.rows = rows
        self.types: dict[tuple[str, str, str], set[str]] = {}
        for row in rows:
            key = (row["topology"], row["column_name"], row["field"])
            self.types.setdefault(key, set()).add(row["type"])

    def hints(self, path: ValuePath) -> Hints | None:
        """The types ``path``'s column and top-level field have held."""
        kinds = self.types.get((path.topology, path.column, ""))
        if kinds is None:
            return None
        field = None
        if len(path.parts) == 1:
            field = frozenset(self.types.get((path.topology, path.column, path.parts[0]), ()))
        return Hints(frozenset(kinds), field)

    def check(self, keys: list[ValueKey], time: TimeRange) -> set[ValueKey]:
        """Validate ``keys``; return those read per call at the latest op ref in ``time``."""
        first, last = time.days()
        refs: dict[tuple[str, str], set[str]] = {}
        known: dict[tuple[str, str], set[str]] = {}
        for row in self.rows:
            pair = (row["topology"], row["column_name"])
            known.setdefault(pair, set()).add(row["op_ref"])
            if (first is None or row["date"] >= first) and (last is None or row["date"] <= last):
                refs.setdefault(pair, set()).add(row["op_ref"])
        for topology, column, op_ref in keys:
            _known_or_raise(known, topology, column, op_ref)
        return {key for key in keys if key[2] is None and len(refs.get(key[:2], ())) > 1}


def _known_or_raise(
    known: dict[tuple[str, str], set[str]], topology: str, column: str, op_ref: str | None
) -> None:
    """Raise for a column or op ref the store has never held (an empty range is fine)."""
    if (topology, column) not in known:
        names = sorted(f"{t}.{c}" for t, c in known)
        close = difflib.get_close_matches(f"{topology}.{column}", names, n=1)
        hint = f"did you mean {close[0]!r}? " if close else ""
        field = difflib.get_close_matches(topology, list(CALL_FIELDS), n=1)
        if field and not close:
            hint = f"did you mean the call field {field[0]}.{column}? "
        raise QueryError(
            f"unknown derived column {topology}.{column}: {hint}the store holds "
            f"{', '.join(names) or 'no derived values yet'}"
        )
    if op_ref is not None and op_ref not in known[(topology, column)]:
        raise QueryError(
            f"{topology}.{column} has no values of op ref {op_ref!r}; its op refs: "
            f"{', '.join(sorted(known[(topology, column)]))}"
        )


def first_value(table: pa.Table) -> Any:
    """The one value of a one-row, one-column result."""
    return table.column(0)[0].as_py()
