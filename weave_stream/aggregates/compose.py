"""Merged partials as tables: windows from panes, re-grouping, ``--since``, drill-down.

Every function takes the snapshots of one aggregate from any number of partitions
and workers, merges them (:func:`~weave_stream.windows.snapshot.merge_partials`),
composes each window from its panes and, with ``by``, merges the groups that agree
on the chosen keys -- all with the mergeable partials, so a re-grouped mean, standard
deviation or quantile is the one over the underlying calls, not an average of
averages.

>>> from weave_stream.aggregates.in_process import aggregate_rows
>>> from weave_stream.windows.rows import AggregateRow
>>> from weave_stream.topology.aggregates import parse_aggregates
>>> spec = parse_aggregates([{"name": "q", "window": {"size": "2m", "step": "1m"},
...     "group_by": ["doc_class"], "metrics": {"s": ["count", "mean"]}}], "demo")[0]
>>> rows = [AggregateRow(f"c{i}", 30.0 * i, {"doc_class": "ab"[i % 2]}, {"s": float(i)})
...         for i in range(8)]
>>> snapshots = aggregate_rows([spec], rows)
>>> table = aggregate_table(spec, snapshots["q"], by=())
>>> table.frame[["rows", "s.count", "s.mean"]].to_dict("records")[:2]
[{'rows': 2, 's.count': 2, 's.mean': 0.5}, {'rows': 4, 's.count': 4, 's.mean': 1.5}]
>>> drill_down(spec, snapshots["q"], window_start=60, group={"doc_class": "b"}).rows
2
"""

from __future__ import annotations

import contextlib
import math
from collections.abc import Iterable, Mapping, Sequence
from datetime import UTC, datetime
from typing import Any

import pandas as pd

from weave_stream.aggregates.table import AggregateTable, DrillDown
from weave_stream.durations import parse_duration
from weave_stream.errors import QueryError, TimestampError
from weave_stream.ingest.call import parse_timestamp
from weave_stream.topology.aggregates import Aggregate
from weave_stream.windows.bucket import AggregatePlan, Bucket
from weave_stream.windows.rows import CallRef
from weave_stream.windows.snapshot import AggregatePartials, merge_partials

__all__ = ["aggregate_table", "compose_windows", "drill_down", "sample_frame"]

Snapshots = AggregatePartials | Iterable[AggregatePartials]


def _plan(spec: Aggregate | AggregatePlan) -> AggregatePlan:
    return spec if isinstance(spec, AggregatePlan) else AggregatePlan(spec)


def _merged(plan: AggregatePlan, snapshots: Snapshots) -> AggregatePartials:
    items = [snapshots] if isinstance(snapshots, AggregatePartials) else list(snapshots)
    return items[0] if len(items) == 1 else merge_partials(plan, items)


def _projection(plan: AggregatePlan, by: Sequence[str] | None) -> tuple[tuple[str, ...], list[int]]:
    keys = plan.group_by if by is None else tuple(by)
    unknown = [key for key in keys if key not in plan.group_by]
    if unknown:
        raise QueryError(
            f"aggregate {plan.name!r} is not grouped by {unknown}; choose --by among "
            f"{list(plan.group_by) or '(no keys: it has one group)'}"
        )
    return keys, [plan.group_by.index(key) for key in keys]


def _cutoff(snapshot: AggregatePartials, since: str | float | None, now: Any) -> float:
    if since is None:
        return -math.inf
    reference = _seconds(now) if now is not None else snapshot.watermark
    if reference is None:
        return -math.inf
    return reference - parse_duration(since)


def compose_windows(
    spec: Aggregate | AggregatePlan,
    snapshots: Snapshots,
    *,
    by: Sequence[str] | None = None,
    since: str | float | None = None,
    now: Any = None,
) -> dict[tuple[int, tuple[Any, ...]], Bucket]:
    """Window partials keyed by ``(window_start, group on the by-keys)``.

    ``since`` (``"6h"`` or seconds) keeps windows ending after ``now - since``; ``now``
    defaults to the newest watermark among the snapshots (epoch seconds, ISO text or
    a datetime otherwise).
    """
    plan = _plan(spec)
    snapshot = _merged(plan, snapshots)
    _, positions = _projection(plan, by)
    geometry = plan.geometry
    cutoff = _cutoff(snapshot, since, now)
    windows: dict[tuple[int, tuple[Any, ...]], Bucket] = {}
    for (pane, group), bucket in snapshot.panes.items():
        projected = tuple(group[i] for i in positions)
        for start in geometry.windows_of_pane(pane):
            if start + geometry.size <= cutoff:
                continue
            target = windows.get((start, projected))
            if target is None:
                target = windows[(start, projected)] = plan.new_bucket()
            plan.merge(target, bucket)
    return windows


def aggregate_table(
    spec: Aggregate | AggregatePlan,
    snapshots: Snapshots,
    *,
    by: Sequence[str] | None = None,
    since: str | float | None = None,
    now: Any = None,
) -> AggregateTable:
    """One row per (window, group): ``window_start``, ``window_end``, the group keys, ``rows``
    and every metric (``score.mean``, ``score.ci95_low``, ``label.counts.x``...)."""
    plan = _plan(spec)
    snapshot = _merged(plan, snapshots)
    keys, _ = _projection(plan, by)
    windows = compose_windows(plan, snapshot, by=by, since=since, now=now)
    records = []
    for (start, group), bucket in windows.items():
        record: dict[str, Any] = {"window_start": start, "window_end": start + plan.geometry.size}
        record.update(zip(keys, group, strict=True))
        record.update(plan.figures(bucket))
        records.append(record)
    frame = pd.DataFrame.from_records(records, columns=_columns(keys, records))
    if not frame.empty:
        frame = frame.sort_values(["window_start", *keys], na_position="first", kind="stable")
        frame = frame.reset_index(drop=True)
        counts = [c for c in frame.columns if ".counts." in c]
        frame[counts] = frame[counts].fillna(0).astype("int64")
    for column in ("window_start", "window_end"):
        frame[column] = pd.to_datetime(frame[column], unit="s", utc=True)
    return AggregateTable(
        plan.name,
        frame,
        keys,
        snapshot.late_rows,
        snapshot.duplicates,
        snapshot.watermark,
        plan.spec.relative_accuracy,
        snapshot.sources,
    )


def _columns(keys: Sequence[str], records: list[dict[str, Any]]) -> list[str]:
    columns = ["window_start", "window_end", *keys, "rows"]
    for record in records:
        columns.extend(c for c in record if c not in columns)
    return columns


def drill_down(
    spec: Aggregate | AggregatePlan,
    snapshots: Snapshots,
    *,
    window_start: float | str | datetime,
    group: Mapping[str, Any] | None = None,
) -> DrillDown:
    """The sampled and the worst calls of one window, for the groups matching ``group``.

    ``group`` maps some group-by keys to values (text, as typed on the command line:
    ``""`` or ``null`` match a missing value); keys left out are merged over.
    """
    plan = _plan(spec)
    snapshot = _merged(plan, snapshots)
    start = _window_start(plan, window_start)
    wanted = dict(group or {})
    _, positions = _projection(plan, list(wanted))
    checks = list(zip(positions, (str(v) for v in wanted.values()), strict=True))
    merged = plan.new_bucket()
    for pane in plan.geometry.panes_of_window(start):
        for (pane_start, values), bucket in snapshot.panes.items():
            if pane_start == pane and all(_matches(values[i], text) for i, text in checks):
                plan.merge(merged, bucket)
    entries = plan.sampler.result(merged.sample) if plan.sampler else []
    sample = [CallRef.from_entry(entry) for entry in entries]
    sample.sort(key=lambda ref: (ref.event_time, ref.call_id))
    worst = [CallRef.from_entry(entry, score) for score, entry in (merged.worst or [])]
    drill = plan.spec.drill_down
    return DrillDown(
        plan.name,
        start,
        start + plan.geometry.size,
        wanted,
        merged.rows,
        sample,
        worst,
        drill.score,
        drill.direction,
        drill.worst_reason,
    )


def _window_start(plan: AggregatePlan, value: float | str | datetime) -> int:
    seconds = _seconds(value)
    step = plan.geometry.step
    if not plan.geometry.is_window_start(seconds):
        below = datetime.fromtimestamp(int(seconds // step) * step, tz=UTC)
        raise QueryError(
            f"{value!r} is not a window start of aggregate {plan.name!r}: its windows start "
            f"every {step}s on the epoch; try {below.isoformat()}"
        )
    return int(seconds)


def _seconds(value: Any) -> float:
    """Epoch seconds from a number (or its text), ISO-8601 text or a datetime (naive: UTC).

    >>> _seconds("1795662000"), _seconds("2026-11-26T03:00:00Z")
    (1795662000.0, 1795662000.0)
    """
    if isinstance(value, str):
        with contextlib.suppress(ValueError):
            value = float(value)
    if isinstance(value, int | float) and not isinstance(value, bool) and math.isfinite(value):
        return float(value)
    try:
        return parse_timestamp(value).timestamp()
    except TimestampError as exc:
        raise QueryError(f"window start {value!r}: {exc}") from None


def _matches(value: Any, text: str) -> bool:
    if value is None:
        return text.lower() in ("", "null", "none")
    return str(value) == text


def sample_frame(
    spec: Aggregate | AggregatePlan,
    snapshots: Snapshots,
    *,
    since: str | float | None = None,
    now: Any = None,
) -> pd.DataFrame:
    """Every sampled call, one row per call and trial, with its group keys and column values.

    Each pane and group contributes its own uniform sample of calls (with all their
    trials): a sample stratified by time and group, for plots and comparisons, not
    for counting.
    """
    plan = _plan(spec)
    snapshot = _merged(plan, snapshots)
    cutoff = _cutoff(snapshot, since, now)
    records = []
    for (pane, _), bucket in sorted(snapshot.panes.items(), key=lambda item: item[0][0]):
        if pane + plan.geometry.step <= cutoff or plan.sampler is None:
            continue
        for entry in plan.sampler.result(bucket.sample):
            ref = CallRef.from_entry(entry)
            record: dict[str, Any] = {
                "call_id": ref.call_id,
                "trace_id": ref.trace_id,
                "started_at": ref.event_time,
                "trial": ref.trial,
            }
            record.update(zip(plan.group_by, ref.group, strict=False))
            record.update(ref.values)
            record.update({f"{name}.op_ref": op_ref for name, op_ref in ref.op_refs.items()})
            records.append(record)
    frame = pd.DataFrame.from_records(records)
    if not frame.empty:
        frame["started_at"] = pd.to_datetime(frame["started_at"], unit="s", utc=True)
    return frame
