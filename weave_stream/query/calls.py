"""``calls(...)``: a lazy query over the store, in Weave's vocabulary, to pandas.

Building a query reads nothing: ``calls()``, ``.where()``, ``.sort()``,
``.group_by()``, ``.children()`` only describe it (and check every name and filter
at once). It runs on ``.to_pandas()``, ``.to_arrow()``, iteration, ``.count()`` or
``len()``, each time against the store as it is then.

>>> q = calls(store="/nonexistent", op="text-extract", since="24h",
...           where={"text_extract.faithfulness.score": {"lt": 0.5}},
...           columns=["inputs.document", "text_extract.doc_class.label"], sort="-started_at")
>>> q.limit(10).spec.limit, [name for name, _ in q.spec.columns]
(10, ['inputs.document', 'text_extract.doc_class.label'])
>>> calls(store="/nonexistent", columns=["latency_ms.p50"])  # doctest: +ELLIPSIS
Traceback (most recent call last):
...
weave_stream.errors.QueryError: 'latency_ms.p50' goes into 'latency_ms', which is a plain value; ...
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping, Sequence
from dataclasses import replace
from typing import TYPE_CHECKING, Any

from weave_stream.errors import QueryError
from weave_stream.query.execute import first_value, run_sql
from weave_stream.query.filters import parse_filter
from weave_stream.query.frame import Columns, assemble, to_arrow, to_pandas
from weave_stream.query.paths import Path, parse_path
from weave_stream.query.plan import QuerySpec
from weave_stream.query.times import TimeRange
from weave_stream.store.tables import Store, StoreLike, open_store

if TYPE_CHECKING:
    import pandas as pd
    import pyarrow as pa

    from weave_stream.config import Settings
    from weave_stream.datasets.dataset import Dataset
    from weave_stream.query.call_topics import CallTopics
    from weave_stream.query.compare import RangeComparison
    from weave_stream.query.grouping import GroupBy

__all__ = ["DEFAULT_COLUMNS", "Query", "calls"]

DEFAULT_COLUMNS = [
    "op_name",
    "display_name",
    "trace_id",
    "parent_id",
    "started_at",
    "ended_at",
    "status",
    "latency_ms",
    "total_tokens",
    "cost",
    "exception",
    "inputs",
    "output",
]


def _many(value: str | Sequence[str] | None, what: str) -> tuple[str, ...]:
    if value is None:
        return ()
    if isinstance(value, str):
        return (value,)
    if not all(isinstance(item, str) for item in value):
        raise QueryError(f"{what} takes a string or a list of strings, got {value!r}")
    return tuple(value)


def _columns(columns: Sequence[str] | Mapping[str, str] | None) -> tuple[tuple[str, Path], ...]:
    if columns is None:
        return tuple((name, parse_path(name)) for name in DEFAULT_COLUMNS)
    if isinstance(columns, str):
        columns = [part.strip() for part in columns.split(",") if part.strip()]
    pairs = columns.items() if isinstance(columns, Mapping) else [(c, c) for c in columns]
    parsed = tuple((str(name), parse_path(path)) for name, path in pairs if name != "id")
    return parsed


def _sort(keys: str | Sequence[str] | None) -> tuple[tuple[Path, bool], ...]:
    out = []
    for key in _many(keys, "sort"):
        descending = key.startswith("-")
        out.append((parse_path(key.lstrip("+-")), descending))
    return tuple(out)


def calls(
    *,
    store: StoreLike = None,
    op: str | Sequence[str] | None = None,
    trace_id: str | Sequence[str] | None = None,
    parent_id: str | Sequence[str] | None = None,
    call_ids: Sequence[str] | None = None,
    trace_roots: bool = False,
    since: Any = None,
    until: Any = None,
    where: Mapping[str, Any] | None = None,
    columns: Sequence[str] | Mapping[str, str] | None = None,
    sort: str | Sequence[str] | None = None,
    limit: int | None = None,
    trial: int = 0,
    settings: Settings | None = None,
) -> Query:
    """A lazy query of the calls in the store, with their derived values.

    Parameters:
        store: a :class:`Store`, a folder or URL; default: the settings' store.
        op: op names (``predict``, matching a Weave ref's name), exact ``weave:///`` op
            refs, or globs (``text-*``).
        trace_id, parent_id, call_ids: Weave's id filters; ``trace_roots``: root calls only.
        since, until: the time range on ``started_at``: a duration before now
            (``"24h"``, ``"7d"``) or a time (ISO-8601, epoch seconds, datetime).
        where: the topology filter language over call fields and derived columns,
            e.g. ``{"text_extract.faithfulness.score": {"lt": 0.5}}``.
        columns: call fields and derived columns to return (a mapping renames them);
            ``id`` always comes first. Default: the call's main fields.
        sort: fields, ``-`` for descending (``"-started_at"``). limit: at most N calls.
        trial: the trial of the derived values (0: the first).

    Raises :class:`~weave_stream.errors.QueryError` at once for an unknown field or a
    malformed filter; nothing is read until the query runs.
    """
    if limit is not None and (not isinstance(limit, int) or limit < 0):
        raise QueryError(f"limit must be a non-negative integer, got {limit!r}")
    spec = QuerySpec(
        op_names=_many(op, "op"),
        trace_ids=_many(trace_id, "trace_id"),
        parent_ids=_many(parent_id, "parent_id"),
        call_ids=None if call_ids is None else _many(list(call_ids), "call_ids"),
        trace_roots=trace_roots,
        time=TimeRange.parse(since, until),
        conditions=(parse_filter(where),) if where else (),
        columns=_columns(columns),
        sort=_sort(sort),
        limit=limit,
        trial=trial,
    )
    return Query(store, spec, settings)


class Query:
    """A lazy calls query (see :func:`calls`); every builder returns a new query."""

    def __init__(self, store: StoreLike, spec: QuerySpec, settings: Settings | None = None):
        self._store = store
        self._settings = settings
        self.spec = spec

    def _with(self, **changes: Any) -> Query:
        return Query(self._store, replace(self.spec, **changes), self._settings)

    @property
    def store(self) -> Store:
        """The store this query reads (resolved when first needed; opens no file)."""
        if not isinstance(self._store, Store):
            self._store = open_store(self._store, self._settings)
        return self._store

    # -- building ----------------------------------------------------------------------

    def where(self, spec: Mapping[str, Any]) -> Query:
        """Also require ``spec`` (the filter language; ANDed with what is there)."""
        return self._with(conditions=(*self.spec.conditions, parse_filter(spec)))

    def select(self, *columns: str, **renamed: str) -> Query:
        """Return these columns (``name=path`` renames) instead."""
        pairs = {**{c: c for c in columns}, **renamed}
        return self._with(columns=_columns(pairs))

    def sort(self, *keys: str) -> Query:
        """Sort by ``keys`` (``-`` for descending; missing values last)."""
        return self._with(sort=_sort(list(keys)))

    def limit(self, count: int) -> Query:
        """At most ``count`` calls."""
        return self._with(limit=count)

    def children(
        self, op_name: str | Sequence[str] | None = None, *, recursive: bool = False
    ) -> Query:
        """The calls whose parent is one of these (``recursive``: every descendant),
        optionally of op ``op_name`` — e.g. the OpenAI calls made by these predict calls."""
        spec = QuerySpec(
            op_names=_many(op_name, "op_name"),
            columns=_columns(None),
            trial=self.spec.trial,
            parent=self.spec,
            recursive=recursive,
        )
        return Query(self._store, spec, self._settings)

    def group_by(self, *keys: str | Mapping[str, str], every: str | None = None) -> GroupBy:
        """Group these calls by fields or derived columns (and ``every`` time bucket of
        ``started_at``, e.g. ``"1h"``); finish with ``.agg(...)``."""
        from weave_stream.query.grouping import GroupBy

        return GroupBy(self, keys, every)

    def compare(
        self,
        other: Query,
        *,
        metrics: Sequence[str],
        by: str | None = None,
        confidence: float = 0.95,
    ) -> RangeComparison:
        """These calls (A) against ``other`` (B): per group, each metric's means, their
        difference B - A with its confidence interval, and Welch's t test (runs now)."""
        from weave_stream.query.compare import compare_queries

        return compare_queries(self, other, metrics=metrics, by=by, confidence=confidence)

    def drill(self, row: Mapping[str, Any]) -> Query:
        """The calls behind a group-by row (its ``call_ids``), with this query's columns."""
        ids = row["call_ids"]
        return self._with(call_ids=tuple(ids), limit=None, sort=self.spec.sort)

    def topics(self, topology: str, column: str, *, ref: str | None = None) -> CallTopics:
        """These calls with their topic of the stored topic map of ``topology.column``
        (its current map, or ``ref``): ``.to_pandas()`` adds ``topic_id``, ``topic``,
        ``topic_distance`` and ``topic_from``; ``.summary()`` is one row per topic. Lazy:
        see :mod:`weave_stream.query.call_topics`."""
        from weave_stream.query.call_topics import CallTopics

        return CallTopics(self, topology, column, ref)

    def to_dataset(
        self,
        name: str,
        mapping: Mapping[str, str] | None = None,
        *,
        append: bool = False,
        note: str = "",
    ) -> Dataset:
        """Run the query and make dataset ``name`` of its calls (runs now): one row per
        call with the ``mapping``'s fields (field -> call path or derived column) and the
        call's ref. ``append`` adds to an existing dataset (its remembered mapping when
        ``mapping`` is left out); see :mod:`weave_stream.query.to_dataset`."""
        from weave_stream.query.to_dataset import query_to_dataset

        return query_to_dataset(self, name, mapping, append=append, note=note)

    # -- running ----------------------------------------------------------------------

    def _run(self) -> Columns:
        raw = run_sql(self.store, self.spec, lambda sql: sql.select(self.spec))
        return assemble(raw)

    def to_arrow(self) -> pa.Table:
        """Run the query: an Arrow table (JSON objects as text)."""
        return to_arrow(self._run())

    def to_pandas(self) -> pd.DataFrame:
        """Run the query: a DataFrame (JSON fields as Python objects)."""
        return to_pandas(self._run())

    def __iter__(self) -> Iterator[dict[str, Any]]:
        columns = self._run()
        lists = {k: v if isinstance(v, list) else v.to_pylist() for k, v in columns.items()}
        names = list(lists)
        for cells in zip(*lists.values(), strict=True):
            yield dict(zip(names, cells, strict=True))

    def count(self) -> int:
        """Run the query: how many calls it has."""
        table = run_sql(self.store, self.spec, lambda sql: sql.select(self.spec, count=True))
        return int(first_value(table))

    def __len__(self) -> int:
        return self.count()

    def sub_calls(self, column: str | None = None) -> pd.DataFrame:
        """Run the query: the sub-calls of these calls' derived values (of ``column``
        only, when given), one row each: call, column, ``column_ref`` (the op ref of the
        value they were made for), trial, ``position`` in the tree, ``parent_ref``,
        ``op_ref``, value, error, latency, cost, ``cached``."""
        from weave_stream.query.subcalls import sub_calls_frame

        ids = [str(row["id"]) for row in self._with(columns=())]
        return sub_calls_frame(self.store, ids, column)

    def tree(self, call_id: str, column: str | None = None, trial: int = 0) -> str:
        """The values of call ``call_id`` in this query's store (of ``column``, else every
        column) and the calls their ops made, as a tree (as a local run's ``tree``)."""
        from weave_stream.query.subcalls import tree_text

        return tree_text(self.store, call_id, column, trial)

    def __repr__(self) -> str:
        columns = ", ".join(name for name, _ in self.spec.columns)
        return f"<calls query over {self._store!r}: {columns}>"
