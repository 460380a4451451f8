"""A worker's metrics, awaited: one sample of its /metrics until it is what a test expects."""

from __future__ import annotations

from collections.abc import Callable

from tests.support.waiting import wait_until
from weave_stream.runners.workers import WorkerProcess

__all__ = ["wait_for_metric"]


def wait_for_metric(
    worker: WorkerProcess,
    sample: str,
    until: Callable[[float | None], bool],
    timeout: float = 60.0,
    what: str = "",
) -> float | None:
    """Scrape ``worker`` until ``until(value of sample)`` (None while it is absent).

    ``sample`` is written as :meth:`WorkerProcess.metrics` keys it, labels sorted:
    ``'weave_stream_calls_ingested_total{kind="complete"}'``. ``what`` says in words
    what is awaited (default: the sample itself).
    """
    return wait_until(
        lambda: worker.metrics().get(sample),
        timeout,
        what or f"{sample} on the worker's /metrics",
        until=until,
    )
