"""Every Prometheus metric weave-stream exports, in one place.

Names follow Prometheus conventions: ``weave_stream_`` prefix, ``_total`` counters,
``_seconds`` histograms, base units, bounded label sets. The metrics live in their
own registry (:data:`REGISTRY`), served by each worker at ``/metrics``.

Label children on hot paths are looked up once and kept (``.labels()`` costs ~1 µs).
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator

from prometheus_client import (
    CollectorRegistry,
    Counter,
    Gauge,
    Histogram,
    disable_created_metrics,
    generate_latest,
)
from prometheus_client.metrics_core import Metric
from prometheus_client.parser import text_string_to_metric_families
from prometheus_client.registry import Collector
from prometheus_client.samples import Sample

__all__ = [
    "AGGREGATE_BATCH_SECONDS",
    "AGGREGATE_BUCKETS",
    "AGGREGATE_LATE_ROWS",
    "AGGREGATE_ROWS",
    "AGGREGATE_WINDOW_END",
    "AGGREGATE_WINDOW_MEAN",
    "AGGREGATE_WINDOW_ROWS",
    "ALERTS_DELIVERED",
    "ALERTS_GROUPED",
    "ALERTS_PENDING",
    "ALERTS_RAISED",
    "ALERT_DELIVERY_FAILURES",
    "CALLS_INGESTED",
    "CALLS_UNMERGED",
    "COLLECTOR_CALLS",
    "COLLECTOR_REFUSED",
    "COLLECTOR_REQUESTS",
    "COLLECTOR_REQUEST_SECONDS",
    "COLUMN_INFO",
    "COMPONENT_FAILED",
    "COMPONENT_FAILURES",
    "CONSUMER_LAG",
    "DEAD_LETTERS",
    "DERIVED_COST_USD",
    "DERIVED_VALUES",
    "DERIVED_VALUES_WRITTEN",
    "EMBED_MODEL_LOADS",
    "EMBED_TEXTS",
    "EMBED_TOKENS",
    "HOLES_HEALED",
    "INDEX_REBUILDS",
    "INGEST_BATCH_SECONDS",
    "INGEST_DEDUPE_IDS",
    "INGEST_RECORDS",
    "JUDGE_TOKENS",
    "MERGE_CONFLICTS",
    "MONITOR_LEARNED",
    "NON_FINITE_NUMBERS",
    "NOVELTY_DISTANCE",
    "OP_BATCH_SECONDS",
    "OP_RETRIES",
    "RECONCILE_CALLS_CHECKED",
    "RECONCILE_CHECKED_UNTIL",
    "RECONCILE_FAILURES",
    "RECONCILE_MISSING",
    "RECONCILE_REPAIRED",
    "REGISTRY",
    "STORE_COMMITS",
    "STORE_COMMIT_SECONDS",
    "STORE_DUPLICATES",
    "STORE_ROWS",
    "STORE_SINK_FAILED",
    "STORE_SINK_FAILURES",
    "STORE_SINK_PENDING",
    "STORE_UNTYPED_VALUES",
    "SUB_CALLS",
    "SUB_CALL_BATCH_SIZE",
    "TOPIC_CALLS",
    "TOPIC_MAP_INFO",
    "TOPIC_REFITS",
    "TOPIC_WATCH_LATE",
    "TOPIC_WINDOWS_CHECKED",
    "TOPOLOGY_BATCH_SECONDS",
    "TOPOLOGY_CALLS",
    "TOPOLOGY_INFO",
    "TOPOLOGY_REGISTERED",
    "UNREADABLE_RECORDS",
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
    "a call), duplicate (a redelivery of a held half or of a call already forwarded), "
    "conflict (a different call under an id already forwarded: dead-lettered), "
    "dead_letter.",
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
MERGE_CONFLICTS = Counter(
    "weave_stream_merge_conflicts_total",
    "Fields on which the start and end events of a call disagreed, by field (the merged "
    "call keeps one value and notes both in attributes.weave_stream.merge_conflicts).",
    ["field"],
    registry=REGISTRY,
)
NON_FINITE_NUMBERS = Counter(
    "weave_stream_non_finite_numbers_total",
    "NaN, Infinity and out-of-range numbers in ingested records, replaced by null (their "
    "paths are noted in the call's attributes.weave_stream.non_finite_numbers).",
    registry=REGISTRY,
)
INGEST_DEDUPE_IDS = Gauge(
    "weave_stream_ingest_dedupe_ids",
    "Call ids held in the ingest dedupe windows of this worker (bounded by "
    "dedupe_window_calls per partition).",
    registry=REGISTRY,
)
COLLECTOR_CALLS = Counter(
    "weave_stream_collector_calls_total",
    "Call records the collector put on the calls topic (acknowledged by Kafka), by "
    "source: complete, start, end (the trace-server API) or otlp (spans).",
    ["source"],
    registry=REGISTRY,
)
COLLECTOR_REQUESTS = Counter(
    "weave_stream_collector_requests_total",
    "Requests the collector answered, by endpoint and HTTP status.",
    ["endpoint", "status"],
    registry=REGISTRY,
)
COLLECTOR_REFUSED = Counter(
    "weave_stream_collector_refused_total",
    "Requests the collector refused, by reason: kafka_unavailable (503), unauthorized "
    "(401), not_loopback (403), too_large (413), bad_request (400).",
    ["reason"],
    registry=REGISTRY,
)
COLLECTOR_REQUEST_SECONDS = Histogram(
    "weave_stream_collector_request_seconds",
    "Time from a write request's arrival to its answer (Kafka's acknowledgement included).",
    buckets=(0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0),
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

# Ops and derived columns (labels: op name, not ref, to keep the label set bounded).
OP_BATCH_SECONDS = Histogram(
    "weave_stream_op_batch_seconds",
    "Time of one attempt of an op on one batch of inputs, by op name.",
    ["op"],
    buckets=(0.001, 0.005, 0.01, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0, 60.0),
    registry=REGISTRY,
)
OP_RETRIES = Counter(
    "weave_stream_op_retries_total",
    "Inputs an op was retried on after a retriable failure (timeout, HTTP 429/5xx, "
    "malformed answer), by op name.",
    ["op"],
    registry=REGISTRY,
)
SUB_CALLS = Counter(
    "weave_stream_sub_calls_total",
    "Calls of an op made from inside another op in a run, by the called op's name and "
    "outcome: computed, cached (found in the result cache or shared with an identical "
    "sub-call of the same batch), error.",
    ["op", "outcome"],
    registry=REGISTRY,
)
SUB_CALL_BATCH_SIZE = Histogram(
    "weave_stream_sub_call_batch_size",
    "Inputs per batch an op computed for sub-calls gathered across parents, by op name.",
    ["op"],
    buckets=(1, 2, 4, 8, 16, 32, 64, 128, 256, 512, 1024),
    registry=REGISTRY,
)
JUDGE_TOKENS = Counter(
    "weave_stream_judge_tokens_total",
    "Tokens used by the LLM judge, by model and kind (prompt or completion).",
    ["model", "kind"],
    registry=REGISTRY,
)
# The embedding model (embed and classify ops), wherever it runs: in the process or in
# a worker's model service.
EMBED_MODEL_LOADS = Counter(
    "weave_stream_embed_model_loads_total",
    "Times the embedding model was loaded into memory, by device and precision (one per "
    "process that embeds, or one per worker with the shared model service).",
    ["device", "precision"],
    registry=REGISTRY,
)
EMBED_TEXTS = Counter(
    "weave_stream_embed_texts_total",
    "Texts embedded by the model, by device.",
    ["device"],
    registry=REGISTRY,
)
EMBED_TOKENS = Counter(
    "weave_stream_embed_tokens_total",
    "Tokens through the embedding model, by kind: text (real tokens) or padding (the "
    "waste of a batch of mixed lengths).",
    ["device", "kind"],
    registry=REGISTRY,
)
DERIVED_VALUES = Counter(
    "weave_stream_derived_values_total",
    "Derived values produced, by topology, column and outcome: computed, cached "
    "(found in the result cache), error (the value carries the error), filtered "
    "(the call is outside the column's filter or sample).",
    ["topology", "column", "outcome"],
    registry=REGISTRY,
)

AGGREGATE_ROWS = Counter(
    "weave_stream_aggregate_rows_total",
    "Rows read by windowed aggregates, by outcome: applied (counted once, late or not), "
    "duplicate (every column identity already counted: an at-least-once redelivery).",
    ["topology", "outcome"],
    registry=REGISTRY,
)
AGGREGATE_LATE_ROWS = Counter(
    "weave_stream_aggregate_late_rows_total",
    "Rows not counted in an aggregate because their window had closed (event time older "
    "than the watermark minus the grace period); also reported by the query API.",
    ["topology", "aggregate"],
    registry=REGISTRY,
)
AGGREGATE_BUCKETS = Gauge(
    "weave_stream_aggregate_buckets",
    "Buckets (aggregate x pane x group) held in memory; bounded by retention.",
    ["topology"],
    registry=REGISTRY,
)
AGGREGATE_BATCH_SECONDS = Histogram(
    "weave_stream_aggregate_batch_seconds",
    "Time to fold one micro-batch of rows into the windowed aggregates.",
    buckets=(0.0001, 0.00025, 0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 1.0),
    registry=REGISTRY,
)
# The latest closed window of each aggregate, as this worker's partitions saw it: a worker
# holding some partitions shows their part (sum the rows of every worker; for an exact
# merged mean use the query API). Groups past aggregate_metric_max_groups (by rows) are
# merged into group="_other"; groups absent from the latest window are removed.
AGGREGATE_WINDOW_ROWS = Gauge(
    "weave_stream_aggregate_window_rows",
    "Rows (calls x trials) in the latest closed window of an aggregate, per group "
    '(group keys joined by "/").',
    ["topology", "aggregate", "group"],
    registry=REGISTRY,
)
AGGREGATE_WINDOW_MEAN = Gauge(
    "weave_stream_aggregate_window_mean",
    "Mean of a numeric column in the latest closed window of an aggregate, per group.",
    ["topology", "aggregate", "column", "group"],
    registry=REGISTRY,
)
AGGREGATE_WINDOW_END = Gauge(
    "weave_stream_aggregate_window_end_seconds",
    "End (Unix time) of the latest closed window the window gauges describe.",
    ["topology", "aggregate"],
    registry=REGISTRY,
)


# Drift monitors and alert delivery (labels: topology, monitor, kind and target
# names come from configuration, so the label sets stay bounded).
NOVELTY_DISTANCE = Histogram(
    "weave_stream_novelty_distance",
    "Distance of each scored embedding to its nearest known embedding (L2; for "
    "normalized embeddings 0 = identical, sqrt(2) = orthogonal), by topology and monitor.",
    ["topology", "monitor"],
    buckets=(0.1, 0.2, 0.3, 0.4, 0.5, 0.6, 0.7, 0.8, 0.9, 1.0, 1.1, 1.2, 1.4, 2.0),
    registry=REGISTRY,
)
ALERTS_RAISED = Counter(
    "weave_stream_alerts_raised_total",
    "Alerts raised by monitors, by topology and kind (novel_example, distribution_shift).",
    ["topology", "kind"],
    registry=REGISTRY,
)
ALERTS_GROUPED = Counter(
    "weave_stream_alerts_grouped_total",
    "Findings folded into a grouped alert by the cool-down instead of raising their own "
    "(each is counted in the grouped alert's count), by topology and kind.",
    ["topology", "kind"],
    registry=REGISTRY,
)
MONITOR_LEARNED = Counter(
    "weave_stream_monitor_learned_total",
    "Acknowledged examples offered to a monitor's known set, by outcome: added, evicted "
    "(forgotten to make room), rejected (no room: the known set is full of reference).",
    ["topology", "monitor", "outcome"],
    registry=REGISTRY,
)
INDEX_REBUILDS = Counter(
    "weave_stream_index_rebuilds_total",
    "Vector indexes rebuilt from the reference instead of loaded from their snapshot, by "
    "reason: missing, corrupt (checksum, truncation, unreadable), stale (other reference).",
    ["reason"],
    registry=REGISTRY,
)
ALERTS_DELIVERED = Counter(
    "weave_stream_alerts_delivered_total",
    "Alerts delivered (a 2xx answer), by target.",
    ["target"],
    registry=REGISTRY,
)
ALERT_DELIVERY_FAILURES = Counter(
    "weave_stream_alert_delivery_failures_total",
    "Failed delivery attempts, by target and reason: connect, timeout (including HTTP "
    "408), http_429, http_5xx (all retried), http_4xx (rejected: not retried until "
    "requeued).",
    ["target", "reason"],
    registry=REGISTRY,
)
ALERTS_PENDING = Gauge(
    "weave_stream_alerts_pending",
    "Alerts waiting for delivery to a target (including ones being retried).",
    ["target"],
    registry=REGISTRY,
)


TOPOLOGY_INFO = Gauge(
    "weave_stream_topology_info",
    "Constant 1 per topology a worker computes, labelled with its registered version.",
    ["topology", "version"],
    registry=REGISTRY,
)
TOPOLOGY_CALLS = Counter(
    "weave_stream_topology_calls_total",
    "Valid calls read by a topology's worker (whether or not its source selects them).",
    ["topology"],
    registry=REGISTRY,
)
DERIVED_VALUES_WRITTEN = Counter(
    "weave_stream_derived_values_written_total",
    "Derived values written to their column's topic (re-emitted ones included).",
    ["topology", "column"],
    registry=REGISTRY,
)
TOPOLOGY_BATCH_SECONDS = Histogram(
    "weave_stream_topology_batch_seconds",
    "Time to compute and write the derived values of one micro-batch of calls.",
    ["topology"],
    buckets=(0.001, 0.005, 0.01, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0, 60.0),
    registry=REGISTRY,
)
UNREADABLE_RECORDS = Counter(
    "weave_stream_unreadable_records_total",
    "Records of weave-stream's own topics that could not be decoded (a bug or a "
    "foreign writer), by topic.",
    ["topic"],
    registry=REGISTRY,
)


# Observability of the deployment itself: consumer lag, what is registered, which op
# ref computes each column, and what each column costs.
CONSUMER_LAG = Gauge(
    "weave_stream_consumer_lag",
    "Records of a topic not yet committed by a consumer group (the high-water mark from "
    "Fetch responses minus the committed offset), summed over the partitions this process "
    "is assigned; sum by (group, topic) across workers for the group's lag.",
    ["group", "topic"],
    registry=REGISTRY,
)
TOPOLOGY_REGISTERED = Gauge(
    "weave_stream_topology_registered",
    "Constant 1 per topology in the registry, as a worker's supervisor sees it (whether "
    "or not its topology worker is alive).",
    ["topology"],
    registry=REGISTRY,
)
COLUMN_INFO = Gauge(
    "weave_stream_column_info",
    "Constant 1 per derived column a topology worker computes, labelled with its op name "
    "and op ref (join on topology and column to break other metrics down by op).",
    ["topology", "column", "op", "op_ref"],
    registry=REGISTRY,
)
COMPONENT_FAILURES = Counter(
    "weave_stream_component_failures_total",
    "Failures of a worker's components: an agent that crashed, a topology child process "
    "that exited or reports a failure (crash loops count every time), by component "
    "(ingest, notifier, topology/<name>, topology/<name>/derive, ...).",
    ["component"],
    registry=REGISTRY,
)
COMPONENT_FAILED = Gauge(
    "weave_stream_component_failed",
    "1 while a component of the worker is failed (its /readyz answers 503 with the "
    "reason), 0 once it works again.",
    ["component"],
    registry=REGISTRY,
)
DERIVED_COST_USD = Counter(
    "weave_stream_derived_cost_usd_total",
    "Dollars spent computing (not cached) values of a derived column, by topology and column "
    "(join weave_stream_column_info on topology and column for the op and its ref).",
    ["topology", "column"],
    registry=REGISTRY,
)

# The call store (weave_stream.store) and its sink in every worker.
STORE_ROWS = Counter(
    "weave_stream_store_rows_total",
    "Rows committed to the call store, by table (calls, values, alerts).",
    ["table"],
    registry=REGISTRY,
)
STORE_DUPLICATES = Counter(
    "weave_stream_store_duplicates_total",
    "Records not written because the store already held their identity (a redelivery), by table.",
    ["table"],
    registry=REGISTRY,
)
STORE_UNTYPED_VALUES = Counter(
    "weave_stream_store_untyped_values_total",
    "Derived values that did not fit the typed columns and were kept as JSON.",
    registry=REGISTRY,
)
STORE_COMMITS = Counter(
    "weave_stream_store_commits_total",
    "Delta commits of the store by table and outcome: ok, conflict (retried), fenced "
    "(another writer owns the partition now), failed.",
    ["table", "outcome"],
    registry=REGISTRY,
)
STORE_COMMIT_SECONDS = Histogram(
    "weave_stream_store_commit_seconds",
    "Time to resolve and commit one batch to a store table.",
    ["table"],
    buckets=(0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0),
    registry=REGISTRY,
)
STORE_SINK_FAILURES = Counter(
    "weave_stream_store_sink_failures_total",
    "Batches the store sink could not write (disk full, permissions, object store "
    "down); the sink stops advancing until a retry succeeds.",
    ["table"],
    registry=REGISTRY,
)
STORE_SINK_PENDING = Gauge(
    "weave_stream_store_sink_pending_records",
    "Records read by the store sink and not yet committed.",
    registry=REGISTRY,
)
STORE_SINK_FAILED = Gauge(
    "weave_stream_store_sink_failed",
    "1 while the store sink is stopped by a write error, else 0.",
    registry=REGISTRY,
)
HOLES_HEALED = Counter(
    "weave_stream_holes_healed_total",
    "Partitions read again from an offset no agent processed while later ones were (a "
    "record the consumer dropped; its commits were held there, nothing lost).",
    ["topic"],
    registry=REGISTRY,
)
RECONCILE_CALLS_CHECKED = Counter(
    "weave_stream_reconcile_calls_checked_total",
    "Valid calls a topology worker's reconciler checked for missing derived values (calls "
    "its topology processed, after the settle time).",
    ["topology"],
    registry=REGISTRY,
)
RECONCILE_MISSING = Counter(
    "weave_stream_reconcile_missing_values_total",
    "Derived values the reconciler found missing: calls the topology selected and "
    "processed (committed) with no value written for a column. Each one is a loss the "
    "stream made; the reconciler recomputes it.",
    ["topology", "column"],
    registry=REGISTRY,
)
RECONCILE_REPAIRED = Counter(
    "weave_stream_reconcile_repaired_values_total",
    "Missing derived values the reconciler computed and wrote (through the backfill path).",
    ["topology", "column"],
    registry=REGISTRY,
)
RECONCILE_FAILURES = Counter(
    "weave_stream_reconcile_failures_total",
    "Reconciliation passes that failed (broker unreachable, an op raising); the calls stay "
    "unchecked and the next pass tries again.",
    ["topology"],
    registry=REGISTRY,
)
RECONCILE_CHECKED_UNTIL = Gauge(
    "weave_stream_reconcile_checked_until_timestamp_seconds",
    "Unix time of the newest call the reconciler has checked on this worker's partitions.",
    ["topology"],
    registry=REGISTRY,
)

# Datasets "from now on" (weave_stream.datasets.apply), applied by the store sink.
DATASET_CANDIDATES = Counter(
    "weave_stream_dataset_candidates_total",
    "Calls a topology's datasets: rule matched, by dataset and outcome: added, duplicate "
    "(the call is in the dataset already: a replay), capped (the period's cap was reached), "
    "refused (the dataset remembers another mapping; logged).",
    ["dataset", "outcome"],
    registry=REGISTRY,
)

# Topics (weave_stream.topic_maps) on the stream: a topology's topics: entries.
TOPIC_CALLS = Counter(
    "weave_stream_topic_calls_total",
    "Calls the topic column assigned, by topology, column and topic name ('outlier' beyond "
    "every topic's radius; 'none' while no map is fitted): the dashboard's topic mix.",
    ["topology", "column", "topic"],
    registry=REGISTRY,
)
TOPIC_MAP_INFO = Gauge(
    "weave_stream_topic_map_info",
    "1 for the topic map a topic column assigns with (its ref), per topology and column.",
    ["topology", "column", "map"],
    registry=REGISTRY,
)
TOPIC_REFITS = Counter(
    "weave_stream_topic_refits_total",
    "Scheduled refits of a topic map, by outcome: fitted, unchanged, skipped (frozen), "
    "failed (the map stays the previous one; the worker's health says why).",
    ["topology", "column", "outcome"],
    registry=REGISTRY,
)
TOPIC_WATCH_LATE = Counter(
    "weave_stream_topic_watch_late_total",
    "Assigned calls that came after their window's topic_shift / new_topic check: "
    "counted here, not checked (raise the watch's grace if this grows).",
    ["topology", "column"],
    registry=REGISTRY,
)
TOPIC_WINDOWS_CHECKED = Counter(
    "weave_stream_topic_windows_checked_total",
    "Windows of assigned calls checked for topic_shift / new_topic alerts (each once, "
    "with a topic map to check against).",
    ["topology", "column"],
    registry=REGISTRY,
)


def render(children: Iterable[str] = ()) -> bytes:
    """This process's metrics in Prometheus's text format, merged with ``children``'s.

    ``children`` are expositions of the worker's child processes (one per topology):
    samples with the same name and labels are summed, so one scrape of a worker
    covers everything it runs.
    """
    texts = list(children)
    if not texts:
        return generate_latest(REGISTRY)
    merged = _Merged()
    merged.add(generate_latest(REGISTRY).decode())
    for text in texts:
        merged.add(text)
    registry = CollectorRegistry(auto_describe=False)
    registry.register(merged)
    return generate_latest(registry)


class _Merged(Collector):
    """Metric families parsed from several expositions, samples summed by name and labels."""

    def __init__(self) -> None:
        self.families: dict[str, Metric] = {}
        self.values: dict[str, dict[tuple[str, tuple[tuple[str, str], ...]], float]] = {}

    def add(self, text: str) -> None:
        for family in text_string_to_metric_families(text):
            if family.name not in self.families:
                self.families[family.name] = Metric(family.name, family.documentation, family.type)
                self.values[family.name] = {}
            values = self.values[family.name]
            for sample in family.samples:
                key = (sample.name, tuple(sorted(sample.labels.items())))
                values[key] = values.get(key, 0.0) + sample.value

    def collect(self) -> Iterator[Metric]:
        for name, family in self.families.items():
            family.samples = [
                Sample(sample_name, dict(labels), value)
                for (sample_name, labels), value in self.values[name].items()
            ]
            yield family
