"""Prometheus gauges of the latest closed window of each aggregate, with bounded labels.

When windows close (on event time, or on the wall clock when a partition goes idle),
a topology worker hands their final partials here. Per aggregate, the newest closed
window wins: its rows per group (``weave_stream_aggregate_window_rows``), the mean of
each numeric column asked for ``mean`` (``weave_stream_aggregate_window_mean``) and its
end (``weave_stream_aggregate_window_end_seconds``). The partitions of one worker close
a window one by one, so parts of the same window are merged as they come.

Label cardinality is bounded by ``max_groups``: the groups with the most rows keep
their own series, the rest are merged (with the mergeable partials, so the mean stays
exact) into ``group="_other"``. Series of groups absent from the newest window are
removed, so the gauges always describe one window.

>>> from weave_stream.topology.aggregates import parse_aggregates
>>> from weave_stream.windows import AggregatePlan, AggregateRow, WindowState
>>> plan = AggregatePlan(parse_aggregates([{"name": "q", "window": "1m", "grace": "0s",
...     "group_by": ["c"], "metrics": {"s": ["mean"]}}], "demo")[0])
>>> state = WindowState([plan], {})
>>> report = state.apply([AggregateRow(f"r{i}", float(i), {"c": "abc"[i % 3]}, {"s": float(i)})
...                       for i in range(6)] + [AggregateRow("late", 61.0, {"c": "a"})])
>>> gauges = WindowGauges("demo", [plan], max_groups=2)
>>> gauges.observe(report.closed)
{'q': 0}
>>> sorted(gauges.published["q"].items())
[('_other', (2, {'s': 3.5})), ('a', (2, {'s': 1.5})), ('b', (2, {'s': 2.5}))]
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterable, Sequence
from typing import Any

from weave_stream.metrics import AGGREGATE_WINDOW_END, AGGREGATE_WINDOW_MEAN, AGGREGATE_WINDOW_ROWS
from weave_stream.windows.bucket import AggregatePlan, Bucket
from weave_stream.windows.state import ClosedWindow

__all__ = ["OTHER_GROUP", "WindowGauges", "group_label"]

OTHER_GROUP = "_other"


def group_label(group: Sequence[Any]) -> str:
    """The ``group`` label of a group: its values joined by ``/`` (``all`` without keys).

    >>> group_label(("money", None)), group_label(())
    ('money/', 'all')
    """
    if not group:
        return "all"
    return "/".join("" if value is None else str(value) for value in group)


class WindowGauges:
    """The latest-closed-window gauges of one topology's aggregates."""

    def __init__(self, topology: str, plans: Iterable[AggregatePlan], max_groups: int) -> None:
        self.topology = topology
        self.plans = {plan.name: plan for plan in plans}
        self.max_groups = max_groups
        self._means = {
            name: [column for column, asked in plan.spec.metrics.items() if "mean" in asked]
            for name, plan in self.plans.items()
        }
        self._latest: dict[str, tuple[int, dict[tuple[Any, ...], Bucket]]] = {}
        self.published: dict[str, dict[str, tuple[int, dict[str, float]]]] = {}

    def observe(self, closed: Iterable[ClosedWindow]) -> dict[str, int]:
        """Take newly closed windows; returns ``{aggregate: window start}`` of those updated."""
        touched: dict[str, int] = {}
        for window in closed:
            plan = self.plans.get(window.aggregate)
            if plan is None:
                continue
            start, groups = self._latest.get(window.aggregate, (None, {}))
            if start is not None and window.window_start < start:
                continue  # an older window closing late in another partition
            if start is None or window.window_start > start:
                start, groups = window.window_start, {}
                self._latest[window.aggregate] = (start, groups)
            held = groups.get(window.group)
            if held is None:
                groups[window.group] = plan.merge(plan.new_bucket(), window.bucket)
            else:
                plan.merge(held, window.bucket)
            touched[window.aggregate] = start
        for name in touched:
            self._publish(name)
        return touched

    def _publish(self, name: str) -> None:
        plan = self.plans[name]
        start, groups = self._latest[name]
        ranked = sorted(groups.items(), key=lambda item: (-item[1].rows, group_label(item[0])))
        shown: dict[str, Bucket] = {group_label(g): b for g, b in ranked[: self.max_groups]}
        if len(ranked) > self.max_groups:
            other = plan.new_bucket()
            for _, bucket in ranked[self.max_groups :]:
                plan.merge(other, bucket)
            shown[OTHER_GROUP] = other
        columns = self._means[name]
        published: dict[str, tuple[int, dict[str, float]]] = {}
        for label, bucket in shown.items():
            figures = plan.figures(bucket) if columns else {}
            AGGREGATE_WINDOW_ROWS.labels(self.topology, name, label).set(bucket.rows)
            means = {}
            for column in columns:
                value = figures.get(f"{column}.mean")
                if value is not None and value == value:  # NaN: no values in this group
                    gauge = AGGREGATE_WINDOW_MEAN.labels(self.topology, name, column, label)
                    gauge.set(value)
                    means[column] = value
                else:
                    _remove(AGGREGATE_WINDOW_MEAN, self.topology, name, column, label)
            published[label] = (bucket.rows, means)
        for label in set(self.published.get(name, {})) - set(published):
            _remove(AGGREGATE_WINDOW_ROWS, self.topology, name, label)
            for column in columns:
                _remove(AGGREGATE_WINDOW_MEAN, self.topology, name, column, label)
        self.published[name] = published
        AGGREGATE_WINDOW_END.labels(self.topology, name).set(start + plan.geometry.size)


def _remove(gauge: Any, *labels: str) -> None:
    with contextlib.suppress(KeyError):  # a series never published has nothing to remove
        gauge.remove(*labels)
