"""The partials of one aggregate as one partition or worker holds them, and their merge.

Each worker keeps partial aggregates per source partition (no repartition by group
key); a query collects a :class:`AggregatePartials` from every partition, possibly over HTTP
as JSON (:meth:`AggregatePartials.encode`), and merges them (:func:`merge_partials`) into one
snapshot over all the calls. Snapshots hold *panes* (see
:mod:`weave_stream.windows.arithmetic`); :mod:`weave_stream.aggregates.compose` composes
them into windows.

>>> from weave_stream.topology.aggregates import parse_aggregates
>>> from weave_stream.windows.bucket import AggregatePlan
>>> plan = AggregatePlan(parse_aggregates([{"name": "q", "window": "1m"}], "demo")[0])
>>> one = AggregatePartials("q", {(0, ()): plan.new_bucket()}, late_rows=2, watermark=30.0)
>>> two = AggregatePartials.decode(plan, one.encode(plan))
>>> merged = merge_partials(plan, [one, two])
>>> merged.late_rows, merged.sources, merged.watermark, list(merged.panes)
(4, 2, 30.0, [(0, ())])
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import Any

from weave_stream.errors import QueryError
from weave_stream.windows.bucket import AggregatePlan, Bucket

__all__ = ["AggregatePartials", "PaneKey", "merge_partials"]

# (pane start in epoch seconds, group values in group_by order)
PaneKey = tuple[int, tuple[Any, ...]]


@dataclass
class AggregatePartials:
    """Pane partials of one aggregate, with the rows refused as late and the watermark.

    A snapshot taken from a live state shares its buckets: read or encode it before
    the state takes its next batch.
    """

    aggregate: str
    panes: dict[PaneKey, Bucket] = field(default_factory=dict)
    late_rows: int = 0
    watermark: float | None = None
    sources: int = 1
    duplicates: int = 0

    def encode(self, plan: AggregatePlan) -> dict[str, Any]:
        """JSON-ready form (what a worker's HTTP API returns per partition)."""
        return {
            "aggregate": self.aggregate,
            "late_rows": self.late_rows,
            "duplicates": self.duplicates,
            "watermark": self.watermark,
            "sources": self.sources,
            "panes": [
                [pane, list(group), plan.encode(bucket)]
                for (pane, group), bucket in self.panes.items()
            ],
        }

    @classmethod
    def decode(cls, plan: AggregatePlan, data: dict[str, Any]) -> AggregatePartials:
        """A snapshot back from :meth:`encode`; fails if it is of another aggregate."""
        if data.get("aggregate") != plan.name:
            raise QueryError(
                f"snapshot is of aggregate {data.get('aggregate')!r}, not {plan.name!r}; "
                "query each aggregate with its own snapshots"
            )
        panes = {
            (int(pane), tuple(group)): plan.decode(bucket) for pane, group, bucket in data["panes"]
        }
        return cls(
            plan.name,
            panes,
            late_rows=int(data.get("late_rows", 0)),
            watermark=data.get("watermark"),
            sources=int(data.get("sources", 1)),
            duplicates=int(data.get("duplicates", 0)),
        )


def merge_partials(
    plan: AggregatePlan, snapshots: Iterable[AggregatePartials]
) -> AggregatePartials:
    """One snapshot over all of ``snapshots`` (partitions, workers); the inputs are not changed."""
    merged = AggregatePartials(plan.name, sources=0)
    watermarks = []
    for snapshot in snapshots:
        if snapshot.aggregate != plan.name:
            raise QueryError(
                f"cannot merge a snapshot of aggregate {snapshot.aggregate!r} into {plan.name!r}"
            )
        for key, bucket in snapshot.panes.items():
            target = merged.panes.get(key)
            if target is None:
                target = merged.panes[key] = plan.new_bucket()
            plan.merge(target, bucket)
        merged.late_rows += snapshot.late_rows
        merged.duplicates += snapshot.duplicates
        merged.sources += snapshot.sources
        if snapshot.watermark is not None:
            watermarks.append(snapshot.watermark)
    merged.watermark = max(watermarks) if watermarks else None
    return merged
