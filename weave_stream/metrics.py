"""Every Prometheus metric weave-stream exports, in one place.

Names follow Prometheus conventions: ``weave_stream_`` prefix, ``_total`` counters,
``_seconds`` histograms, base units, bounded label sets. The metrics live in their
own registry (:data:`REGISTRY`), served by each worker at ``/metrics``.

Label children on hot paths are looked up once and kept (``.labels()`` costs ~1 µs).
"""

from __future__ import annotations

from prometheus_client import (
    CollectorRegistry,
    Counter,
    Gauge,
    Histogram,
    disable_created_metrics,
    generate_latest,
)

__all__ = [
    "CALLS_INGESTED",
    "CALLS_UNMERGED",
    "DEAD_LETTERS",
    "INGEST_RECORDS",
    "REGISTRY",
    "WORKER_INFO",
    "render",
]

# `_created` series double every counter and help no query here.
disable_created_metrics()
REGISTRY = CollectorRegistry(auto_describe=True)

INGEST_RECORDS = Counter(
    "weave_stream_ingest_records_total",
    "Records read from the calls topic, by outcome: valid (a complete call), pending "
    "(a start or end event waiting for its other half), merged (the half that completed "
    "a call), duplicate (a repeat of an already merged event), dead_letter.",
    ["outcome"],
    registry=REGISTRY,
)
CALLS_INGESTED = Counter(
    "weave_stream_calls_ingested_total",
    "Calls written to the valid-calls topic, by kind: complete, start (no end arrived "
    "within the merge timeout), end (no start arrived within the merge timeout).",
    ["kind"],
    registry=REGISTRY,
)
CALLS_UNMERGED = Counter(
    "weave_stream_calls_unmerged_total",
    "Start or end events whose other half did not arrive within the merge timeout "
    "(still written, as incomplete calls), by the missing half.",
    ["missing"],
    registry=REGISTRY,
)
DEAD_LETTERS = Counter(
    "weave_stream_dead_letters_total",
    "Records sent to the dead-letter topic, by reason.",
    ["reason"],
    registry=REGISTRY,
)
WORKER_INFO = Gauge(
    "weave_stream_worker_info",
    "Constant 1, labelled with the worker's identity and topic prefix.",
    ["worker_id", "topic_prefix"],
    registry=REGISTRY,
)
INGEST_BATCH_SECONDS = Histogram(
    "weave_stream_ingest_batch_seconds",
    "Time to validate, merge and forward one micro-batch of raw records.",
    buckets=(0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5),
    registry=REGISTRY,
)


def render() -> bytes:
    """The registry in Prometheus's text exposition format."""
    return generate_latest(REGISTRY)
