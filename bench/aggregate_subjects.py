"""The subjects of bench/aggregate.py: Faust apps run in a fresh process each, and the Quix app.

Every subject computes, per group (``attributes.model`` / ``attributes.env``) and
window, the count, mean, standard deviation and p90 of the call's duration and the
sum of its prompt tokens. The naive Faust and the Quix subjects keep the same state
per window: moments plus a DDSketch-style histogram (log buckets of relative accuracy
1 %) in a plain dict, updated once per event.
"""

from __future__ import annotations

import asyncio
import json
import math
import os
import signal
import tempfile
import time
import uuid
from collections.abc import AsyncIterator
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any

GROUP_BY = ["attributes.model", "attributes.env"]
METRICS = {
    "duration_seconds": ["count", "mean", "std", "p90"],
    "summary.usage.gpt-4o-mini.prompt_tokens": ["sum"],
}
GAMMA_LOG = math.log((1 + 0.01) / (1 - 0.01))


def fold(state: dict[str, Any], value: dict[str, Any]) -> dict[str, Any]:
    """One event into a window's state, the plain way (moments, tokens, log-bucket histogram)."""
    started = datetime.fromisoformat(value["started_at"]).timestamp()
    duration = datetime.fromisoformat(value["ended_at"]).timestamp() - started
    usage = value.get("summary", {}).get("usage", {}).get("gpt-4o-mini", {})
    histogram = dict(state.get("h") or {})
    bucket = str(math.ceil(math.log(duration) / GAMMA_LOG)) if duration > 0 else "0"
    histogram[bucket] = histogram.get(bucket, 0) + 1
    return {
        "n": state.get("n", 0) + 1,
        "s": state.get("s", 0.0) + duration,
        "ss": state.get("ss", 0.0) + duration * duration,
        "t": state.get("t", 0) + usage.get("prompt_tokens", 0),
        "h": histogram,
    }


def run_faust_subject(subject: str, broker: str, prefix: str, calls: int, out: Path) -> None:
    """In a worker process: run one Faust subject until ``calls`` events, write its rate."""
    import faust

    from weave_stream import metrics
    from weave_stream.config import load_settings
    from weave_stream.runners.streaming.app import create_app, run_worker
    from weave_stream.runners.streaming.topology_app import create_topology_app
    from weave_stream.topology.loader import topology_from_dict

    settings = load_settings(
        env={},
        broker=broker,
        broker_kind="embedded",
        topic_prefix=prefix,
        partitions=4,
        web_port=0,
        data_dir=tempfile.mkdtemp(prefix="bench-aggregate-"),
        log_level="warning",
    )
    run_id = uuid.uuid4().hex[:8]
    counted = [0]

    def seen() -> int:
        return counted[0]

    if subject == "aggregate":
        name = f"bench_aggregate_{run_id}"
        topology = topology_from_dict(
            {
                "name": name,
                "source": {"op_name": "text-extract"},
                "aggregates": [
                    {
                        "name": "latency",
                        "window": {"size": "1h", "step": "5m"},
                        "grace": "10m",
                        "retention": "30d",
                        "group_by": GROUP_BY,
                        "metrics": METRICS,
                    }
                ],
            }
        )
        app = create_topology_app(settings, topology, "bench")
        applied = metrics.AGGREGATE_ROWS.labels(name, "applied")

        def seen() -> int:
            return int(applied._value.get())

    else:
        app = create_app(settings, app_id=f"bench-{subject}-{run_id}")
        source = app.topic(settings.topics.valid, key_serializer="raw", value_serializer="raw")
        if subject == "bare":

            @app.agent(source)
            async def count(stream: faust.StreamT[bytes]) -> None:
                async for _ in stream:
                    counted[0] += 1

        elif subject == "manual":  # events acked by hand once per batch

            @app.agent(source)
            async def count_manual(stream: faust.StreamT[bytes]) -> None:
                held: list[Any] = []
                async for event in stream.noack().events():
                    held.append(event)
                    if len(held) >= settings.batch_size:
                        counted[0] += len(held)
                        for e in held:
                            e.ack()
                        held.clear()

        elif subject == "take":  # the bare agent over take_events batches, as topologies read

            @app.agent(source)
            async def count_batches(stream: faust.StreamT[bytes]) -> AsyncIterator[None]:
                batches = stream.take_events(  # type: ignore[attr-defined]
                    settings.batch_size, settings.batch_max_wait_seconds
                )
                async for events in batches:
                    counted[0] += len(events)
                    yield None

        else:
            clock = [0.0]
            panes = app.Table("naive", default=dict, partitions=4)
            windowed = panes.tumbling(300, expires=timedelta(days=30)).relative_to(
                lambda event: clock[0]
            )

            @app.agent(source)
            async def aggregate(stream: faust.StreamT[bytes]) -> None:
                async for raw in stream:
                    value = json.loads(raw)
                    clock[0] = datetime.fromisoformat(value["started_at"]).timestamp()
                    attributes = value["attributes"]
                    key = f"{attributes['model']}/{attributes['env']}"
                    windowed[key] = fold(windowed[key].value(), value)
                    counted[0] += 1

    @app.task
    async def watch() -> None:
        first = last = cpu_first = cpu_last = 0.0
        while True:
            n = seen()
            now = time.perf_counter()
            if n and not first:
                first, cpu_first = now, time.process_time()
            if n >= calls:
                last, cpu_last = now, time.process_time()
                break
            await asyncio.sleep(0.002)
        # CPU time of the whole process (every thread) per event: steadier than the rate
        # on a shared machine.
        cpu_us = (cpu_last - cpu_first) / (calls - 1) * 1e6
        out.write_text(json.dumps({"rate": (calls - 1) / (last - first), "cpu_us": cpu_us}))
        os.kill(os.getpid(), signal.SIGTERM)

    run_worker(settings, app)


QUIX_APP = """
import json, math, sys, time, uuid
from datetime import datetime
from quixstreams import Application

address, topic_name, calls, out, state_dir, mode = sys.argv[1:7]
calls = int(calls)
GAMMA_LOG = math.log((1 + 0.01) / (1 - 0.01))
app = Application(
    broker_address=address,
    consumer_group=f"bench-quix-{uuid.uuid4().hex[:8]}",
    auto_offset_reset="earliest",
    state_dir=state_dir,
    consumer_extra_config={"session.timeout.ms": 6000},
    loglevel="WARNING",
)

def started(value, headers, timestamp, timestamp_type):
    return int(datetime.fromisoformat(value["started_at"]).timestamp() * 1000)

def fold(state, value):
    started = datetime.fromisoformat(value["started_at"]).timestamp()
    duration = datetime.fromisoformat(value["ended_at"]).timestamp() - started
    usage = value.get("summary", {}).get("usage", {}).get("gpt-4o-mini", {})
    histogram = dict(state.get("h") or {})
    bucket = str(math.ceil(math.log(duration) / GAMMA_LOG)) if duration > 0 else "0"
    histogram[bucket] = histogram.get(bucket, 0) + 1
    return {"n": state.get("n", 0) + 1, "s": state.get("s", 0.0) + duration,
            "ss": state.get("ss", 0.0) + duration * duration,
            "t": state.get("t", 0) + usage.get("prompt_tokens", 0), "h": histogram}

seen = {"n": 0, "first": 0.0, "last": 0.0, "cpu_first": 0.0, "cpu_last": 0.0}

def count(value):
    seen["n"] += 1
    if seen["n"] == 1:
        seen["first"], seen["cpu_first"] = time.perf_counter(), time.process_time()
    if seen["n"] == calls:
        seen["last"], seen["cpu_last"] = time.perf_counter(), time.process_time()
        app.stop()

topic = app.topic(topic_name, value_deserializer="json", timestamp_extractor=started)
sdf = app.dataframe(topic)
sdf = sdf.group_by(lambda v: v["attributes"]["model"] + "/" + v["attributes"]["env"], name="grp")
sdf = sdf.update(count)
if mode == "hopping":  # the same aggregation: every 1 h window holding the event
    sdf = sdf.hopping_window(duration_ms=3_600_000, step_ms=300_000, grace_ms=600_000)
else:  # 5-minute panes only (windows would be merged at query time, as weave-stream does)
    sdf = sdf.tumbling_window(duration_ms=300_000, grace_ms=600_000)
sdf = sdf.reduce(fold, lambda value: fold({}, value)).final()
app.run()
with open(out, "w") as handle:
    json.dump({"rate": (calls - 1) / (seen["last"] - seen["first"]),
               "cpu_us": (seen["cpu_last"] - seen["cpu_first"]) / (calls - 1) * 1e6}, handle)
"""
