"""A stall watchdog for topology workers: records waiting, an idle agent, nothing read.

Seen here: after a topology worker is replaced (an op changed) or restarted, its
Faust consumer sometimes sits idle with assigned partitions whose committed offsets
lag behind records already on the topic (shared/BROKER.md reports the same after a
SIGKILL). A fresh process resumes correctly from the committed offsets. So when the
agent has been idle (no batch in progress, none started) for ``stall_seconds`` while
its own partitions lag — high-water marks read by an independent Fetch — the worker
logs why and stops gracefully; its supervisor starts a new one. A slow op does not
trigger it: a batch is then in progress.
"""

from __future__ import annotations

import logging
import os
import signal
import time
from collections.abc import Mapping

import faust

from weave_stream.broker.kafka import highwaters
from weave_stream.config import Settings
from weave_stream.runners.streaming.lag import committed_offsets

__all__ = ["Activity", "lagging", "watch_for_stall"]

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


def watch_for_stall(
    app: faust.App, settings: Settings, topic: str, activity: Activity, stall_seconds: float
) -> None:
    """Check every few seconds; stop the worker (SIGTERM to itself) if it is stalled."""

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
