"""A query's SQL: calls joined with their derived values, filtered, sorted, grouped.

A :class:`QuerySpec` (what :func:`~weave_stream.query.calls` built) becomes DuckDB
SQL over the store's tables, scanned as Arrow datasets with filter and projection
pushdown (the calls' ``date`` partitions prune a time range, on both sides)::

    SELECT ... FROM calls c
      LEFT JOIN (values of text_extract.doc_class, trial 0) d0 ON d0.call_id = c.id
      LEFT JOIN (values of text_extract.faithfulness ...)   d1 ON d1.call_id = c.id
    WHERE <call filters> AND <the filter, over calls and values> ORDER BY ... LIMIT ...

A derived column named without an op ref reads, per call, its latest value (by
``computed_at``) when the column has values of several op refs in the range, and
the plain join otherwise (:func:`column_refs` counts them first, in one scan of
the small key columns).
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from dataclasses import dataclass, field, replace

from weave_stream.query.accessor import Accessor, Hints
from weave_stream.query.filters import Condition, filter_sql
from weave_stream.query.paths import CallPath, Path, ValuePath, literal, quote
from weave_stream.query.times import TimeRange

__all__ = ["AGGREGATES", "Aggregate", "QuerySpec", "SqlBuilder", "value_keys"]

ValueKey = tuple[str, str, str | None]

AGGREGATES = [
    "count",
    "mean",
    "sum",
    "min",
    "max",
    "std",
    "median",
    "p50",
    "p90",
    "p95",
    "p99",
    "ci95",
    "count_distinct",
    "error_rate",
]
INLINE_IDS = 500
_QUANTILES = {"median": 0.5, "p50": 0.5, "p90": 0.9, "p95": 0.95, "p99": 0.99}


@dataclass(frozen=True)
class Aggregate:
    """One metric of a group: ``function`` of ``path`` (no path: ``count`` of calls)."""

    name: str
    function: str
    path: Path | None = None


@dataclass(frozen=True)
class QuerySpec:
    """Everything a calls() query says, parsed (see :func:`weave_stream.query.calls`)."""

    op_names: tuple[str, ...] = ()
    trace_ids: tuple[str, ...] = ()
    parent_ids: tuple[str, ...] = ()
    call_ids: tuple[str, ...] | None = None
    trace_roots: bool = False
    time: TimeRange = field(default_factory=TimeRange)
    conditions: tuple[Condition, ...] = ()
    columns: tuple[tuple[str, Path], ...] = ()
    sort: tuple[tuple[Path, bool], ...] = ()  # (path, descending)
    limit: int | None = None
    trial: int = 0
    parent: QuerySpec | None = None  # children(): calls whose parent is one of these
    recursive: bool = False  # children(recursive=True): every descendant

    def paths(self) -> list[Path]:
        """Every path this spec (not its parent) reads."""
        found: list[Path] = [path for _, path in self.columns]
        found += [path for path, _ in self.sort]
        found += [path for condition in self.conditions for path in condition.paths]
        return found


def value_keys(paths: Iterable[Path]) -> list[ValueKey]:
    """The distinct derived columns (topology, column, op ref) among ``paths``, in order."""
    return list(dict.fromkeys(p.key for p in paths if isinstance(p, ValuePath)))


class SqlBuilder:
    """Builds the SQL of one spec; ``latest`` names the value keys needing a per-call pick.

    ``ids_tables`` names the registered table holding each spec's ``call_ids``;
    ``hints`` gives the catalog's types for a derived path.
    """

    def __init__(
        self,
        latest: set[ValueKey],
        ids_tables: dict[tuple[str, ...], str],
        hints: Callable[[ValuePath], Hints | None] = lambda path: None,
    ) -> None:
        self.latest = latest
        self.ids_tables = ids_tables
        self.hints = hints
        self._depth = 0

    def relation(
        self, spec: QuerySpec, extra_paths: Iterable[Path] = ()
    ) -> tuple[str, Callable[[Path], Accessor], str]:
        """``FROM ... WHERE ...`` of ``spec``, an accessor factory for its paths, its alias."""
        depth, self._depth = self._depth, self._depth + 1
        calls = f"c{depth}"
        keys = value_keys([*spec.paths(), *extra_paths])
        aliases = {key: f"d{depth}_{i}" for i, key in enumerate(keys)}

        def accessor(path: Path) -> Accessor:
            if isinstance(path, CallPath):
                return Accessor(path, calls)
            return Accessor(path, aliases[path.key], self.hints(path))

        joins = "".join(
            f"\n  LEFT JOIN ({self._values(key, spec)}) {alias} ON {alias}.call_id = {calls}.id"
            for key, alias in aliases.items()
        )
        where = self._call_conditions(spec, calls)
        where += [filter_sql(condition, accessor) for condition in spec.conditions]
        sql = f'FROM "calls" {calls}{joins}'
        if where:
            sql += "\nWHERE " + "\n  AND ".join(where)
        return sql, accessor, calls

    def select(self, spec: QuerySpec, *, count: bool = False) -> str:
        """The SELECT of ``spec``: its columns (as candidate columns), sorted and limited."""
        relation, accessor, calls = self.relation(spec)
        if count and spec.limit is None:
            return f"SELECT count(*) AS n\n{relation}"
        outputs = [f"{calls}.id AS {quote('id' + chr(9) + 'v')}"]
        for name, path in spec.columns:
            for suffix, expr in accessor(path).projections().items():
                outputs.append(f"{expr} AS {quote(name + chr(9) + suffix)}")
        order = [
            f"{expr} {'DESC' if descending else 'ASC'} NULLS LAST"
            for path, descending in spec.sort
            for expr in _sort_keys(accessor(path))
        ]
        sql = "SELECT " + ",\n  ".join(outputs) + "\n" + relation
        if order:
            sql += "\nORDER BY " + ", ".join(order)
        if spec.limit is not None:
            sql += f"\nLIMIT {int(spec.limit)}"
        if count:
            return f"SELECT count(*) AS n FROM ({sql})"
        return sql

    def ids(self, spec: QuerySpec) -> str:
        """``SELECT id`` of the calls of ``spec`` (honouring its sort and limit)."""
        bare = replace(spec, columns=())
        return f"SELECT {quote('id' + chr(9) + 'v')} AS id FROM ({self.select(bare)})"

    def grouped(
        self,
        spec: QuerySpec,
        keys: tuple[tuple[str, Path], ...],
        every_seconds: float | None,
        aggregates: tuple[Aggregate, ...],
        max_refs: int | None,
    ) -> str:
        """One row per group: its keys (candidate columns), metrics and call ids."""
        paths = [p for _, p in keys] + [a.path for a in aggregates if a.path is not None]
        relation, accessor, calls = self.relation(spec, paths)
        outputs, group_by = [], []
        for name, path in keys:
            for suffix, expr in _group_candidates(accessor(path)).items():
                outputs.append(f"{expr} AS {quote(name + chr(9) + suffix)}")
                group_by.append(expr)
        if every_seconds is not None:
            bucket = f"time_bucket(INTERVAL '{every_seconds} seconds', {calls}.started_at)"
            outputs.append(f"{bucket} AS {quote('time' + chr(9) + 'v')}")
            group_by.append(bucket)
        outputs.append(f"count(*) AS {quote('calls' + chr(9) + 'v')}")
        for aggregate in aggregates:
            expr = _aggregate_sql(aggregate, accessor)
            outputs.append(f"{expr} AS {quote(aggregate.name + chr(9) + 'v')}")
        if max_refs is None:
            refs = f"list({calls}.id)"  # unordered: ordering cost ~10 % of a 1 M-call group-by
            outputs.append(f"{refs} AS {quote('call_ids' + chr(9) + 'v')}")
        elif max_refs > 0:
            refs = f"max_by({calls}.id, {calls}.started_at, {int(max_refs)})"
            outputs.append(f"{refs} AS {quote('call_ids' + chr(9) + 'v')}")
        sql = "SELECT " + ",\n  ".join(outputs) + "\n" + relation
        if group_by:
            sql += "\nGROUP BY " + ", ".join(group_by)
            sql += "\nORDER BY " + ", ".join(f"{g} ASC NULLS LAST" for g in group_by)
        return sql

    def _values(self, key: ValueKey, spec: QuerySpec) -> str:
        topology, column, op_ref = key
        where = [
            f"topology = {literal(topology)}",
            f"column_name = {literal(column)}",
            f"trial = {int(spec.trial)}",
        ]
        if op_ref is not None:
            where.append(f"op_ref = {literal(op_ref)}")
        where += _date_bounds(spec.time)
        if spec.call_ids is not None:
            where.append(f"call_id IN {self._ids_set(spec.call_ids)}")
        sql = 'SELECT * FROM "values" WHERE ' + " AND ".join(where)
        if op_ref is None and key in self.latest:
            sql += (
                "\n    QUALIFY row_number() OVER "
                "(PARTITION BY call_id ORDER BY computed_at DESC, op_ref DESC) = 1"
            )
        return sql

    def _call_conditions(self, spec: QuerySpec, calls: str) -> list[str]:
        where = _date_bounds(spec.time, f"{calls}.date")
        if spec.time.start is not None:
            where.append(f"{calls}.started_at >= {literal(spec.time.start)}")
        if spec.time.end is not None:
            where.append(f"{calls}.started_at < {literal(spec.time.end)}")
        if spec.op_names:
            where.append("(" + " OR ".join(_op_match(n, calls) for n in spec.op_names) + ")")
        for column, values in (("trace_id", spec.trace_ids), ("parent_id", spec.parent_ids)):
            if values:
                where.append(f"{calls}.{column} IN ({', '.join(map(literal, values))})")
        if spec.trace_roots:
            where.append(f"{calls}.parent_id IS NULL")
        if spec.call_ids is not None:
            where.append(f"{calls}.id IN {self._ids_set(spec.call_ids)}")
        if spec.parent is not None:
            parents = self.ids(spec.parent)
            if spec.recursive:
                where.append(f"{calls}.id IN (SELECT id FROM {self._descendants(parents)})")
            else:
                where.append(f"{calls}.parent_id IN ({parents})")
        return where

    def _ids_set(self, ids: tuple[str, ...]) -> str:
        """A few ids inline (pushed down to the scans: a point lookup reads little);
        many from their registered table."""
        if len(ids) <= INLINE_IDS:
            return "(" + ", ".join(map(literal, ids)) + ")" if ids else "(NULL)"
        return f"(SELECT id FROM {self.ids_tables[ids]})"

    def _descendants(self, parents: str) -> str:
        # The parents are chosen once: read twice, a LIMIT without an ORDER BY may pick
        # other calls the second time (DuckDB scans in parallel), and the walk from one
        # choice through the traces of another found nothing. Descendants share their
        # root's trace: walk only the calls of those traces.
        return (
            f"(WITH RECURSIVE roots AS MATERIALIZED ({parents}), "
            'kin AS (SELECT id, parent_id FROM "calls" WHERE trace_id IN '
            '(SELECT trace_id FROM "calls" WHERE id IN (SELECT id FROM roots))), '
            "tree(id) AS (SELECT k.id FROM kin k WHERE k.parent_id IN (SELECT id FROM roots) "
            "UNION SELECT k.id FROM kin k JOIN tree t ON k.parent_id = t.id) "
            "SELECT id FROM tree)"
        )


def _date_bounds(time: TimeRange, column: str = "date") -> list[str]:
    first, last = time.days()
    bounds = []
    if first is not None:
        bounds.append(f"{column} >= {literal(first)}")
    if last is not None:
        bounds.append(f"{column} <= {literal(last)}")
    return bounds


def _op_match(name: str, calls: str) -> str:
    """A plain op name matches the short name; a ``weave:///`` ref matches exactly; ``*`` globs."""
    if "*" in name:
        pattern = literal(name.replace("%", "\\%").replace("_", "\\_").replace("*", "%"))
        return (
            f"({calls}.op_name LIKE {pattern} ESCAPE '\\' OR {calls}.op LIKE {pattern} ESCAPE '\\')"
        )
    if name.startswith("weave:"):
        return f"{calls}.op_name = {literal(name)}"
    return f"({calls}.op = {literal(name)} OR {calls}.op_name = {literal(name)})"


def _sort_keys(reading: Accessor) -> list[str]:
    if reading.kind in ("text", "number", "time", "bool"):
        return list(reading.projections().values())
    return [reading.number(), reading.text()]


def _group_candidates(reading: Accessor) -> dict[str, str]:
    candidates = reading.projections()
    if any(name.startswith("w_") for name in candidates):  # a whole value: its scalar parts
        return {"n": reading.number(), "t": reading.text(), "j": reading.json()}
    if len(reading.path.parts) == 1 and not reading.path.parts[0].lstrip("-").isdigit():
        scalars = {k: v for k, v in candidates.items() if k in ("n", "t")}  # top-level: scalar
        return scalars or candidates
    return candidates


def _aggregate_sql(aggregate: Aggregate, accessor: Callable[[Path], Accessor]) -> str:
    function, path = aggregate.function, aggregate.path
    if path is None:
        return "count(*)"
    reading = accessor(path)
    number = reading.time() if reading.kind == "time" else reading.number()
    if function == "count":
        return f"count(CASE WHEN {reading.exists()} THEN 1 END)"
    if function == "count_distinct":
        return f"count(DISTINCT coalesce(CAST({reading.number()} AS VARCHAR), {reading.text()}))"
    if function == "error_rate":
        assert isinstance(path, ValuePath)
        alias = reading.relation
        return (
            f"avg(CASE WHEN {alias}.call_id IS NULL THEN NULL "
            f"WHEN {alias}.error IS NOT NULL THEN 1.0 ELSE 0.0 END)"
        )
    simple = {"mean": "avg", "sum": "sum", "min": "min", "max": "max", "std": "stddev_samp"}
    if function in simple:
        return f"{simple[function]}({number})"
    if function in _QUANTILES:
        return f"quantile_cont({number}, {_QUANTILES[function]})"
    if function == "ci95":
        return f"1.96 * stddev_samp({number}) / sqrt(count({number}))"
    raise AssertionError(f"unknown aggregate {function!r}")  # validated when the query is built
