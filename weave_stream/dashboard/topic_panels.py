"""The dashboard's topics row: the topic mix of each ``topics:`` entry of a topology.

Fed by ``weave_stream_topic_calls_total{topology, column, topic}`` (each call the topic
column assigned, counted once by the worker that assigned it): the share of each topic
over time (stacked to 100 %), the calls per topic per minute, and the map in use with
the scheduled refits and their outcomes.

>>> from weave_stream.topology.loader import topology_from_dict
>>> topology = topology_from_dict({"name": "demo", "columns": [
...     {"name": "doc_embedding", "op": "embed", "args": {"text": "inputs.document"}}],
...     "topics": [{"column": "doc_embedding"}]})
>>> [p["title"] for p in topic_panels(topology)]
['topic mix: topic (share of calls)', 'calls per topic: topic', 'topic map and refits: topic']
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

from weave_stream.dashboard.panels import series, target, timeseries
from weave_stream.metrics import TOPIC_CALLS, TOPIC_MAP_INFO, TOPIC_REFITS
from weave_stream.topology.spec import Topology

__all__ = ["topic_panels"]

_RATE = "$__rate_interval"


def topic_panels(topology: Topology) -> Iterator[dict[str, Any]]:
    """Per ``topics:`` entry: the topic mix, calls per topic, the map and its refits."""
    name = topology.name
    for spec in topology.topics:
        selector = f'{{topology="{name}", column="{spec.name}"}}'
        per_topic = f"sum by (topic) (rate({series(TOPIC_CALLS)}{selector}[{_RATE}]))"
        total = f"sum(rate({series(TOPIC_CALLS)}{selector}[{_RATE}]))"
        yield timeseries(
            f"topic mix: {spec.name} (share of calls)",
            [target(f"{per_topic} / ignoring(topic) group_left {total}", "{{topic}}")],
            "percentunit",
            f"Each topic's share of the calls the {spec.name} column assigned (of "
            f"{spec.column}'s current map); 'outlier' lies beyond every topic's radius, "
            "'unassigned' came while no map existed. topic_shift alerts fire when a share "
            "leaves its normal range.",
            legend="right",
            stacking={"mode": "percent", "group": "A"},
            fillOpacity=60,
        )
        yield timeseries(
            f"calls per topic: {spec.name}",
            [target(f"60 * {per_topic}", "{{topic}}")],
            "short",
            "Calls assigned per topic per minute.",
            legend="right",
            stacking={"mode": "normal", "group": "A"},
            fillOpacity=30,
        )
        refits = f"sum by (outcome) (increase({series(TOPIC_REFITS)}{selector}[1h]))"
        yield timeseries(
            f"topic map and refits: {spec.name}",
            [
                target(f"max by (map) ({series(TOPIC_MAP_INFO)}{selector})", "map {{map}}"),
                target(refits, "refits {{outcome}} / h"),
            ],
            "short",
            "The map the column assigns with (a new ref after each refit), and the "
            "scheduled refits per hour by outcome (failed: the map stayed the previous one).",
            legend="right",
        )
