"""One registered topology as a Faust app: valid calls → derived values, effectively once.

Each topology runs in its own worker process and consumer group
(``weave-stream.<prefix>.topology.<name>``): its own offsets, its own lag, its own
pace, so a slow op in one topology never stalls another.

Per micro-batch of valid calls (``batch_size``, ``batch_max_wait_seconds``):

1. the result cache, a changelog-backed table keyed by call id (partition-local,
   like the calls) holding ``{cache key: computed value}``, is read for the batch
   (a timer forgets calls older than ``results_retention_seconds``: bounded state);
2. :func:`~weave_stream.columns.derive.derive_batch` computes what is missing, with the
   same keys as the local runner (op ref, input digest, trial);
3. new results go to the table, and Faust's producer is flushed, *before*
4. the values are written to ``<prefix>.derived.<topology>.<column>``, keyed
   ``<call id>/<trial>`` (after the trees of their sub-calls, one record per value, to
   ``<prefix>.subcalls.<topology>``: see :mod:`weave_stream.store.subcalls`), and the
   calls its ``datasets:`` rules keep to ``<prefix>.datasets`` (the store sink adds
   them); then the batch is acknowledged.

A call delivered again (after a crash, or replayed) finds its results in the table
and is re-emitted, not recomputed. Readers count each (call, column, op ref, trial)
once, keeping the first value they see (see :mod:`weave_stream.dedupe`).
"""

from __future__ import annotations

import logging
import time
from collections import defaultdict
from collections.abc import AsyncIterator, Iterable
from typing import Any

import faust

from weave_stream.columns.cache import CachedValue, CacheKey, MemoryCache
from weave_stream.columns.derive import DerivedValue, derive_batch
from weave_stream.columns.tree import tree_records
from weave_stream.columns.values import derived_key
from weave_stream.config import Settings
from weave_stream.datasets.apply import candidates
from weave_stream.ingest.call import Call, call_from_json
from weave_stream.metrics import (
    COLUMN_INFO,
    DERIVED_VALUES_WRITTEN,
    TOPOLOGY_BATCH_SECONDS,
    TOPOLOGY_CALLS,
    TOPOLOGY_INFO,
    UNREADABLE_RECORDS,
)
from weave_stream.runners.streaming.aggregates import attach_aggregates
from weave_stream.runners.streaming.app import create_app
from weave_stream.runners.streaming.calibration_agent import attach_calibration
from weave_stream.runners.streaming.column_health import ColumnHealth
from weave_stream.runners.streaming.health import HEALTH, watched_agent
from weave_stream.runners.streaming.monitor_agent import register_monitors
from weave_stream.runners.streaming.reconciler import attach_reconciler
from weave_stream.runners.streaming.sink import OutgoingRecord, attach_sink
from weave_stream.runners.streaming.topic_agent import attach_topics, check_windows
from weave_stream.runners.streaming.watchdog import Activity, watch_for_stall
from weave_stream.topology.spec import Topology

__all__ = ["create_topology_app"]

log = logging.getLogger(__name__)


def create_topology_app(settings: Settings, topology: Topology, version: str) -> faust.App:
    """The Faust app that computes ``topology`` (registered as ``version``) on the stream."""
    app = create_app(settings, app_id=settings.topics.topology_group(topology.name))
    topics = settings.topics
    source = app.topic(
        topics.valid, key_serializer="raw", value_serializer="raw", partitions=settings.partitions
    )
    results = app.Table(
        "results",
        default=None,
        partitions=settings.partitions,
        schema=faust.Schema(key_type=str, key_serializer="raw", value_serializer="json"),
        use_partitioner=True,
    )
    sink = attach_sink(app, settings)
    # calibration: {first_n} columns compute uncalibrated until the store holds N calls
    calibration = attach_calibration(app, settings, topology)  # None: no such column
    aggregates = attach_aggregates(app, settings, topology)  # None: no aggregates declared
    monitors = register_monitors(app, settings, topology, sink)  # None: no monitors declared
    topic_watches = attach_topics(app, settings, topology, sink)  # topics: entries
    activity = Activity()
    watch_for_stall(app, settings, topics.valid, activity, settings.stall_seconds)
    # no value missing for long, none silently (repaired with the calibrated op once it is)
    current = (lambda: calibration.topology) if calibration is not None else None
    attach_reconciler(app, settings, topology, current)
    columns = [column.name for column in topology.columns]
    rules = topology.dataset_rules
    if rules:
        app.topic(topics.datasets, partitions=settings.partitions)
    column_topics = {name: topics.derived(topology.name, name) for name in columns}
    for topic in column_topics.values():
        app.topic(topic, partitions=settings.partitions)
    subcalls_topic = topics.subcalls(topology.name)
    app.topic(subcalls_topic, partitions=settings.partitions)
    values_out = DERIVED_VALUES_WRITTEN
    batch_seconds = TOPOLOGY_BATCH_SECONDS.labels(topology.name)
    calls_read = TOPOLOGY_CALLS.labels(topology.name)
    TOPOLOGY_INFO.labels(topology.name, version).set(1)
    followed = {watch.spec.name for watch in topic_watches}  # their watches keep it current
    for compiled in (calibration.topology if calibration else topology).compiled:
        if compiled.name not in followed:
            op = compiled.op
            COLUMN_INFO.labels(topology.name, compiled.name, op.name, op.ref).set(1)

    if aggregates is not None and not topology.compiled:
        aggregates.consume(source, settings)  # aggregate-only: its own light agent
        return app

    component = f"topology/{topology.name}/derive"
    column_health = ColumnHealth(topology.name, skip={entry.name for entry in topology.topics})

    @app.agent(source, name=watched_agent(f"{topology.name}-derive", component))
    async def derive(stream: faust.StreamT[bytes]) -> AsyncIterator[None]:
        HEALTH.running(component)
        batches = stream.take_events(  # type: ignore[attr-defined]  # missing from StreamT
            settings.batch_size, settings.batch_max_wait_seconds
        )
        async for events in batches:
            activity.begin()
            started = time.perf_counter()
            calls = _decode(event.message.value for event in events)
            calls_read.inc(len(events))
            known = {call.id: dict((results.get(call.id) or {}).get("r", {})) for call in calls}
            cache = MemoryCache(max_entries=1_000_000)
            await cache.put_many(
                {
                    _decode_key(encoded): CachedValue.from_json(raw)
                    for entries in known.values()
                    for encoded, raw in entries.items()
                }
            )
            sub_calls: list[DerivedValue] = []
            deriving = calibration.topology if calibration is not None else topology
            values = await derive_batch(deriving, calls, cache, sub_calls=sub_calls)
            column_health.observe(values)  # a column of nothing but errors fails, visibly
            # Sub-calls' results are kept with their call too: a redelivered call whose
            # column op changed still finds what the ops it calls computed.
            fresh = _new_results([*values, *sub_calls], known)
            now = time.time()
            for call_id, entries in fresh.items():
                results[call_id] = {"t": now, "r": {**known[call_id], **entries}}
            if fresh:
                await app.producer.flush()  # results durable before anyone sees the values
            if sub_calls:  # a tree before its value: whoever sees the value can drill down
                trees = [OutgoingRecord(key, raw) for key, raw in tree_records(sub_calls)]
                await sink.write(subcalls_topic, trees)
            by_column: dict[str, list[OutgoingRecord]] = defaultdict(list)
            for value in values:
                by_column[value.column].append(
                    OutgoingRecord(derived_key(value.call_id, value.trial), value.to_json())
                )
            for column, records in by_column.items():
                await sink.write(column_topics[column], records)
                values_out.labels(topology.name, column).inc(len(records))
            kept = candidates(rules, calls, values)  # "from now on" datasets
            if kept:
                await sink.write(
                    topics.datasets,
                    [OutgoingRecord(c.call_id.encode(), c.to_json()) for c in kept],
                )
            if aggregates is not None:
                aggregates.apply(events, values)  # windowed aggregates, per source partition
            if monitors is not None:
                partitions = {
                    (event.message.key or b"").decode(): event.message.partition for event in events
                }
                # embeddings to the drift monitors, with each call's source partition
                await monitors.offer(sink, calls, values, partitions)
            if topic_watches:  # topic mix counted; windows the stream passed are checked
                for watch in topic_watches:
                    watch.observe(calls, values)
                await check_windows(topic_watches, sink, settings)
            batch_seconds.observe(time.perf_counter() - started)
            activity.end()
            HEALTH.ok(component)
            yield None

    @app.timer(interval=min(300.0, max(1.0, settings.results_retention_seconds / 10)))
    async def forget_old_results() -> None:
        """Keep the results table bounded: forget calls not written for the retention."""
        horizon = time.time() - settings.results_retention_seconds
        stale = [call_id for call_id, entry in results.items() if entry["t"] < horizon]
        for call_id in stale:
            del results[call_id]
        if stale:
            log.info("forgot the results of %d calls older than the retention", len(stale))

    return app


def _decode(raws: Iterable[Any]) -> list[Call]:
    calls = []
    for raw in raws:
        try:
            calls.append(call_from_json(raw))
        except ValueError:
            # The ingest agent wrote it, so this is a bug or a foreign writer: say so.
            log.error("skipping a record of the valid-calls topic that is not a call: %r", raw)
            UNREADABLE_RECORDS.labels("calls.valid").inc()
    return calls


def _decode_key(encoded: str) -> CacheKey:
    op_ref, digest, trial = encoded.rsplit("|", 2)
    return CacheKey(op_ref, digest, int(trial))


def _new_results(
    values: list[DerivedValue], known: dict[str, dict[str, Any]]
) -> dict[str, dict[str, str]]:
    """Successful values not yet in the results table, per call, as table entries."""
    fresh: dict[str, dict[str, str]] = defaultdict(dict)
    for value in values:
        if (entry := value.cache_entry()) is None:
            continue
        key = entry[0].encode()
        if key in known.get(value.call_id, {}):
            continue
        fresh[value.call_id][key] = entry[1].to_json().decode()
    return fresh
