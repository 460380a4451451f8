"""Drift monitors on the stream: reference, novelty column, shift detection, alerts.

For each ``monitors:`` entry of a topology, the topology worker

1. after each micro-batch, writes an *observation* (call id, embedding, event time,
   group, text excerpt) of every call with a value in the monitor's embedding column
   to ``<prefix>.monitor.<topology>.<monitor>``: a topic of **one partition**, so one
   worker of the group holds the monitor — a global order, one reference, exact
   storm grouping and shift windows (FAISS scores ~7 k lookups/s at 1 M references,
   far above what the embedding model feeds it);
2. the agent on that topic first gathers the reference (the first N observations, a
   time range, or the calls of a JSONL file embedded with the column's op) into the
   compacted ``<prefix>.reference.<topology>.<monitor>``; every worker that takes the
   monitor over rebuilds it from there, or loads the snapshot in its data dir (a
   missing or corrupt snapshot is rebuilt, never fatal);
3. then scores every observation (batched FAISS search, off the event loop): the
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
    encode_observation,
    observation_from_call,
)
from weave_stream.drift.reference import (
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
        self, sink: RecordSink, calls: Sequence[Call], values: Sequence[DerivedValue]
    ) -> None:
        by_call = {call.id: call for call in calls}
        for spec in self.specs:
            records = []
            for value in values:
                if value.column != spec.column or value.error is not None or value.trial != 0:
                    continue
                call = by_call.get(value.call_id)
                if call is None or not isinstance(value.value, list):
                    continue
                seen = observation_from_call(call, np.asarray(value.value, np.float32), spec)
                records.append(OutgoingRecord(call.id.encode(), encode_observation(seen)))
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
        self.collector = ReferenceCollector(spec.reference)
        self.monitor: DriftMonitor | None = None
        self.watermark: datetime | None = None
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
                else:
                    observations.append(decode_observation(data))
            await self.process(observations)
            HEALTH.ok(self.component)
            yield None

    async def _start(self) -> None:
        """Restore the reference gathered so far (or load the file); build if complete."""
        await ensure_topics(self.settings, [self.reference_topic], {"cleanup.policy": "compact"})
        async for record in read_topic(self.settings, self.reference_topic):
            if record.value:
                seen = decode_observation(record.value)
                self.collector.offer(seen.call_id, seen.vector, seen.time)
        if isinstance(self.spec.reference, JsonlReference) and not self.collector.ids:
            ids, vectors = await self._embed_reference_file(self.spec.reference)
            self.collector.add(ids, vectors)
            await self._save_reference(
                [Observation(i, v, datetime.now(UTC)) for i, v in zip(ids, vectors, strict=True)]
            )
        elif isinstance(self.spec.reference, JsonlReference):
            self.collector.add([], np.empty((0, 384), np.float32))
        self._started = True
        if self.collector.is_complete(self.watermark):
            await self._build()

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
        if not observations:
            return
        values: list[DerivedValue] = []
        if self.monitor is None:
            taken = []
            for seen in observations:
                self.watermark = max(self.watermark or seen.time, seen.time)
                if self.monitor is None and self.collector.offer(
                    seen.call_id, seen.vector, seen.time
                ):
                    taken.append(seen)
                    values.append(self._value(seen, {"reference": True}))
            await self._save_reference(taken)
            if self.collector.is_complete(self.watermark):
                await self._build()
            chosen = {seen.call_id for seen in taken}
            observations = [s for s in observations if s.call_id not in chosen]
            if self.monitor is None:  # still gathering: not part of it and not scored
                values += [
                    self._value(s, {"reference": False, "scored": False}) for s in observations
                ]
                observations = []
        if observations and self.monitor is not None:
            result = await asyncio.to_thread(self.monitor.observe, observations)
            by_id = {seen.call_id: seen for seen in observations}
            values += [
                self._value(by_id[score.call_id], score.as_value()) for score in result.scores
            ]
            await self._raise(result.findings)
        await self._write_values(values)

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
        if self.monitor is not None:
            await self._raise(self.monitor.flush(datetime.now(UTC)))

    async def acknowledge(self, call_ids: list[str]) -> None:
        if self.monitor is not None and call_ids:
            added = self.monitor.acknowledge(call_ids)
            log.info("monitor %s: acknowledged %s (%s)", self.spec.name, call_ids, added)
            await asyncio.to_thread(self.monitor.save, self.directory, fingerprint=self.fingerprint)


def monitor_snapshot_dir(settings: Settings, topology: str, monitor: str) -> Path:
    """Where a worker keeps a monitor's index snapshot."""
    return settings.data_dir / "monitors" / topology / monitor
