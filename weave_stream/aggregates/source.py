"""Reading windowed aggregates back for queries: from the stream's changelog, or from a file.

**Where the partials are.** A topology worker keeps its aggregates in a Faust table
(``aggregates``) whose changelog topic, ``<app id>-aggregates-changelog``, holds every
write. Each source partition of ``<prefix>.calls.valid`` has its own namespace of keys
(``<partition>/b/<aggregate>/<pane>/<group>`` buckets, ``<partition>/m`` its meta) and
its keys live in the changelog partition of the same number. A query reads that
topic to its end (Fetch high-water marks: right on every broker), keeps the latest
value of each key (a tombstone forgets an expired pane), decodes one
:class:`~weave_stream.windows.AggregatePartials` per source partition and merges them.

**Why the changelog, not each worker's HTTP API.** The changelog is the one place
that always holds every partition's partials, whichever worker owns it, during a
rebalance or after a worker died: no worker discovery, no partial answer while a
worker restarts, and the CLI, any worker's HTTP API and a worker with no partition
all give the same answer. The price is a read of the topic per query: compacted on
Kafka (Faust creates changelogs compacted), it holds about one record per live key;
the embedded broker does not compact, so there a query also reads superseded writes.

**Files.** :func:`local_aggregates` runs a topology in-process over calls (the local
runner) and folds the same rows into the same windows, sorted by event time.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Mapping, Sequence
from typing import Any, Literal

import orjson

from weave_stream.broker.kafka import read_topic
from weave_stream.config import Settings
from weave_stream.errors import QueryError
from weave_stream.topology.aggregates import Aggregate
from weave_stream.topology.spec import Topology
from weave_stream.windows.bucket import AggregatePlan
from weave_stream.windows.snapshot import AggregatePartials

__all__ = [
    "aggregate_plans",
    "decode_partials",
    "partition_namespace",
    "read_partials",
    "read_snapshots",
    "worst_direction",
]


def partition_namespace(partition: int) -> str:
    """The key prefix of the state of one source partition (``"3/"``)."""
    return f"{partition}/"


def aggregate_plans(topology: Topology) -> list[AggregatePlan]:
    """The compiled aggregates of ``topology`` (validated when it was built), in spec order.

    Each drill-down knows which of its scores are the worst (:func:`worst_direction`).
    """
    return [AggregatePlan(_with_direction(topology, spec)) for spec in topology.aggregates]


def _with_direction(topology: Topology, spec: Aggregate) -> Aggregate:
    drill = spec.drill_down
    if drill.score is None:
        return spec
    if drill.worst is not None:
        reason = f"aggregate {spec.name} says worst: {drill.worst}"
        direction = drill.worst
    else:
        direction, reason = worst_direction(topology, drill.score)
    update = {"worst": direction, "worst_reason": reason}
    return spec.model_copy(update={"drill_down": drill.model_copy(update=update)})


def worst_direction(topology: Topology, score: str) -> tuple[Literal["lowest", "highest"], str]:
    """Whether the worst values of ``score`` (a column, ``column.field`` or monitor) are the
    lowest or the highest, and why: the column's ``higher_is_worse``, else its op's, else
    a monitor's distance (higher is worse), else lower is worse."""
    head = score.split(".")[0]
    for column in topology.columns:
        if column.name != head:
            continue
        if column.higher_is_worse is not None:
            said = str(column.higher_is_worse).lower()
            return _direction(column.higher_is_worse), f"column {head} says higher_is_worse: {said}"
        an_op = topology.column(head).op
        by_op = getattr(an_op, "higher_is_worse", None)
        if by_op is not None:
            return _direction(by_op), f"op {an_op.name} says higher_is_worse: {str(by_op).lower()}"
        break
    if head in {monitor.name for monitor in topology.monitors}:
        return "highest", f"{head} is a monitor's novelty distance"
    return "lowest", (
        f"the default; set higher_is_worse: true on column {head} if higher values are worse"
    )


def _direction(higher_is_worse: bool) -> Literal["lowest", "highest"]:
    return "highest" if higher_is_worse else "lowest"


def decode_partials(
    plans: Sequence[AggregatePlan], entries: Mapping[str, bytes]
) -> dict[str, list[AggregatePartials]]:
    """One snapshot per source partition and aggregate from the table's keys and values.

    Keys of aggregates the plans do not have (a topology changed since) are skipped.

    >>> from weave_stream.topology.aggregates import parse_aggregates
    >>> from weave_stream.windows import AggregateRow, WindowState
    >>> plan = AggregatePlan(parse_aggregates([{"name": "q", "window": "1m"}], "t")[0])
    >>> table: dict = {}
    >>> for partition, call in ((0, "a"), (1, "b"), (1, "c")):
    ...     state = WindowState([plan], table, namespace=partition_namespace(partition))
    ...     _ = state.apply([AggregateRow(call, 5.0)])
    >>> snapshots = decode_partials([plan], table)["q"]
    >>> [sum(bucket.rows for bucket in s.panes.values()) for s in snapshots]
    [1, 2]
    """
    by_name = {plan.name: plan for plan in plans}
    panes: dict[tuple[str, str], dict[Any, Any]] = defaultdict(dict)
    metas: dict[str, dict[str, Any]] = {}
    for key, value in entries.items():
        namespace, _, rest = key.partition("/")
        kind, _, detail = rest.partition("/")
        if kind == "b":
            name, pane, group = detail.split("/", 2)
            plan = by_name.get(name)
            if plan is not None:
                pane_key = (int(pane), tuple(orjson.loads(group)))
                panes[(namespace, name)][pane_key] = plan.decode(orjson.loads(value))
        elif kind == "m" and not detail:
            metas[namespace] = orjson.loads(value)
    snapshots: dict[str, list[AggregatePartials]] = {plan.name: [] for plan in plans}
    for namespace in sorted({ns for ns, _ in panes} | set(metas), key=_partition_order):
        meta = metas.get(namespace, {})
        for plan in plans:
            snapshots[plan.name].append(
                AggregatePartials(
                    plan.name,
                    panes.get((namespace, plan.name), {}),
                    late_rows=int((meta.get("late") or {}).get(plan.name, 0)),
                    watermark=meta.get("clock"),
                    duplicates=int(meta.get("duplicates", 0)),
                )
            )
    return snapshots


def _partition_order(namespace: str) -> tuple[int, str]:
    return (int(namespace), "") if namespace.isdigit() else (1 << 30, namespace)


async def read_partials(settings: Settings, topology: str) -> dict[str, bytes]:
    """The latest value of every live key of ``topology``'s aggregates table, from Kafka."""
    latest: dict[str, bytes] = {}
    async for record in read_topic(settings, settings.topics.aggregates_changelog(topology)):
        if record.key is None:
            continue
        key = _table_key(record.key)
        if record.value is None:
            latest.pop(key, None)
        else:
            latest[key] = record.value
    return latest


def _table_key(raw: bytes) -> str:
    """A table key as written to the changelog (Faust writes ``str`` keys as JSON strings)."""
    if raw[:1] == b'"':
        key = orjson.loads(raw)
        if isinstance(key, str):
            return key
    return raw.decode()


async def read_snapshots(
    settings: Settings, topology: Topology
) -> tuple[list[AggregatePlan], dict[str, list[AggregatePartials]]]:
    """The plans of ``topology`` and every partition's snapshots of each aggregate."""
    plans = aggregate_plans(topology)
    if not plans:
        raise QueryError(
            f"topology {topology.name!r} declares no aggregates; add an 'aggregates:' section "
            "(see topologies/text_extract.yaml) and register it again"
        )
    entries = await read_partials(settings, topology.name)
    return plans, decode_partials(plans, entries)
