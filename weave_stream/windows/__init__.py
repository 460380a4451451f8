"""Windowed aggregates: pure building blocks, no broker.

::

    topology YAML ──► spec.AggregateSpec ──► bucket.AggregatePlan (compiled once)
                                                  │
    rows (one per call) ──► state.WindowState.apply(batch)   per source partition
        dedupe.SeenIdentities   drop redelivered identities
        arithmetic              pane of each row; late after pane end + grace
        bucket.Bucket           partials per (aggregate, pane, group):
            aggregators         moments, categories, outcomes, cost
            sketch              DDSketch quantiles
            sampling            uniform sample of calls (bottom-k), worst-k
        ──► MutableMapping[str, bytes] (dict, or a changelog-backed table)
        ──► ClosedWindow results; expiry past retention
                                                  │
    snapshot.Snapshot per partition ──► merge_snapshots ──► query: windows, --by, --since
        ──► table.AggregateTable / DrillDown ──► plots, compare
    local.compute_aggregates: the same over a list of rows, in one go

A topology's ``aggregates:`` entries (plain dicts in :mod:`weave_stream.topology`) are
validated by :func:`parse_aggregates`. ``weave_stream.windows.plots`` and
``weave_stream.windows.compare`` import matplotlib: import them where drawing.
"""

from __future__ import annotations

from weave_stream.windows.aggregators import Aggregator, Categories, CostSum, Moments, Outcomes
from weave_stream.windows.arithmetic import WindowGeometry
from weave_stream.windows.bucket import AggregatePlan, Bucket
from weave_stream.windows.dedupe import SeenIdentities
from weave_stream.windows.local import aggregate_rows, compute_aggregates
from weave_stream.windows.query import aggregate_table, compose_windows, drill_down, sample_frame
from weave_stream.windows.rows import AggregateRow, CallRef
from weave_stream.windows.sampling import CallSample, WorstK
from weave_stream.windows.sketch import QuantileSketch
from weave_stream.windows.snapshot import Snapshot, merge_snapshots
from weave_stream.windows.spec import (
    AggregateSpec,
    DrillDownSpec,
    WindowSpec,
    parse_aggregates,
    parse_duration,
    required_fields,
)
from weave_stream.windows.state import BatchReport, ClosedWindow, WindowState
from weave_stream.windows.table import AggregateTable, DrillDown

__all__ = [
    "AggregatePlan",
    "AggregateRow",
    "AggregateSpec",
    "AggregateTable",
    "Aggregator",
    "BatchReport",
    "Bucket",
    "CallRef",
    "CallSample",
    "Categories",
    "ClosedWindow",
    "CostSum",
    "DrillDown",
    "DrillDownSpec",
    "Moments",
    "Outcomes",
    "QuantileSketch",
    "SeenIdentities",
    "Snapshot",
    "WindowGeometry",
    "WindowSpec",
    "WindowState",
    "WorstK",
    "aggregate_rows",
    "aggregate_table",
    "compose_windows",
    "compute_aggregates",
    "drill_down",
    "merge_snapshots",
    "parse_aggregates",
    "parse_duration",
    "required_fields",
    "sample_frame",
]
