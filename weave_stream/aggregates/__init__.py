"""Aggregates: calls and derived values in, windowed tables, drill-down, comparisons out.

::

    calls + derived values ──► rows.RowBuilder ──► AggregateRow (weave_stream.windows)
    partials per partition (source: the stream's changelog; in_process: a list of rows)
        ──► compose: windows from panes, --by, --since ──► table.AggregateTable / DrillDown
        ──► queries: the answers of the CLI and the workers' HTTP API
        ──► gauges (Prometheus), compare (two columns or op refs), plots (PNG)

``weave_stream.aggregates.plots`` and ``weave_stream.aggregates.compare`` import
matplotlib and scipy: import them where drawing or testing.
"""

from __future__ import annotations

from weave_stream.aggregates.compose import (
    aggregate_table,
    compose_windows,
    drill_down,
    sample_frame,
)
from weave_stream.aggregates.in_process import aggregate_rows, compute_aggregates
from weave_stream.aggregates.rows import RowBuilder
from weave_stream.aggregates.table import AggregateTable, DrillDown

__all__ = [
    "AggregateTable",
    "DrillDown",
    "RowBuilder",
    "aggregate_rows",
    "aggregate_table",
    "compose_windows",
    "compute_aggregates",
    "drill_down",
    "sample_frame",
]
