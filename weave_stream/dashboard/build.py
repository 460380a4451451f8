"""A Grafana dashboard for one topology, generated from its spec and the worker's metrics.

What the topology declares decides the panels: per aggregate with a ``group_by``, the
mean of each ``mean`` column per class over time, one panel per class with a band
(repeated over a template variable), and the calls counted per class; per ``topics:``
entry, the topic mix over time (:mod:`weave_stream.dashboard.topic_panels`); per derived
column, values, errors, cache hits, op latency and cost; novelty and alerts of its
monitors; the consumer lag of its group. Every query names metrics through the metric
objects of :mod:`weave_stream.metrics`, so a renamed metric fails here, not silently
in Grafana (:mod:`weave_stream.dashboard.panels` builds the panels).

Windows are shared by the workers of a topology (each holds some partitions), so a
class's mean is the rows-weighted mean of the workers' gauges. The band around a
class's mean is its normal variation: ±2 standard deviations of that class's window
means over the previous 6 hours (a mean outside it moved more than usual).

>>> from weave_stream.topology.loader import topology_from_dict
>>> topology = topology_from_dict({"name": "demo", "columns": [
...     {"name": "words", "op": "classify", "params": {"labels": ["a", "b"]},
...      "args": {"text": "inputs.document"}}]})
>>> board = build_dashboard(topology)
>>> board["uid"], board["title"]
('weave-stream-demo', 'weave-stream: demo')
>>> [p["title"] for p in board["panels"] if p["type"] == "row"]
['Derived columns', 'Drift and alerts', 'Pipeline']
"""

from __future__ import annotations

import re
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from typing import Any

from weave_stream.dashboard.panels import (
    DATASOURCE,
    aggregate_panels,
    column_panels,
    drift_panels,
    group_variable,
    pipeline_panels,
    series,
    window_rows,
)
from weave_stream.dashboard.topic_panels import topic_panels
from weave_stream.metrics import WORKER_INFO
from weave_stream.topology.aggregates import Aggregate
from weave_stream.topology.spec import Topology

__all__ = ["build_dashboard", "dashboard_uid"]

_WIDTH = 24


def dashboard_uid(topology_name: str) -> str:
    """A stable Grafana uid for a topology's dashboard (at most 40 characters).

    >>> dashboard_uid("text_extract"), len(dashboard_uid("x" * 90))
    ('weave-stream-text_extract', 40)
    """
    uid = "weave-stream-" + re.sub(r"[^A-Za-z0-9_-]", "-", topology_name)
    return uid[:40]


@dataclass
class _Layout:
    """Panels placed left to right, top to bottom, on Grafana's 24-column grid."""

    panels: list[dict[str, Any]] = field(default_factory=list)
    x: int = 0
    y: int = 0
    row_height: int = 0

    def row(self, title: str) -> None:
        self._newline()
        self.panels.append(
            {"type": "row", "title": title, "collapsed": False, "panels": [], **self._place(24, 1)}
        )
        self._newline()

    def add(self, panel: dict[str, Any], width: int = 12, height: int = 8) -> None:
        if self.x + width > _WIDTH:
            self._newline()
        panel.update(self._place(width, height))
        self.panels.append(panel)
        self.x += width
        self.row_height = max(self.row_height, height)

    def _place(self, width: int, height: int) -> dict[str, Any]:
        self.row_height = max(self.row_height, height)
        position = {"x": self.x, "y": self.y, "w": width, "h": height}
        return {"id": len(self.panels) + 1, "gridPos": position}

    def _newline(self) -> None:
        self.y += self.row_height
        self.x, self.row_height = 0, 0


def build_dashboard(topology: Topology, default_prefix: str = "weave") -> dict[str, Any]:
    """The Grafana dashboard JSON (a dict) for ``topology``.

    ``default_prefix`` is the topic prefix selected when the dashboard opens (its
    ``prefix`` variable lists the prefixes the workers report).
    """
    name = topology.name
    aggregates = [a for a in topology.aggregates if a.group_by]
    layout = _Layout()
    for aggregate in aggregates:
        layout.row(f"By {', '.join(aggregate.group_by)} ({aggregate.name}, latest closed window)")
        for panel, width in aggregate_panels(name, aggregate):
            layout.add(panel, width)
    if topology.topics:
        layout.row("Topics")
        for panel in topic_panels(topology):
            layout.add(panel, width=8)
    layout.row("Derived columns")
    for panel in column_panels(topology):
        layout.add(panel)
    layout.row("Drift and alerts")
    for panel in drift_panels(topology):
        layout.add(panel)
    layout.row("Pipeline")
    for panel in pipeline_panels(name):
        layout.add(panel)
    return {
        "uid": dashboard_uid(name),
        "title": f"weave-stream: {name}",
        "description": topology.description.strip() or f"weave-stream topology {name}",
        "tags": ["weave-stream", f"topology:{name}"],
        "timezone": "utc",
        "schemaVersion": 39,
        "version": 1,
        "editable": True,
        "refresh": "30s",
        "time": {"from": "now-6h", "to": "now"},
        "templating": {"list": list(_variables(name, aggregates, default_prefix))},
        "annotations": {"list": []},
        "panels": layout.panels,
    }


def _variables(
    name: str, aggregates: Sequence[Aggregate], default_prefix: str
) -> Iterator[dict[str, Any]]:
    yield {
        "name": "datasource",
        "label": "Prometheus",
        "type": "datasource",
        "query": "prometheus",
        "current": {},
        "hide": 0,
    }
    prefix_query = f"label_values({series(WORKER_INFO)}, topic_prefix)"
    yield {
        "name": "prefix",
        "label": "topic prefix",
        "type": "query",
        "datasource": DATASOURCE,
        "query": {"query": prefix_query, "refId": "prefix"},
        "definition": prefix_query,
        "current": {"text": default_prefix, "value": default_prefix},
        "refresh": 2,
        "hide": 0,
    }
    for aggregate in aggregates:
        query = f"label_values({window_rows(name, aggregate.name)}, group)"
        yield {
            "name": group_variable(aggregate),
            "label": f"{aggregate.name}: {', '.join(aggregate.group_by)}",
            "type": "query",
            "datasource": DATASOURCE,
            "query": {"query": query, "refId": aggregate.name},
            "definition": query,
            "multi": True,
            "includeAll": True,
            "current": {"text": "All", "value": "$__all"},
            "refresh": 2,
            "hide": 0,
        }
