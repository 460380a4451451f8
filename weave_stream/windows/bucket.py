"""A bucket (the partials of one pane and group) and the compiled plan that fills it.

:class:`AggregatePlan` turns an :class:`Aggregate` into plain aggregators once;
pydantic stays off the hot path. :meth:`AggregatePlan.update` folds the rows of one
micro-batch that fall in the same pane and group into their bucket in one go: per
column it gathers the values once, then each partial takes the whole list.

A bucket encodes to compact JSON with partials keyed by ``column:kind``, so state
written under an older version of a topology still decodes when metrics are added
or removed (a partial it lacks starts empty, one no longer asked for is dropped).

>>> from weave_stream.topology.aggregates import parse_aggregates
>>> from weave_stream.windows.rows import AggregateRow
>>> spec = parse_aggregates([{"name": "q", "window": "1m", "group_by": ["doc_class"],
...                           "metrics": {"score": ["count", "mean", "p50"]}}], "demo")[0]
>>> plan = AggregatePlan(spec)
>>> bucket = plan.new_bucket()
>>> plan.update(bucket, [AggregateRow(f"c{i}", 0.0, values={"score": i}) for i in range(5)],
...             ("invoice",))
>>> figures = plan.figures(plan.decode(plan.encode(bucket)))
>>> figures["rows"], figures["score.mean"], figures["score.count"]
(5, 2.0, 5)
"""

from __future__ import annotations

import math
import numbers
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from weave_stream.topology.aggregates import Aggregate, quantile_of
from weave_stream.windows.aggregators import Categories, CostSum, Moments, Outcomes
from weave_stream.windows.arithmetic import WindowGeometry
from weave_stream.windows.rows import AggregateRow, Entry, entry_of
from weave_stream.windows.sampling import CallSample, WorstK
from weave_stream.windows.sketch import QuantileSketch

__all__ = ["AggregatePlan", "Bucket", "MetricPartials"]

_MOMENT_FIGURES = {
    "count": ("count",),
    "sum": ("sum",),
    "mean": ("mean",),
    "std": ("std",),
    "ci95": ("ci95_low", "ci95_high"),
    "min": ("min",),
    "max": ("max",),
}


class Bucket:
    """Partials of one (aggregate, pane or window, group): rows seen, per-column states, samples."""

    __slots__ = ("partials", "rows", "sample", "worst")

    def __init__(self, rows: int, partials: dict[str, Any], sample: Any, worst: Any) -> None:
        self.rows = rows
        self.partials = partials
        self.sample = sample
        self.worst = worst


@dataclass(frozen=True)
class MetricPartials:
    """Which partials one metric column keeps, and under which keys."""

    name: str
    numeric: bool
    moments: str | None
    sketch: str | None
    categories: str | None
    cost: str | None
    outcomes: str


class AggregatePlan:
    """An :class:`Aggregate` compiled into aggregators (build once per topology)."""

    def __init__(self, spec: Aggregate) -> None:
        self.spec = spec
        self.name = spec.name
        self.geometry = WindowGeometry.of(spec)
        self.group_by = spec.group_by
        self.metric_columns = tuple(spec.metrics)
        self.moments = Moments()
        self.categories = Categories(spec.max_categories)
        self.outcomes = Outcomes()
        self.costs = CostSum()
        self.sketches: dict[str, QuantileSketch] = {}
        self.aggregators: dict[str, Any] = {}
        self.columns = tuple(self._plan_column(spec, column) for column in spec.metrics)
        self._group: Sequence[Any] = ()
        drill = spec.drill_down
        self.sampler: CallSample[AggregateRow] | None = None
        if drill.sample_size:
            self.sampler = CallSample(drill.sample_size, _call_id, self._entry)
        self.worst: WorstK[AggregateRow] | None = None
        if drill.score is not None and drill.worst_k:
            score_column = drill.score
            self.worst = WorstK(
                drill.worst_k, drill.direction, lambda r: _score(r, score_column), self._entry
            )

    def _plan_column(self, spec: Aggregate, column: str) -> MetricPartials:
        names = spec.metrics[column]
        numeric = spec.numeric(column)
        moments = sketch = categories = cost = None
        if any(name in _MOMENT_FIGURES for name in names):
            moments = f"{column}:m"
            self.aggregators[moments] = self.moments
        quantiles = [name for name in names if quantile_of(name) is not None]
        if quantiles:
            sketch = f"{column}:q@{spec.relative_accuracy}"
            self.sketches[column] = QuantileSketch(spec.relative_accuracy, quantiles)
            self.aggregators[sketch] = self.sketches[column]
        if "counts" in names:
            categories = f"{column}:c"
            self.aggregators[categories] = self.categories
        if "cost_sum" in names:
            cost = f"{column}:$"
            self.aggregators[cost] = self.costs
        outcomes = f"{column}:o"
        self.aggregators[outcomes] = self.outcomes
        return MetricPartials(column, numeric, moments, sketch, categories, cost, outcomes)

    def _entry(self, row: AggregateRow) -> Entry:
        return entry_of(row, self._group, self.metric_columns)

    def new_bucket(self) -> Bucket:
        """An empty bucket with every partial this plan keeps."""
        partials = {key: agg.initialize() for key, agg in self.aggregators.items()}
        sample = self.sampler.initialize() if self.sampler else None
        worst = self.worst.initialize() if self.worst else None
        return Bucket(0, partials, sample, worst)

    def update(self, bucket: Bucket, rows: Sequence[AggregateRow], group: Sequence[Any]) -> None:
        """Fold ``rows`` (all of one pane and ``group``) into ``bucket``."""
        bucket.rows += len(rows)
        partials = bucket.partials
        for column in self.columns:
            name = column.name
            raw: list[Any] = []
            errors = 0
            for row in rows:
                if row.errors and name in row.errors:
                    errors += 1
                else:
                    value = row.values.get(name)
                    if value is not None:
                        raw.append(value)
            invalid = 0
            if column.numeric:
                numbers_, invalid = _numbers(raw)
                if column.moments:
                    self.moments.add(partials[column.moments], numbers_)
                if column.sketch:
                    self.sketches[name].add(partials[column.sketch], numbers_)
            if column.categories:
                self.categories.add(partials[column.categories], raw)
            if column.cost:
                spent = [c for row in rows if (c := row.costs.get(name)) is not None]
                self.costs.add(partials[column.cost], spent)
            self.outcomes.add(partials[column.outcomes], (len(raw) + errors, errors, invalid))
        self._group = group
        if self.sampler is not None:
            bucket.sample = self.sampler.add(bucket.sample, rows)
        if self.worst is not None:
            bucket.worst = self.worst.add(bucket.worst, rows)

    def merge(self, bucket: Bucket, other: Bucket) -> Bucket:
        """Fold ``other`` into ``bucket`` (``other`` is left as it was); returns ``bucket``."""
        bucket.rows += other.rows
        for key, aggregator in self.aggregators.items():
            bucket.partials[key] = aggregator.merge(bucket.partials[key], other.partials[key])
        if self.sampler is not None:
            bucket.sample = self.sampler.merge(bucket.sample, other.sample)
        if self.worst is not None:
            bucket.worst = self.worst.merge(bucket.worst, other.worst)
        return bucket

    def figures(self, bucket: Bucket) -> dict[str, Any]:
        """Every metric the spec asks for, flat: ``rows``, ``score.mean``, ``label.counts.x``..."""
        out: dict[str, Any] = {"rows": bucket.rows}
        partials = bucket.partials
        for column in self.columns:
            name, asked = column.name, self.spec.metrics[column.name]
            if column.moments:
                moments = self.moments.result(partials[column.moments])
                for metric in asked:
                    for figure in _MOMENT_FIGURES.get(metric, ()):
                        out[f"{name}.{figure}"] = moments[figure]
            if column.sketch:
                out.update(
                    {
                        f"{name}.{k}": v
                        for k, v in self.sketches[name].result(partials[column.sketch]).items()
                        if k != "collapsed"
                    }
                )
            if column.categories:
                for label, count in self.categories.result(partials[column.categories]).items():
                    out[f"{name}.counts.{label}"] = count
            if column.cost:
                out[f"{name}.cost_sum"] = self.costs.result(partials[column.cost])["cost_sum"]
            outcomes = self.outcomes.result(partials[column.outcomes])
            if "error_rate" in asked:
                out[f"{name}.errors"] = outcomes["errors"]
                out[f"{name}.error_rate"] = outcomes["error_rate"]
            if outcomes["invalid"]:
                out[f"{name}.invalid"] = outcomes["invalid"]
        return out

    def encode(self, bucket: Bucket) -> list[Any]:
        """The bucket as compact JSON-ready data."""
        partials = {
            key: self.aggregators[key].encode(state) for key, state in bucket.partials.items()
        }
        return [bucket.rows, partials, bucket.sample, bucket.worst]

    def decode(self, data: Sequence[Any]) -> Bucket:
        """A bucket back from :meth:`encode` (possibly written under an older spec)."""
        rows, encoded, sample, worst = data
        bucket = self.new_bucket()
        bucket.rows = int(rows)
        for key, state in encoded.items():
            if key in self.aggregators:
                bucket.partials[key] = self.aggregators[key].decode(state)
        if self.sampler is not None and sample is not None:
            bucket.sample = self.sampler.decode(sample)
        if self.worst is not None and worst is not None:
            bucket.worst = self.worst.decode(worst)
        return bucket


def _numbers(raw: list[Any]) -> tuple[list[float], int]:
    """The finite numbers of ``raw`` (bools as 0/1) and how many values were not numbers."""
    found: list[float] = []
    invalid = 0
    for value in raw:
        kind = value.__class__
        if kind is float:
            if value - value == 0.0:  # false for inf and nan
                found.append(value)
            else:
                invalid += 1
        elif kind is int:
            found.append(value)
        elif isinstance(value, numbers.Real) and math.isfinite(value):
            found.append(float(value))
        else:
            invalid += 1
    return found, invalid


def _call_id(row: AggregateRow) -> str:
    return row.call_id


def _score(row: AggregateRow, column: str) -> float | None:
    value = row.values.get(column)
    if value is None or (row.errors and column in row.errors):
        return None
    if value.__class__ is float or value.__class__ is int:
        return value if value - value == 0 else None
    if isinstance(value, numbers.Real) and math.isfinite(value):
        return float(value)
    return None
