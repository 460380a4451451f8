"""What ``weave-stream status`` says of reconciliation (:mod:`~weave_stream.runners.reconcile`).

Per registered topology: how many calls its group processed that the reconciler has
not checked yet (the two groups' committed offsets on the valid calls), and how many
values the live workers' reconcilers found missing and repaired since they started
(their ``weave_stream_reconcile_*`` counters, read from each worker's ``/metrics``,
which merges its topology children's).
"""

from __future__ import annotations

import asyncio
import urllib.error
import urllib.request
from dataclasses import dataclass

from aiokafka.errors import KafkaError
from prometheus_client.parser import text_string_to_metric_families

from weave_stream.broker.kafka import group_progress
from weave_stream.config import Settings

__all__ = ["Reconciled", "reconcile_counts", "reconciliation_status"]


@dataclass
class Reconciled:
    """A topology's reconciliation: processed calls not checked yet (from the broker),
    and the values found missing and repaired by the live workers since they started
    (their ``weave_stream_reconcile_*`` counters; None when no worker answered)."""

    unchecked: int | None
    missing: int | None = None
    repaired: int | None = None


def reconcile_counts(exposition: str) -> dict[str, tuple[int, int]]:
    """``{topology: (values found missing, values repaired)}`` in a worker's /metrics.

    >>> text = '''weave_stream_reconcile_missing_values_total{topology="t",column="a"} 3.0
    ... weave_stream_reconcile_missing_values_total{topology="t",column="b"} 1.0
    ... weave_stream_reconcile_repaired_values_total{topology="t",column="a"} 3.0
    ... '''
    >>> reconcile_counts(text)
    {'t': (4, 3)}
    """
    counts: dict[str, list[int]] = {}
    kinds = {
        "weave_stream_reconcile_missing_values_total": 0,
        "weave_stream_reconcile_repaired_values_total": 1,
    }
    for family in text_string_to_metric_families(exposition):
        for sample in family.samples:
            kind = kinds.get(sample.name)
            if kind is not None:
                counts.setdefault(sample.labels["topology"], [0, 0])[kind] += int(sample.value)
    return {name: (found[0], found[1]) for name, found in counts.items()}


def _scrape(url: str) -> str | None:
    try:
        with urllib.request.urlopen(f"{url}/metrics", timeout=3) as answer:
            return str(answer.read().decode())
    except (urllib.error.URLError, OSError):  # gone since it reported: its counts unknown
        return None


async def reconciliation_status(
    settings: Settings, names: list[str], worker_urls: list[str]
) -> dict[str, Reconciled]:
    """Per topology: calls processed and not checked yet, values missing and repaired."""
    topics = settings.topics
    expositions = await asyncio.gather(*(asyncio.to_thread(_scrape, url) for url in worker_urls))
    totals: dict[str, list[int]] = {}
    for exposition in expositions:
        for name, (missing, repaired) in reconcile_counts(exposition or "").items():
            held = totals.setdefault(name, [0, 0])
            held[0] += missing
            held[1] += repaired
    found: dict[str, Reconciled] = {}
    for name in names:
        processed = await _progress(settings, topics.topology_group(name), topics.valid)
        checked = await _progress(settings, topics.reconcile_group(name), topics.valid)
        unchecked = None if processed is None or checked is None else max(0, processed - checked)
        counts = totals.get(name)
        found[name] = Reconciled(unchecked, *(counts or (None, None)))
    return found


async def _progress(settings: Settings, group: str, topic: str) -> int | None:
    try:
        return (await group_progress(settings, group, topic))[0]
    except (KafkaError, TimeoutError, OSError):  # no answer now: shown as unknown ("-")
        return None
