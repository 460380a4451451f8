"""Group-by with drill-down: each row carries the ids of the calls behind it.

``calls(...).group_by(key, ..., every="1h").agg(name=(field, function), ...)`` gives
one row per group (and time bucket): the keys, ``time`` (the bucket's start) when
``every`` is set, ``calls`` (how many), each metric, and ``call_ids`` (in no order); ``.drill(row)``
is the query of exactly those calls. Functions: count, mean, sum, min, max, std,
median, p50, p90, p95, p99, ci95 (the half-width of the mean's 95 % interval),
count_distinct, error_rate (derived columns: share of values that are errors);
``name="count"`` alone counts calls.

>>> from weave_stream.query.calls import calls
>>> q = calls(store="/nonexistent")  # building reads nothing
>>> g = q.group_by("text_extract.doc_class.label", every="1h").agg(
...     n="count", score=("text_extract.faithfulness.score", "mean"))
>>> [a.function for a in g.aggregates], g.every_seconds
(['count', 'mean'], 3600.0)
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping, Sequence
from typing import TYPE_CHECKING, Any

from weave_stream.errors import QueryError
from weave_stream.query.execute import run_sql
from weave_stream.query.frame import Columns, assemble, to_arrow, to_pandas
from weave_stream.query.paths import Path, parse_path
from weave_stream.query.plan import AGGREGATES, Aggregate
from weave_stream.query.times import parse_duration

if TYPE_CHECKING:
    import pandas as pd
    import pyarrow as pa

    from weave_stream.query.calls import Query

__all__ = ["GroupBy", "Grouped"]


class GroupBy:
    """A query and its group keys, waiting for :meth:`agg`."""

    def __init__(self, query: Query, keys: Sequence[str | Mapping[str, str]], every: str | None):
        self.query = query
        parsed: list[tuple[str, Path]] = []
        for key in keys:
            pairs = key.items() if isinstance(key, Mapping) else [(key, key)]
            parsed += [(str(name), parse_path(path)) for name, path in pairs]
        reserved = {"time", "calls", "call_ids"} & {name for name, _ in parsed}
        if reserved:
            raise QueryError(f"group key names {sorted(reserved)} are taken; rename them")
        self.keys = tuple(parsed)
        self.every_seconds = parse_duration(every) if every is not None else None

    def agg(self, *, max_refs: int | None = None, **metrics: str | tuple[str, str]) -> Grouped:
        """The metrics per group: ``name=(field, function)`` or ``name="count"``.

        ``max_refs`` keeps only the latest N call ids per group (default: all; 0: none,
        for a group-by that will not be drilled into — on 1 M calls it is ~1/3 faster).
        """
        aggregates = []
        for name, spec in metrics.items():
            if spec == "count":
                aggregates.append(Aggregate(name, "count"))
                continue
            if not (isinstance(spec, tuple) and len(spec) == 2):
                raise QueryError(
                    f"agg {name}={spec!r}: write name=(field, function), e.g. "
                    f"score=('text_extract.faithfulness.score', 'mean'), or name='count'"
                )
            path, function = spec
            if function not in AGGREGATES:
                raise QueryError(
                    f"agg {name}: unknown function {function!r}; use one of {', '.join(AGGREGATES)}"
                )
            parsed = parse_path(path)
            if function == "error_rate" and not hasattr(parsed, "topology"):
                raise QueryError(
                    f"agg {name}: error_rate applies to a derived column, not {path!r}"
                )
            aggregates.append(Aggregate(name, function, parsed))
        taken = {n for n, _ in self.keys} | {"time", "calls", "call_ids"}
        clash = sorted(taken & set(metrics))
        if clash:
            raise QueryError(f"metric names {clash} clash with group keys or result columns")
        return Grouped(self, tuple(aggregates), max_refs)


class Grouped:
    """Group-by rows, lazily: run with :meth:`to_pandas`, :meth:`to_arrow` or iteration."""

    def __init__(self, group: GroupBy, aggregates: tuple[Aggregate, ...], max_refs: int | None):
        self.group = group
        self.aggregates = aggregates
        self.max_refs = max_refs

    @property
    def every_seconds(self) -> float | None:
        """The time bucket, in seconds (None: no time buckets)."""
        return self.group.every_seconds

    def _run(self) -> Columns:
        query = self.group.query
        paths = [p for _, p in self.group.keys] + [a.path for a in self.aggregates if a.path]
        raw = run_sql(
            query.store,
            query.spec,
            lambda sql: sql.grouped(
                query.spec, self.group.keys, self.every_seconds, self.aggregates, self.max_refs
            ),
            extra_paths=paths,
        )
        return assemble(raw)

    def to_arrow(self) -> pa.Table:
        """Run: one row per group, as Arrow."""
        return to_arrow(self._run())

    def to_pandas(self) -> pd.DataFrame:
        """Run: one row per group, as a DataFrame."""
        return to_pandas(self._run())

    def __iter__(self) -> Iterator[dict[str, Any]]:
        columns = self._run()
        lists = {k: v if isinstance(v, list) else v.to_pylist() for k, v in columns.items()}
        for cells in zip(*lists.values(), strict=True):
            yield dict(zip(lists, cells, strict=True))

    def __len__(self) -> int:
        return sum(1 for _ in self)

    def drill(self, row: Mapping[str, Any]) -> Query:
        """The calls behind ``row`` (a row of this result: its ``call_ids``)."""
        if "call_ids" not in row:
            raise QueryError("this group-by kept no call ids (max_refs=0): nothing to drill into")
        if self.max_refs is not None and len(row["call_ids"]) < row["calls"]:
            raise QueryError(
                f"this row keeps {len(row['call_ids'])} of its {row['calls']} call ids "
                "(max_refs); group again without max_refs to drill into all of them"
            )
        return self.group.query.drill(row)
