"""The answers of ``weave-stream aggregates`` and ``drill``, shared with the workers' HTTP API.

Both take the plans and per-partition snapshots of a topology (from the changelog or
from a local run, :mod:`weave_stream.aggregates.source`) and return the objects of
:mod:`weave_stream.aggregates.table`; :func:`tables_document` is the one JSON shape the
CLI's ``--format json`` and ``GET /aggregates/{topology}`` both print, so the two
agree. :func:`plot_tables` draws each aggregate's picture.

>>> from weave_stream.topology.aggregates import parse_aggregates
>>> from weave_stream.windows import AggregatePlan, AggregateRow
>>> from weave_stream.aggregates import aggregate_rows
>>> plan = AggregatePlan(parse_aggregates([{"name": "q", "window": "1m", "group_by": ["c"],
...                                         "metrics": {"s": ["mean"]}}], "t")[0])
>>> rows = [AggregateRow("a", 5.0, {"c": "x"}, {"s": 1.0}),
...         AggregateRow("b", 7.0, {"c": "y"}, {"s": 3.0})]
>>> snapshots = {"q": [aggregate_rows([plan], rows)["q"]]}
>>> [table.frame["s.mean"].tolist() for table in query_tables([plan], snapshots, by=[])]
[[2.0]]
>>> drill([plan], snapshots, window_start=0, group={"c": "y"}).rows
1
"""

from __future__ import annotations

import dataclasses
from collections.abc import Iterable, Mapping, Sequence
from pathlib import Path
from typing import Any

import pandas as pd

from weave_stream.aggregates.compose import aggregate_table, drill_down, sample_frame
from weave_stream.aggregates.rows import field_of
from weave_stream.aggregates.table import AggregateTable, DrillDown
from weave_stream.columns.derive import DerivedValue
from weave_stream.errors import QueryError
from weave_stream.windows.bucket import AggregatePlan
from weave_stream.windows.snapshot import AggregatePartials

__all__ = [
    "UNITS",
    "choose_plan",
    "comparison_frame",
    "drill",
    "parse_by",
    "parse_group",
    "plot_tables",
    "query_tables",
    "tables_document",
]

# Units of keys the row builder knows; user columns carry their own (none by default).
UNITS = {"duration_seconds": "s"}

SnapshotsByAggregate = Mapping[str, AggregatePartials | Sequence[AggregatePartials]]


def choose_plan(plans: Sequence[AggregatePlan], aggregate: str | None) -> AggregatePlan:
    """The plan named ``aggregate`` (the only one when ``None``); a :class:`QueryError` else."""
    names = [plan.name for plan in plans]
    if aggregate is None:
        if len(plans) == 1:
            return plans[0]
        raise QueryError(
            f"this topology has several aggregates {names}; name one (--aggregate NAME)"
        )
    for plan in plans:
        if plan.name == aggregate:
            return plan
    raise QueryError(f"no aggregate {aggregate!r}; this topology has {names}")


def parse_by(values: Sequence[str] | None) -> list[str] | None:
    """``--by`` values (repeatable, comma-separated) as keys; ``None`` when not given.

    ``--by ""`` merges every group into one.

    >>> parse_by(["doc_class,attributes.model"]), parse_by([""]), parse_by(None)
    (['doc_class', 'attributes.model'], [], None)
    """
    if values is None:
        return None
    return [key.strip() for value in values for key in value.split(",") if key.strip()]


def parse_group(values: Sequence[str]) -> dict[str, str]:
    """``--group key=value`` pairs as a mapping (``key=`` matches a missing value).

    >>> parse_group(["doc_class=invoice", "attributes.model=gpt-4o"])
    {'doc_class': 'invoice', 'attributes.model': 'gpt-4o'}
    """
    group = {}
    for value in values:
        key, sign, text = value.partition("=")
        if not sign or not key.strip():
            raise QueryError(f"--group {value!r} is not key=value (e.g. --group doc_class=invoice)")
        group[key.strip()] = text
    return group


def _listed(snapshots: AggregatePartials | Sequence[AggregatePartials]) -> list[AggregatePartials]:
    return [snapshots] if isinstance(snapshots, AggregatePartials) else list(snapshots)


def query_tables(
    plans: Sequence[AggregatePlan],
    snapshots: SnapshotsByAggregate,
    *,
    aggregate: str | None = None,
    by: Sequence[str] | None = None,
    since: str | float | None = None,
) -> list[AggregateTable]:
    """One table per aggregate (or only ``aggregate``), merged over every partition.

    ``by`` re-groups on a subset of the group keys (an aggregate lacking one of them is
    an error when it was chosen, and skipped when every aggregate is shown).
    """
    chosen = [choose_plan(plans, aggregate)] if aggregate is not None else list(plans)
    tables = []
    for plan in chosen:
        if by is not None and aggregate is None and not set(by) <= set(plan.group_by):
            continue
        parts = _listed(snapshots.get(plan.name, []))
        tables.append(
            aggregate_table(
                plan, parts or [AggregatePartials(plan.name, sources=0)], by=by, since=since
            )
        )
    if not tables:
        raise QueryError(
            f"no aggregate is grouped by {list(by or [])}; their keys: "
            + "; ".join(f"{plan.name}: {list(plan.group_by)}" for plan in plans)
        )
    return tables


def tables_document(topology: str, tables: Sequence[AggregateTable]) -> dict[str, Any]:
    """The JSON answer of a query: the topology and each aggregate's table with its notes."""
    return {"topology": topology, "aggregates": [table.to_dict() for table in tables]}


def drill(
    plans: Sequence[AggregatePlan],
    snapshots: SnapshotsByAggregate,
    *,
    window_start: Any,
    group: Mapping[str, str] | None = None,
    aggregate: str | None = None,
) -> DrillDown:
    """The sampled and worst calls of one window and group of one aggregate."""
    plan = choose_plan(plans, aggregate)
    parts = _listed(snapshots.get(plan.name, [])) or [AggregatePartials(plan.name, sources=0)]
    return drill_down(plan, parts, window_start=window_start, group=group)


def plot_tables(
    plans: Sequence[AggregatePlan],
    snapshots: SnapshotsByAggregate,
    tables: Sequence[AggregateTable],
    path: Path,
    *,
    since: str | float | None = None,
) -> list[Path]:
    """Write each table's picture: ``path`` for one aggregate, ``<stem>.<aggregate><suffix>`` else.

    The score panel shows the first column with a mean; the scatter the first two
    numeric columns of the sampled calls (with error bars across trials).
    """
    from weave_stream.aggregates.plots import plot_aggregate  # matplotlib: only when drawing

    by_name = {plan.name: plan for plan in plans}
    written = []
    for table in tables:
        plan = by_name[table.aggregate]
        scored = [c for c, asked in plan.spec.metrics.items() if "mean" in asked]
        if not scored:
            raise QueryError(
                f"aggregate {plan.name!r} has no column with a mean to plot; add 'mean' and "
                "'ci95' to a numeric column's metrics"
            )
        numeric = [c for c in plan.spec.metrics if plan.spec.numeric(c)]
        parts = _listed(snapshots.get(plan.name, [])) or [AggregatePartials(plan.name, sources=0)]
        samples = sample_frame(plan, parts, since=since)
        scatter = (numeric[0], numeric[1]) if len(numeric) >= 2 else None
        by = table.group_keys[0] if table.group_keys else None
        if by is not None and by in samples:
            # A call without the key (its op failed) is its own class in the legend.
            samples[by] = samples[by].map(lambda v: "(none)" if v is None or v != v else str(v))
        if table.group_keys:
            # Missing keys (an op failed) read "(none)" in every panel, not "nan".
            frame = table.frame.copy()
            for key in table.group_keys:
                frame[key] = frame[key].map(lambda v: "(none)" if v is None or v != v else v)
            table = dataclasses.replace(table, frame=frame)
        target = (
            path if len(tables) == 1 else path.with_name(f"{path.stem}.{plan.name}{path.suffix}")
        )
        written.append(
            plot_aggregate(
                table,
                target,
                score=scored[0],
                samples=samples,
                scatter=scatter,
                scatter_by=by if by in samples else None,
                units=UNITS,
            )
        )
    return written


def comparison_frame(
    values: Iterable[DerivedValue],
    keys: Sequence[str],
    *,
    by: str | None = None,
    by_refs: bool = False,
) -> pd.DataFrame:
    """One row per call and trial with each key's value: what ``weave-stream compare`` tests.

    A key is a column (its primary value: a judge's score) or a field inside one
    (``doc_class_v1.confidence``); ``by`` is a column to group on (its label), read from
    the nearest trial (``"(none)"`` when it has no value). With ``by_refs`` each op ref
    of the (single) key gets its own rows, with ``<key>.op_ref``.

    >>> from datetime import UTC, datetime
    >>> at = datetime(2026, 11, 26, tzinfo=UTC)
    >>> def v(call, column, value, ref="r:1"):
    ...     return DerivedValue(call_id=call, topology="t", column=column, op_ref=ref,
    ...                         value=value, computed_at=at)
    >>> frame = comparison_frame([v("c1", "a", {"label": "x", "confidence": 0.5}),
    ...                           v("c1", "b", {"score": 0.7})], ["a.confidence", "b"], by="a")
    >>> frame.to_dict("records")
    [{'call_id': 'c1', 'trial': 0, 'a': 'x', 'a.confidence': 0.5, 'b': 0.7}]
    """
    heads = {key: key.partition(".") for key in keys}
    wanted = {head for head, _, _ in heads.values()} | ({by} if by else set())
    cells: dict[tuple[str, int, str], dict[str, DerivedValue]] = {}
    nearest: dict[str, dict[int, DerivedValue]] = {}
    for value in values:
        if value.column not in wanted:
            continue
        if by is not None and value.column == by:
            nearest.setdefault(value.call_id, {}).setdefault(value.trial, value)
        ref = value.op_ref if by_refs and value.column != by else ""
        cells.setdefault((value.call_id, value.trial, ref), {})[value.column] = value
    records = []
    for (call_id, trial, ref), columns in cells.items():
        if by_refs and not ref:
            continue  # the grouping column alone
        record: dict[str, Any] = {"call_id": call_id, "trial": trial}
        if by is not None:
            trials = nearest.get(call_id, {})
            grouping = trials.get(trial) or (trials[max(trials)] if trials else None)
            ok = grouping is not None and grouping.error is None
            label = field_of(grouping.value, "") if ok and grouping else None
            record[by] = "(none)" if label is None else label  # no class: its own group
        for key, (head, _, path) in heads.items():
            derived = columns.get(head)
            ok = derived is not None and derived.error is None
            record[key] = field_of(derived.value, path) if ok and derived else None
        if by_refs:
            record[f"{keys[0]}.op_ref"] = ref
        if any(record[key] is not None for key in keys):
            records.append(record)
    return pd.DataFrame.from_records(records)
