"""The panels of a topology's Grafana dashboard (see :mod:`weave_stream.dashboard.build`).

Each function yields Grafana panel dicts (``gridPos`` is set by the layout) whose
queries name metrics through the metric objects of :mod:`weave_stream.metrics`.
"""

from __future__ import annotations

import re
from collections.abc import Iterator, Sequence
from typing import Any

from prometheus_client.metrics import MetricWrapperBase

from weave_stream.metrics import (
    AGGREGATE_WINDOW_MEAN,
    AGGREGATE_WINDOW_ROWS,
    ALERT_DELIVERY_FAILURES,
    ALERTS_DELIVERED,
    ALERTS_GROUPED,
    ALERTS_PENDING,
    ALERTS_RAISED,
    COLUMN_INFO,
    CONSUMER_LAG,
    DEAD_LETTERS,
    DERIVED_COST_USD,
    DERIVED_VALUES,
    DERIVED_VALUES_WRITTEN,
    NOVELTY_DISTANCE,
    OP_BATCH_SECONDS,
    TOPOLOGY_BATCH_SECONDS,
    TOPOLOGY_CALLS,
)
from weave_stream.topology.aggregates import Aggregate
from weave_stream.topology.spec import Topology

__all__ = [
    "DATASOURCE",
    "aggregate_panels",
    "column_panels",
    "drift_panels",
    "group_variable",
    "pipeline_panels",
    "series",
    "target",
    "timeseries",
    "window_rows",
]

DATASOURCE = {"type": "prometheus", "uid": "${datasource}"}
_RATE = "$__rate_interval"
_BAND_RANGE = "[6h:5m]"


def series(metric: MetricWrapperBase, suffix: str = "") -> str:
    """The sample name a metric object exports (``_total`` for counters, plus ``suffix``).

    >>> series(DEAD_LETTERS), series(OP_BATCH_SECONDS, "_bucket")
    ('weave_stream_dead_letters_total', 'weave_stream_op_batch_seconds_bucket')
    """
    family = next(iter(metric.describe()))
    return family.name + ("_total" if family.type == "counter" else "") + suffix


def target(expr: str, legend: str = "", ref: str = "A") -> dict[str, Any]:
    """A Prometheus query of a panel, with its legend."""
    return {"datasource": DATASOURCE, "expr": expr, "legendFormat": legend, "refId": ref}


def timeseries(
    title: str,
    targets: Sequence[dict[str, Any]],
    unit: str = "short",
    description: str = "",
    legend: str = "bottom",
    **custom: Any,
) -> dict[str, Any]:
    """A Grafana time-series panel of ``targets`` (their refIds A, B, ... in order);
    ``custom``: the field config's custom options (stacking, fillOpacity, ...)."""
    refs = iter("ABCDEFGHIJKLMNOP")
    return {
        "type": "timeseries",
        "title": title,
        "description": description,
        "datasource": DATASOURCE,
        "targets": [{**target, "refId": next(refs)} for target in targets],
        "fieldConfig": {"defaults": {"unit": unit, "custom": custom}, "overrides": []},
        "options": {"legend": {"displayMode": "list", "placement": legend}},
    }


def window_rows(topology: str, aggregate: str) -> str:
    """The selector of an aggregate's rows-per-group gauges (one series per worker)."""
    return f'{series(AGGREGATE_WINDOW_ROWS)}{{topology="{topology}", aggregate="{aggregate}"}}'


def group_variable(aggregate: Aggregate) -> str:
    """The name of the template variable listing an aggregate's groups (classes)."""
    return "group_" + re.sub(r"\W", "_", aggregate.name)


def _weighted_mean(name: str, aggregate: str, column: str, group: str = "") -> str:
    """Rows-weighted mean of a column per group over the workers' gauges."""
    selector = f'topology="{name}", aggregate="{aggregate}"' + (f", {group}" if group else "")
    mean = f'{series(AGGREGATE_WINDOW_MEAN)}{{{selector}, column="{column}"}}'
    rows = f"{series(AGGREGATE_WINDOW_ROWS)}{{{selector}}}"
    return (
        f"sum by (group) ({mean} * ignoring (column) group_left () {rows})"
        f" / sum by (group) ({rows})"
    )


def aggregate_panels(name: str, aggregate: Aggregate) -> Iterator[tuple[dict[str, Any], int]]:
    means = [column for column, asked in aggregate.metrics.items() if "mean" in asked]
    variable = group_variable(aggregate)
    for column in means:
        yield (
            timeseries(
                f"{column}: mean per class",
                [target(_weighted_mean(name, aggregate.name, column), "{{group}}")],
                description=f"Mean {column} of each class in the latest closed window of "
                f"{aggregate.name}, weighted over the workers.",
            ),
            12,
        )
    rows = window_rows(name, aggregate.name)
    counts = timeseries(
        "calls per class",
        [target(f"sum by (group) ({rows})", "{{group}}")],
        description="Rows (calls x trials) per class in the latest closed window of "
        f"{aggregate.name}.",
        drawStyle="bars",
        fillOpacity=60,
        stacking={"mode": "normal", "group": "A"},
    )
    yield counts, 12
    for column in means:
        yield _band_panel(name, aggregate, column, variable), 8


def _band_panel(name: str, aggregate: Aggregate, column: str, variable: str) -> dict[str, Any]:
    mean = _weighted_mean(name, aggregate.name, column, f'group=~"${variable}"')
    spread = f"2 * stddev_over_time(({mean}){_BAND_RANGE})"
    panel = timeseries(
        f"{column} of ${variable}",
        [
            target(mean, "mean"),
            target(f"{mean} + {spread}", "upper"),
            target(f"{mean} - {spread}", "lower"),
        ],
        description=f"Mean {column} of the class in the latest closed window, with a band of "
        "±2 standard deviations of its window means over the previous 6 hours.",
    )
    panel["repeat"] = variable
    panel["repeatDirection"] = "h"
    panel["maxPerRow"] = 3
    panel["fieldConfig"]["overrides"] = [
        {
            "matcher": {"id": "byName", "options": "upper"},
            "properties": [
                {"id": "custom.fillBelowTo", "value": "lower"},
                {"id": "custom.lineWidth", "value": 0},
                {"id": "custom.fillOpacity", "value": 20},
            ],
        },
        {
            "matcher": {"id": "byName", "options": "lower"},
            "properties": [{"id": "custom.lineWidth", "value": 0}],
        },
    ]
    return panel


def column_panels(topology: Topology) -> Iterator[dict[str, Any]]:
    name = topology.name
    values = f'{series(DERIVED_VALUES)}{{topology="{name}"'
    yield timeseries(
        "values per second by column and outcome",
        [target(f"sum by (column, outcome) (rate({values}}}[{_RATE}]))", "{{column}} {{outcome}}")],
        unit="ops",
    )
    errors = f'sum by (column) (rate({values}, outcome="error"}}[{_RATE}]))'
    made = f'sum by (column) (rate({values}, outcome=~"computed|cached|error"}}[{_RATE}]))'
    yield timeseries(
        "errors: share of values",
        [target(f"{errors} / {made}", "{{column}}")],
        unit="percentunit",
        description="Values that carry an error (op failed after its retries), per column.",
    )
    cached = f'sum by (column) (rate({values}, outcome="cached"}}[{_RATE}]))'
    looked_up = f'sum by (column) (rate({values}, outcome=~"computed|cached"}}[{_RATE}]))'
    yield timeseries(
        "result cache hits",
        [target(f"{cached} / {looked_up}", "{{column}}")],
        unit="percentunit",
    )
    ops = "|".join(sorted({column.op.name for column in topology.compiled}))
    buckets = series(OP_BATCH_SECONDS, "_bucket")
    latency = f'sum by (le, op) (rate({buckets}{{op=~"{ops}"}}[{_RATE}]))'
    yield timeseries(
        "op latency per batch (p50, p95)",
        [
            target(f"histogram_quantile(0.5, {latency})", "{{op}} p50"),
            target(f"histogram_quantile(0.95, {latency})", "{{op}} p95"),
        ],
        unit="s",
        description="Time of one attempt of an op on one batch, over every topology using it.",
    )
    cost = f'{series(DERIVED_COST_USD)}{{topology="{name}"}}'
    yield timeseries(
        "cost per hour by column",
        [target(f"sum by (column) (increase({cost}[1h]))", "{{column}}")],
        unit="currencyUSD",
        description="Dollars spent computing values (cache hits cost nothing).",
    )
    yield timeseries(
        "column ops",
        [target(f'{series(COLUMN_INFO)}{{topology="{name}"}}', "{{column}}: {{op_ref}}")],
        description="The op ref computing each column (a new ref after an op changes).",
    )


def drift_panels(topology: Topology) -> Iterator[dict[str, Any]]:
    name = topology.name
    monitors = ", ".join(m.name for m in topology.monitors) or "none yet"
    buckets = f'{series(NOVELTY_DISTANCE, "_bucket")}{{topology="{name}"}}'
    novelty = f"sum by (le, monitor) (rate({buckets}[{_RATE}]))"
    yield timeseries(
        "novelty: distance to the nearest known example",
        [
            target(f"histogram_quantile({q}, {novelty})", f"{{{{monitor}}}} p{round(q * 100)}")
            for q in (0.5, 0.9, 0.99)
        ],
        description=f"Monitors: {monitors}.",
    )
    raised = f'{series(ALERTS_RAISED)}{{topology="{name}"}}'
    grouped = f'{series(ALERTS_GROUPED)}{{topology="{name}"}}'
    yield timeseries(
        "drift alerts per hour",
        [
            target(f"sum by (kind) (increase({raised}[1h]))", "raised {{kind}}"),
            target(f"sum by (kind) (increase({grouped}[1h]))", "grouped {{kind}}"),
        ],
    )
    yield timeseries(
        "alert delivery (all targets)",
        [
            target(
                f"sum by (target) (rate({series(ALERTS_DELIVERED)}[{_RATE}]))",
                "delivered {{target}}",
            ),
            target(
                f"sum by (target, reason) (rate({series(ALERT_DELIVERY_FAILURES)}[{_RATE}]))",
                "failed {{target}} {{reason}}",
            ),
            target(f"sum by (target) ({series(ALERTS_PENDING)})", "pending {{target}}"),
        ],
        unit="short",
    )


def pipeline_panels(name: str) -> Iterator[dict[str, Any]]:
    lag = series(CONSUMER_LAG)
    yield timeseries(
        "consumer lag (records)",
        [
            target(
                f'sum by (topic) ({lag}{{group="weave-stream.$prefix.topology.{name}"}})',
                f"{name} on {{{{topic}}}}",
            ),
            target(f'sum by (topic) ({lag}{{group="weave-stream.$prefix"}})', "ingest"),
        ],
    )
    calls = f'{series(TOPOLOGY_CALLS)}{{topology="{name}"}}'
    written = f'{series(DERIVED_VALUES_WRITTEN)}{{topology="{name}"}}'
    yield timeseries(
        "calls read and values written per second",
        [
            target(f"sum(rate({calls}[{_RATE}]))", "calls read"),
            target(f"sum by (column) (rate({written}[{_RATE}]))", "written {{column}}"),
        ],
        unit="ops",
    )
    batch = f'{series(TOPOLOGY_BATCH_SECONDS, "_bucket")}{{topology="{name}"}}'
    yield timeseries(
        "micro-batch time (p50, p95)",
        [
            target(f"histogram_quantile({q}, sum by (le) (rate({batch}[{_RATE}])))", f"p{p}")
            for q, p in ((0.5, 50), (0.95, 95))
        ],
        unit="s",
    )
    yield timeseries(
        "dead letters per second by reason (all calls)",
        [target(f"sum by (reason) (rate({series(DEAD_LETTERS)}[{_RATE}]))", "{{reason}}")],
        unit="ops",
    )
