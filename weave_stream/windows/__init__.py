"""Windows: pure building blocks of windowed aggregates (no broker, no queries, no plots).

::

    topology.aggregates.Aggregate ──► bucket.AggregatePlan (compiled once)
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
    snapshot.AggregatePartials per partition ──► merge_partials ──► weave_stream.aggregates

Reading partials back as tables, drill-down, comparisons and plots are the next stage,
:mod:`weave_stream.aggregates`.
"""

from __future__ import annotations

from weave_stream.windows.aggregators import Aggregator, Categories, CostSum, Moments, Outcomes
from weave_stream.windows.arithmetic import WindowGeometry
from weave_stream.windows.bucket import AggregatePlan, Bucket
from weave_stream.windows.dedupe import SeenIdentities
from weave_stream.windows.rows import AggregateRow, CallRef
from weave_stream.windows.sampling import CallSample, WorstK
from weave_stream.windows.sketch import QuantileSketch
from weave_stream.windows.snapshot import AggregatePartials, merge_partials
from weave_stream.windows.state import BatchReport, ClosedWindow, WindowState

__all__ = [
    "AggregatePartials",
    "AggregatePlan",
    "AggregateRow",
    "Aggregator",
    "BatchReport",
    "Bucket",
    "CallRef",
    "CallSample",
    "Categories",
    "ClosedWindow",
    "CostSum",
    "Moments",
    "Outcomes",
    "QuantileSketch",
    "SeenIdentities",
    "WindowGeometry",
    "WindowState",
    "WorstK",
    "merge_partials",
]
