"""Drift monitors on the stream: reference, novelty column, shift detection, alerts.

For each ``monitors:`` entry of a topology, the topology worker

1. after each micro-batch, writes an *observation* (call id, embedding, event time,
   group, text excerpt) of every call with a value in the monitor's embedding column
   to ``<prefix>.monitor.<topology>.<monitor>``: a topic of **one partition**, so one
   worker of the group holds the monitor — a global order, one reference, exact
   storm grouping and shift windows (FAISS scores ~7 k lookups/s at 1 M references,
   far above what the embedding model feeds it);
   with the source partition, and after each micro-batch a *progress* record (this
   source partition has been read up to this event time);
2. the agent on that topic first gathers the reference (the first N calls in call
   order, a time range, or the calls of a JSONL file embedded with the column's op):
   it keeps every observation, and chooses once every source partition has passed
   the N-th call's time or the range's end (or, bounded, after as many calls again;
   see drift/reference.py), logging how it chose. Gathered observations live on the
   compacted ``<prefix>.reference.<topology>.<monitor>`` (the ones not chosen are
   then deleted, and a ``__complete__`` record says how it chose); every worker that
   takes the monitor over rebuilds it from there, or loads the snapshot in its data
   dir (a missing or corrupt snapshot is rebuilt, never fatal). The calls gathered
   but not chosen are scored once the monitor is built;
3. then scores every observation in call order (held until every source partition
   has passed it, or went idle: ``CallOrderBuffer`` in drift/reference.py), so the
   shift test sees calls as they were made (batched FAISS search, off the event loop): the
   novelty value goes to the derived column ``<prefix>.derived.<topology>.<monitor>``
   with the nearest known call's id, and findings (``novel_example``,
   ``distribution_shift``), grouped per cool-down, go to ``<prefix>.alerts``;
4. a timer releases grouped findings whose cool-down ended.

Acknowledged novel examples (``weave-stream alerts --ack``) reach the monitor on
its observation topic, in order with the observations (``{"ack": [call ids]}``),
and join the known set if the learning policy says so; they live in the monitor's
snapshot (a worker that rebuilds from the reference topic starts without them).
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import AsyncIterator, Sequence
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import faust
import numpy as np
import orjson

from weave_stream.broker.kafka import ensure_topics, read_topic
from weave_stream.columns.derive import DerivedValue
from weave_stream.columns.values import derived_key
from weave_stream.config import Settings
from weave_stream.drift.findings import Finding
from weave_stream.drift.monitor import DriftMonitor
from weave_stream.drift.observation import (
    Observation,
    decode_observation,
    decode_progress,
    encode_observation,
    encode_progress,
    observation_from_call,
)
from weave_stream.drift.reference import (
    CallOrderBuffer,
    ReferenceCollector,
    read_reference_calls,
    reference_fingerprint,
)
from weave_stream.ingest.call import Call
from weave_stream.metrics import DERIVED_VALUES_WRITTEN
from weave_stream.notify.alerts import Alert
from weave_stream.ops.execute import run_op
from weave_stream.runners.streaming.health import HEALTH, watched_agent
from weave_stream.runners.streaming.sink import OutgoingRecord, RecordSink
from weave_stream.topology.monitors import JsonlReference, Monitor
from weave_stream.topology.spec import Topology

__all__ = ["MonitorHook", "monitor_topics", "register_monitors"]

log = logging.getLogger(__name__)


def monitor_topics(settings: Settings, topology: Topology) -> list[str]:
    """The one-partition observation topics of the topology's monitors."""
    return [settings.topics.observations(topology.name, spec.name) for spec in topology.monitors]


class MonitorHook:
    """What the derive agent calls after each micro-batch: observations to the monitors."""

    def __init__(self, settings: Settings, topology: Topology, specs: Sequence[Monitor]):
        self.settings = settings
        self.topology = topology
        self.specs = list(specs)

    async def offer(
        self,
        sink: RecordSink,
        calls: Sequence[Call],
        values: Sequence[DerivedValue],
        partitions: dict[str, int] | None = None,
    ) -> None:
        """Observations of ``values`` of the monitors' columns, then the batch's progress.

        ``partitions`` maps call ids to their source partition.
        """
        by_call = {call.id: call for call in calls}
        partitions = partitions or {}
        progress: dict[int, datetime] = {}
        for call in calls:
            partition = partitions.get(call.id)
            when = call.started_at or call.ended_at
            if partition is not None and when is not None:
                progress[partition] = max(progress.get(partition, when), when)
        for spec in self.specs:
            records = []
            for value in values:
                if value.column != spec.column or value.error is not None or value.trial != 0:
                    continue
                known = by_call.get(value.call_id)
                if known is None or not isinstance(value.value, list):
                    continue
                seen = observation_from_call(
                    known, np.asarray(value.value, np.float32), spec, partitions.get(known.id)
                )
                records.append(OutgoingRecord(known.id.encode(), encode_observation(seen)))
            records += [
                OutgoingRecord(b"__progress__", encode_progress(partition, when))
                for partition, when in sorted(progress.items())
            ]
            if records:
                topic = self.settings.topics.observations(self.topology.name, spec.name)
                await sink.write(topic, records)


def register_monitors(
    app: faust.App, settings: Settings, topology: Topology, sink: RecordSink
) -> MonitorHook | None:
    """Declare each monitor's agent and timer on ``app``; the hook for the derive agent."""
    specs = topology.monitors
    if not specs:
        return None
    monitors: dict[str, _MonitorRunner] = {}
    for spec in specs:
        runner = _MonitorRunner(settings, topology, spec, sink)
        monitors[spec.name] = runner
        source = app.topic(
            settings.topics.observations(topology.name, spec.name),
            key_serializer="raw",
            value_serializer="raw",
            partitions=1,
        )
        name = watched_agent(f"{topology.name}-monitor-{spec.name}", runner.component)
        app.agent(source, name=name)(runner.agent)

    @app.timer(interval=1.0)
    async def release_grouped_findings() -> None:
        for runner in monitors.values():
            await runner.flush()

    return MonitorHook(settings, topology, specs)


class _MonitorRunner:
    """One monitor in one worker: its reference, its DriftMonitor once built, its outputs."""

    def __init__(
        self, settings: Settings, topology: Topology, spec: Monitor, sink: RecordSink
    ) -> None:
        self.settings, self.topology, self.spec, self.sink = settings, topology, spec, sink
        self.collector = ReferenceCollector(spec.reference, partitions=settings.partitions)
        self.monitor: DriftMonitor | None = None
        self.gathered: dict[str, Observation] = {}  # seen before the reference was chosen
        self.last_arrival = time.monotonic()
        self.in_order = CallOrderBuffer(settings.partitions, idle_seconds=_IDLE_PARTITION_SECONDS)
        self.directory = monitor_snapshot_dir(settings, topology.name, spec.name)
        self.fingerprint = ""
        self.reference_topic = settings.topics.reference(topology.name, spec.name)
        self.values_topic = settings.topics.derived(topology.name, spec.name)
        self.op_ref = f"monitor:{spec.name}"
        self.component = f"topology/{topology.name}/monitor/{spec.name}"
        self._started = False

    async def agent(self, stream: faust.StreamT[bytes]) -> AsyncIterator[None]:
        batches = stream.take_events(  # type: ignore[attr-defined]  # missing from StreamT
            self.settings.batch_size, self.settings.batch_max_wait_seconds
        )
        HEALTH.running(self.component)
        async for events in batches:
            if not self._started:
                await self._start()
            observations: list[Observation] = []
            for event in events:
                data = event.message.value or b""
                if data.startswith(b'{"ack"'):
                    await self.process(observations)  # keep the order: earlier ones first
                    observations = []
                    await self.acknowledge(orjson.loads(data)["ack"])
                elif data.startswith(b'{"progress"'):
                    self.last_arrival = time.monotonic()
                    partition, when = decode_progress(data)
                    if self.monitor is None:
                        self.collector.progress(partition, when)
                    else:
                        self.in_order.progress(partition, when, now=self.last_arrival)
                else:
                    observations.append(decode_observation(data))
            await self.process(observations)
            HEALTH.ok(self.component)
            yield None

    async def _start(self) -> None:
        """Restore the reference gathered so far (or load the file); build if complete."""
        await ensure_topics(self.settings, [self.reference_topic], {"cleanup.policy": "compact"})
        how = None
        async for record in read_topic(self.settings, self.reference_topic):
            key = record.key or b""
            if key == _COMPLETE:
                how = orjson.loads(record.value or b"{}").get("how", "")
            elif not record.value:
                self.gathered.pop(key.decode(), None)  # a call gathered, then not chosen
            else:
                seen = decode_observation(record.value)
                self.gathered[seen.call_id] = seen
        for seen in sorted(self.gathered.values(), key=lambda o: (o.time, o.call_id)):
            self.collector.offer(seen.call_id, seen.vector, seen.time, seen.partition)
        if how is not None:
            self.collector.restore(list(self.gathered), how)
        if isinstance(self.spec.reference, JsonlReference) and how is None:
            ids, vectors = await self._embed_reference_file(self.spec.reference)
            self.collector.add(ids, vectors)
            now = datetime.now(UTC)
            files = [Observation(i, v, now) for i, v in zip(ids, vectors, strict=True)]
            self.gathered = {seen.call_id: seen for seen in files}
            await self._save_reference(files)
        self._started = True
        if self.collector.is_complete():
            await self._complete(announce=how is None)

    async def _embed_reference_file(self, spec: JsonlReference) -> tuple[list[str], np.ndarray]:
        column = self.topology.column(self.spec.column)
        calls = read_reference_calls(spec, f"topology {self.topology.name!r}")
        arguments = [
            {name: path.resolve(call.to_dict(), {}) for name, path in column.args.items()}
            for call in calls
        ]
        results = await run_op(column.op, arguments)
        good = [(c.id, r.value) for c, r in zip(calls, results, strict=True) if r.error is None]
        return [i for i, _ in good], np.asarray([v for _, v in good], dtype=np.float32)

    async def process(self, observations: list[Observation]) -> None:
        if self.monitor is None:
            self.last_arrival = time.monotonic()
            fresh = [seen for seen in observations if seen.call_id not in self.gathered]
            for seen in fresh:
                self.gathered[seen.call_id] = seen
                self.collector.offer(seen.call_id, seen.vector, seen.time, seen.partition)
            await self._save_reference(fresh)  # durable before the offsets are committed
            if not self.collector.is_complete():
                return  # still gathering: values come once the reference is chosen
            await self._complete(announce=True)
            return
        now = time.monotonic()
        for seen in observations:
            self.in_order.add(seen, now=now)
        await self._score(self.in_order.release(now=now))

    async def _complete(self, *, announce: bool) -> None:
        """Build the monitor from the chosen reference; score the calls not chosen."""
        chosen = set(self.collector.ids)
        rest = [self.gathered[cid] for cid in self.collector.rest() if cid in self.gathered]
        await self._build()
        log.info("monitor %s/%s: reference chosen by %s", self.topology.name, self.spec.name,
                 self.collector.how)  # fmt: skip
        if announce:
            records = [OutgoingRecord(seen.call_id.encode(), None) for seen in rest]
            how = orjson.dumps({"how": self.collector.how})
            await self.sink.write(self.reference_topic, [*records, OutgoingRecord(_COMPLETE, how)])
            await self._write_values(
                [self._value(self.gathered[cid], {"reference": True})
                 for cid in self.collector.ids if cid in self.gathered]
            )  # fmt: skip
        self.gathered = {cid: seen for cid, seen in self.gathered.items() if cid in chosen}
        now = time.monotonic()
        for seen in rest:  # with the calls still to come, in call order
            self.in_order.add(seen, now=now)
        await self._score(self.in_order.release(now=now))

    async def _score(self, observations: list[Observation]) -> None:
        if not observations or self.monitor is None:
            return
        result = await asyncio.to_thread(self.monitor.observe, observations)
        by_id = {seen.call_id: seen for seen in observations}
        await self._write_values(
            [self._value(by_id[score.call_id], score.as_value()) for score in result.scores]
        )
        await self._raise(result.findings)

    async def _build(self) -> None:
        ids, vectors = list(self.collector.ids), self.collector.vectors
        fingerprint = reference_fingerprint(self.spec, ids, self.topology.name)
        self.monitor = await asyncio.to_thread(
            DriftMonitor.open,
            self.topology.name,
            self.spec,
            self.directory,
            fingerprint=fingerprint,
            load_reference=lambda: (ids, vectors),
        )
        await asyncio.to_thread(self.monitor.save, self.directory, fingerprint=fingerprint)
        self.fingerprint = fingerprint
        log.info(
            "monitor %s/%s: index of %d known examples ready",
            self.topology.name,
            self.spec.name,
            len(ids),
        )

    async def _save_reference(self, taken: list[Observation]) -> None:
        if taken:
            records = [OutgoingRecord(s.call_id.encode(), encode_observation(s)) for s in taken]
            await self.sink.write(self.reference_topic, records)

    def _value(self, seen: Observation, value: dict[str, Any]) -> DerivedValue:
        return DerivedValue(
            call_id=seen.call_id,
            topology=self.topology.name,
            column=self.spec.name,
            op_ref=self.op_ref,
            value=value,
            computed_at=datetime.now(UTC),
            started_at=seen.time,
        )

    async def _write_values(self, values: list[DerivedValue]) -> None:
        if values:
            records = [OutgoingRecord(derived_key(v.call_id, v.trial), v.to_json()) for v in values]
            await self.sink.write(self.values_topic, records)
            DERIVED_VALUES_WRITTEN.labels(self.topology.name, self.spec.name).inc(len(records))

    async def _raise(self, findings: Sequence[Finding]) -> None:
        alerts = [Alert.from_finding(self.topology.name, finding) for finding in findings]
        if alerts:
            await self.sink.write(
                self.settings.topics.alerts,
                [OutgoingRecord(alert.id.encode(), alert.to_json()) for alert in alerts],
            )

    async def flush(self) -> None:
        quiet = time.monotonic() - self.last_arrival
        gathering = self.monitor is None and self._started and quiet >= _QUIET_SECONDS
        if gathering and self.collector.settle(f"no call had arrived for {quiet:.0f} s"):
            await self._complete(announce=True)
        if self.monitor is not None:
            await self._score(self.in_order.release(now=time.monotonic()))  # idle partitions
            await self._raise(self.monitor.flush(datetime.now(UTC)))

    async def acknowledge(self, call_ids: list[str]) -> None:
        if self.monitor is not None and call_ids:
            added = self.monitor.acknowledge(call_ids)
            log.info("monitor %s: acknowledged %s (%s)", self.spec.name, call_ids, added)
            await asyncio.to_thread(self.monitor.save, self.directory, fingerprint=self.fingerprint)


_COMPLETE = b"__complete__"
# A gathering reference whose stream was quiet this long is chosen from what arrived.
_QUIET_SECONDS = 10.0
# A source partition silent this long no longer holds back the calls of the others.
_IDLE_PARTITION_SECONDS = 30.0


def monitor_snapshot_dir(settings: Settings, topology: str, monitor: str) -> Path:
    """Where a worker keeps a monitor's index snapshot."""
    return settings.data_dir / "monitors" / topology / monitor
