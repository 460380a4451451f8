"""The reconciler of a topology worker: its partitions' calls checked for missing values.

Every ``reconcile_interval_seconds`` (0: never), between rebalances, the worker runs
one :func:`~weave_stream.runners.reconcile.reconcile_partitions` pass over the
partitions of the valid calls it is assigned, counts what it found and repaired
(``weave_stream_reconcile_*``; the alerting rules watch them) and says so in its
log. A pass that fails is counted and logged; the next one tries the same calls.

A pass opens a few short-lived Kafka clients; their INFO lines (coordinator found,
subscription changed) are left out of the worker's log, which keeps the lines of
the worker's own consumer (they run in another thread, another context).
"""

from __future__ import annotations

import contextvars
import logging
from collections.abc import Callable

import faust

from weave_stream.config import Settings
from weave_stream.metrics import (
    RECONCILE_CALLS_CHECKED,
    RECONCILE_CHECKED_UNTIL,
    RECONCILE_FAILURES,
    RECONCILE_MISSING,
    RECONCILE_REPAIRED,
)
from weave_stream.runners.reconcile import Reconciliation, reconcile_partitions
from weave_stream.topology.spec import Topology

__all__ = ["attach_reconciler", "report"]

log = logging.getLogger(__name__)

_RECONCILING = contextvars.ContextVar("reconciling", default=False)


class _QuietClients(logging.Filter):
    """Drops the INFO chatter of Kafka clients opened by a reconciliation pass."""

    def filter(self, record: logging.LogRecord) -> bool:
        return record.levelno > logging.INFO or not _RECONCILING.get()


def _quiet_client_logs() -> None:
    quiet = _QuietClients()
    names = [n for n in logging.root.manager.loggerDict if n.startswith("aiokafka")]
    for name in ["aiokafka", *names]:
        logger = logging.getLogger(name)
        if not any(isinstance(f, _QuietClients) for f in logger.filters):
            logger.addFilter(quiet)


def attach_reconciler(
    app: faust.App,
    settings: Settings,
    topology: Topology,
    current: Callable[[], Topology] | None = None,
) -> None:
    """Run a reconciliation pass on ``app`` every ``reconcile_interval_seconds``, repairing
    with ``current()`` (the topology the worker derives with now) or ``topology``."""
    if settings.reconcile_interval_seconds <= 0 or not topology.compiled:
        return
    name = topology.name
    for column in topology.compiled:  # present from the start: alerts see a zero, not a gap
        RECONCILE_MISSING.labels(name, column.name)
        RECONCILE_REPAIRED.labels(name, column.name)
    RECONCILE_FAILURES.labels(name)
    _quiet_client_logs()

    @app.timer(interval=settings.reconcile_interval_seconds)
    async def reconcile_values() -> None:
        if app.rebalancing:
            return  # the assignment is changing: the next pass sees the new one
        partitions = sorted(
            tp.partition
            for tp in app.assignor.assigned_actives()
            if tp.topic == settings.topics.valid
        )
        if not partitions:
            return
        _RECONCILING.set(True)  # this timer's task, and the client tasks it starts
        try:
            deriving = current() if current is not None else topology
            result = await reconcile_partitions(settings, deriving, partitions)
        except Exception as exc:  # counted and logged; the same calls are checked next time
            RECONCILE_FAILURES.labels(name).inc()
            log.error(
                "reconciliation of topology %s (partitions %s) failed: %r; the calls stay "
                "unchecked and the next pass in %.0fs tries again",
                name,
                partitions,
                exc,
                settings.reconcile_interval_seconds,
            )
            return
        report(name, partitions, result)


def report(topology: str, partitions: list[int], result: Reconciliation) -> None:
    """Count ``result`` in the metrics and log what was missing."""
    RECONCILE_CALLS_CHECKED.labels(topology).inc(result.checked)
    if result.checked_until is not None:
        RECONCILE_CHECKED_UNTIL.labels(topology).set(result.checked_until)
    for column, count in result.missing.items():
        RECONCILE_MISSING.labels(topology, column).inc(count)
    for column, count in result.repaired.items():
        RECONCILE_REPAIRED.labels(topology, column).inc(count)
    if result.missing:
        log.warning(
            "topology %s lost values of %d calls on partitions %s (missing per column: %s; "
            "repaired: %s); calls: %s",
            topology,
            len(result.missing_calls),
            partitions,
            dict(result.missing),
            dict(result.repaired),
            ", ".join(result.missing_calls[:10])
            + (" ..." if len(result.missing_calls) > 10 else ""),
        )
