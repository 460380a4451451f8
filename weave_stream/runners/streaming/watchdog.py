"""A stall watchdog for topology workers: records waiting, an idle agent, nothing read.

Seen here: after a topology worker is replaced (an op changed) or restarted, its
Faust consumer sometimes sits idle with assigned partitions whose committed offsets
lag behind records already on the topic (shared/BROKER.md reports the same after a
SIGKILL). A fresh process resumes correctly from the committed offsets. So when the
agent has been idle (no batch in progress, none started) for ``stall_seconds`` while
its own partitions lag — high-water marks read by an independent Fetch — the worker
logs why and stops gracefully; its supervisor starts a new one. A slow op does not
trigger it: a batch is then in progress.

It also heals holes. The commit guard holds a partition's commits at an offset no
agent processed (a record Faust dropped when recovery's first fetch raced its seek,
faust-streaming#596) while later offsets are processed: nothing is lost, but the
held call is not processed either, and its partition's commits wait until the next
rebalance. When such a hole has lasted ``stall_seconds / 2``, the watchdog seeks
the partition back to it, so the call is read again (the calls after it too:
their values are re-emitted from the results table).
"""

from __future__ import annotations

import logging
import os
import signal
import time
from collections.abc import Mapping
from typing import Any

import faust

from weave_stream.broker.kafka import highwaters
from weave_stream.config import Settings
from weave_stream.metrics import HOLES_HEALED
from weave_stream.runners.streaming.commit_guard import known_committed
from weave_stream.runners.streaming.lag import committed_offsets

__all__ = ["Activity", "Holes", "lagging", "watch_for_holes", "watch_for_stall"]

log = logging.getLogger(__name__)


class Activity:
    """What the agent reports: a batch begins, a batch ends."""

    def __init__(self) -> None:
        self.busy = False
        self.last = time.monotonic()

    def begin(self) -> None:
        self.busy, self.last = True, time.monotonic()

    def end(self) -> None:
        self.busy, self.last = False, time.monotonic()

    def idle_for(self) -> float:
        """Seconds since the last batch ended (0 while one is in progress)."""
        return 0.0 if self.busy else time.monotonic() - self.last


def lagging(
    committed: Mapping[int, int | None], highwaters: Mapping[int, int]
) -> dict[int, tuple[int, int]]:
    """``{partition: (committed, high-water)}`` of the partitions with records not read.

    >>> lagging({0: 5, 1: None, 2: 9}, {0: 5, 1: 3, 2: 12, 3: 7})
    {1: (0, 3), 2: (9, 12)}
    """
    behind = {}
    for partition, offset in committed.items():
        mark = highwaters.get(partition, 0)
        if (offset or 0) < mark:
            behind[partition] = (offset or 0, mark)
    return behind


class Holes:
    """Partitions whose commits are held at an offset never acknowledged while later ones
    are: since when each hole (partition, offset) has been seen."""

    def __init__(self) -> None:
        self.since: dict[tuple[Any, int], float] = {}

    def held(
        self, acked: Mapping[Any, list[int]], committed: Mapping[Any, int], now: float
    ) -> list[tuple[Any, int]]:
        """The ``(partition, offset)`` holes seen now, each first seen at ``self.since``.

        >>> holes = Holes()
        >>> holes.held({"p0": [25, 26], "p1": [7, 8]}, {"p0": 24, "p1": 7}, now=100.0)
        [('p0', 24)]
        >>> holes.held({"p0": [25, 26, 27]}, {"p0": 24}, now=110.0), holes.since
        ([('p0', 24)], {('p0', 24): 100.0})
        >>> holes.held({"p0": [24, 25]}, {"p0": 24}, now=120.0), holes.since
        ([], {})
        """
        seen = []
        for tp, offsets in acked.items():
            head = committed.get(tp)
            if head is not None and offsets and min(offsets) > head:
                seen.append((tp, head))
        self.since = {hole: self.since.get(hole, now) for hole in seen}
        return seen


def watch_for_stall(
    app: faust.App, settings: Settings, topic: str, activity: Activity, stall_seconds: float
) -> None:
    """Check every few seconds; stop the worker (SIGTERM to itself) if it is stalled."""

    watch_for_holes(app, stall_seconds)
    stopping = False

    @app.timer(interval=max(1.0, stall_seconds / 3))
    async def stall_watchdog() -> None:
        nonlocal stopping
        # Once: a second SIGTERM would make the worker exit at once, uncommitted.
        if stopping or app.rebalancing or activity.idle_for() < stall_seconds:
            return
        assigned = [tp for tp in app.assignor.assigned_actives() if tp.topic == topic]
        if not assigned:
            return
        marks = await highwaters(settings, topic)
        committed = {p: o for (_, p), o in committed_offsets(app, assigned).items()}
        behind = lagging(committed, marks)
        if behind:
            log.error(
                "stalled: idle for %.0fs while partitions of %s lag (committed, high-water): "
                "%s; stopping so that a fresh worker resumes from the committed offsets",
                activity.idle_for(),
                topic,
                behind,
            )
            stopping = True
            os.kill(os.getpid(), signal.SIGTERM)


def watch_for_holes(app: faust.App, stall_seconds: float) -> None:
    """Read again, on every topic ``app`` consumes, a partition held at a hole for
    ``stall_seconds / 2`` (checked every ``stall_seconds / 6``)."""
    holes = Holes()

    @app.timer(interval=max(1.0, stall_seconds / 6))
    async def hole_watchdog() -> None:
        if not app.rebalancing:
            await _heal_holes(app, holes, stall_seconds / 2)


async def _heal_holes(app: faust.App, holes: Holes, patience: float) -> None:
    consumer: Any = app.consumer
    assigned = set(app.assignor.assigned_actives())
    acked = {tp: list(offsets) for tp, offsets in consumer._acked.items() if tp in assigned}
    now = time.monotonic()
    for tp, offset in holes.held(acked, known_committed(consumer), now):
        if now - holes.since[(tp, offset)] < patience:
            continue
        log.warning(
            "%s[%d]: offset %d was never processed while later ones were (held for %.0fs); "
            "reading the partition again from it",
            tp.topic,
            tp.partition,
            offset,
            now - holes.since[(tp, offset)],
        )
        HOLES_HEALED.labels(tp.topic).inc()
        await consumer.seek(tp, offset)
