"""Consumer lag of a Faust app, published as ``weave_stream_consumer_lag{group, topic}``.

Lag is the high-water mark minus the committed offset, per assigned partition, summed
per topic. The high-water mark is the one the consumer learnt from its own Fetch
responses: the embedded broker answers ListOffsets(latest) wrongly after
multi-record batches (shared/BROKER.md), and a Fetch costs nothing extra here. A
partition whose high-water mark is not known yet (no Fetch answered) is left out
rather than guessed.

Each process publishes the lag of the partitions it is assigned; Prometheus sums
``by (group, topic)`` across workers. A partition whose committed offset stops
advancing while records arrive shows up here as a lag that only grows.
"""

from __future__ import annotations

import logging
from collections import defaultdict
from collections.abc import Iterable, Mapping
from typing import Any

import faust

from weave_stream.metrics import CONSUMER_LAG

__all__ = [
    "LAG_INTERVAL_SECONDS",
    "committed_offsets",
    "partition_lags",
    "topic_lags",
    "track_consumer_lag",
]

log = logging.getLogger(__name__)

LAG_INTERVAL_SECONDS = 2.0


def partition_lags(
    highwaters: Mapping[tuple[str, int], int | None],
    committed: Mapping[tuple[str, int], int | None],
) -> dict[tuple[str, int], int]:
    """Lag per ``(topic, partition)`` whose high-water mark is known.

    A partition nothing was committed for yet lags by its whole high-water mark
    (the group reads from the start); a committed offset past the mark (a stale
    mark) counts as no lag.

    >>> partition_lags({("calls", 0): 10, ("calls", 1): None, ("calls", 2): 4},
    ...                {("calls", 0): 7, ("calls", 2): None})
    {('calls', 0): 3, ('calls', 2): 4}
    """
    lags = {}
    for partition, highwater in highwaters.items():
        if highwater is None:
            continue
        lags[partition] = max(0, highwater - (committed.get(partition) or 0))
    return lags


def topic_lags(lags: Mapping[tuple[str, int], int]) -> dict[str, int]:
    """Partition lags summed per topic.

    >>> topic_lags({("calls", 0): 3, ("calls", 2): 4, ("valid", 1): 0})
    {'calls': 7, 'valid': 0}
    """
    totals: dict[str, int] = defaultdict(int)
    for (topic, _), lag in lags.items():
        totals[topic] += lag
    return dict(totals)


def track_consumer_lag(app: faust.App, interval: float = LAG_INTERVAL_SECONDS) -> None:
    """Publish the lag of ``app``'s consumer group every ``interval`` seconds.

    Only the partitions the app's agents process count: Faust's own topics (table
    changelogs, the assignor's leader topic, named ``<app id>-...``) are not the
    group's backlog.
    """
    group = app.conf.id
    internal = f"{group}-"  # Faust's own topics: changelogs, the leader topic
    published: set[str] = set()

    @app.timer(interval=interval, on_leader=False)
    async def publish_consumer_lag() -> None:
        if app.rebalancing:
            return  # the assignment is changing; the next tick sees the new one
        actives = app.assignor.assigned_actives()
        assigned = [tp for tp in actives if not tp.topic.startswith(internal)]
        lags = topic_lags(
            partition_lags(
                {(tp.topic, tp.partition): _highwater(app, tp) for tp in assigned},
                committed_offsets(app, assigned),
            )
        )
        for topic in published - set(lags):
            # Revoked from this process: another worker reports it now.
            CONSUMER_LAG.remove(group, topic)
        for topic, lag in lags.items():
            CONSUMER_LAG.labels(group, topic).set(lag)
        published.clear()
        published.update(lags)


def _highwater(app: faust.App, tp: faust.types.TP) -> int | None:
    # The sync highwater() is the consumer's Fetch-based mark; highwaters() would ask
    # ListOffsets, which the embedded broker gets wrong.
    try:
        mark = app.consumer.highwater(tp)
    except AssertionError:  # aiokafka: revoked between the assignment read and now
        return None
    return None if mark is None else int(mark)


def committed_offsets(
    app: faust.App, assigned: Iterable[faust.types.TP]
) -> dict[tuple[str, int], int | None]:
    """The offsets Faust committed (or found at assignment) for ``assigned`` partitions."""
    # Faust keeps the offsets it committed (and the ones it found at assignment) per
    # partition; there is no public accessor, so read its mapping without creating keys.
    consumer: Any = app.consumer
    offsets: Mapping[faust.types.TP, int | None] = consumer._committed_offset
    return {(tp.topic, tp.partition): offsets.get(tp) for tp in assigned}
