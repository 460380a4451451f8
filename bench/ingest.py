"""Ingest throughput against the engine's and the transport's limits, in one run.

Subjects, all reading the same pre-filled topic of complete calls on the embedded
broker, interleaved round by round so the ratios hold on a noisy machine:

* ``raw``     aiokafka consumer + ``json.loads`` (the transport's limit);
* ``bare``    a Faust agent that only counts events (the engine's limit);
* ``ingest``  weave-stream's ingest agent: validation, merge buffer, forwarding.

Each Faust subject runs in a fresh worker process with its own consumer group; its
rate is (events - 1) / (time of last event - time of first event).

Run: ``.venv/bin/python bench/ingest.py [--calls 40000] [--rounds 3] [--profile DIR]``
(``--profile`` records each Faust worker with py-spy into DIR).
Figures: ``ingest_vs_bare_faust`` (goal >= 0.8; ``cpu_ratio`` is the same comparison in
CPU time per event, steadier on a shared machine) and ``ingest_vs_raw``.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import signal
import statistics
import subprocess
import sys
import tempfile
import time
import uuid
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))


def make_call(i: int) -> dict[str, object]:
    call_id = f"019a{uuid.UUID(int=i).hex[4:]}"
    return {
        "id": call_id,
        "project_id": "acme/extract",
        "op_name": "weave:///acme/extract/op/text-extract:v3",
        "display_name": "text-extract",
        "trace_id": call_id,
        "parent_id": None,
        "started_at": 1795662000 + i / 100,
        "ended_at": 1795662000.5 + i / 100,
        "attributes": {"model": "gpt-4o-mini", "env": "prod"},
        "inputs": {"document": f"Invoice {i} from ACME Corp for consulting in October."},
        "output": {"vendor": "ACME Corp", "total": i % 997},
        "summary": {"usage": {"gpt-4o-mini": {"prompt_tokens": 120, "completion_tokens": 18}}},
        "exception": None,
    }


async def fill_topic(address: str, topic: str, calls: int, partitions: int) -> None:
    from aiokafka import AIOKafkaProducer
    from aiokafka.admin import AIOKafkaAdminClient, NewTopic

    admin = AIOKafkaAdminClient(bootstrap_servers=address)
    await admin.start()
    await admin.create_topics([NewTopic(topic, partitions, 1)])
    await admin.close()
    producer = AIOKafkaProducer(bootstrap_servers=address, linger_ms=5, max_batch_size=65536)
    await producer.start()
    for i in range(calls):
        call = make_call(i)
        await producer.send(topic, json.dumps(call).encode(), key=str(call["id"]).encode())
    await producer.flush()
    await producer.stop()


async def run_raw(address: str, topic: str, calls: int) -> float:
    from aiokafka import AIOKafkaConsumer

    consumer = AIOKafkaConsumer(
        topic, bootstrap_servers=address, auto_offset_reset="earliest", group_id=None
    )
    await consumer.start()
    seen, first, last = 0, 0.0, 0.0
    while seen < calls:
        batches = await consumer.getmany(timeout_ms=1000, max_records=5000)
        for records in batches.values():
            for record in records:
                json.loads(record.value)
            if records and not first:
                first = time.perf_counter()
            seen += len(records)
        last = time.perf_counter()
    await consumer.stop()
    return (calls - 1) / (last - first)


def run_faust_subject(subject: str, broker: str, prefix: str, calls: int, out: Path) -> None:
    """In a worker process: run one Faust subject until ``calls`` events, write its rate."""
    import faust

    from weave_stream import metrics
    from weave_stream.config import load_settings
    from weave_stream.runners.streaming.app import create_app, run_worker
    from weave_stream.runners.streaming.ingest_agent import register_ingest

    settings = load_settings(
        env={},
        broker=broker,
        broker_kind="embedded",
        topic_prefix=prefix,
        partitions=4,
        web_port=0,
        data_dir=tempfile.mkdtemp(prefix="bench-ingest-"),
    )
    group = f"bench-{subject}-{uuid.uuid4().hex[:8]}"
    app = create_app(settings, app_id=group)
    if subject == "ingest":
        register_ingest(app, settings)
    counted = [0]
    if subject == "bare":
        source = app.topic(settings.topics.calls, key_serializer="raw", value_serializer="raw")

        @app.agent(source)
        async def count(stream: faust.StreamT[bytes]) -> None:
            async for _ in stream:
                counted[0] += 1

        def seen() -> int:
            return counted[0]
    else:

        def seen() -> int:
            return int(sum(s.value for m in metrics.INGEST_RECORDS.collect() for s in m.samples))

    @app.task
    async def watch() -> None:
        first = last = 0.0
        cpu_first = 0.0
        while True:
            n = seen()
            now = time.perf_counter()
            if n and not first:
                first, cpu_first = now, time.process_time()
            if n >= calls:
                last = now
                break
            await asyncio.sleep(0.002)
        cpu_us = (time.process_time() - cpu_first) / (calls - 1) * 1e6
        out.write_text(json.dumps({"rate": (calls - 1) / (last - first), "cpu_us": cpu_us}))
        os.kill(os.getpid(), signal.SIGTERM)

    run_worker(settings.model_copy(update={"log_level": "warning"}), app)


def faust_rate(
    subject: str, broker: str, prefix: str, calls: int, profile: Path | None = None
) -> tuple[float, float]:
    """(events/s, CPU µs per event: the whole worker process, first to last event)."""
    with tempfile.TemporaryDirectory() as tmp:
        out = Path(tmp) / "rate.json"
        command = [sys.executable, __file__, "--subject", subject, "--broker", broker]
        command += ["--prefix", prefix, "--calls", str(calls), "--out", str(out)]
        if profile is not None:
            py_spy = Path(sys.executable).with_name("py-spy")
            profile.mkdir(parents=True, exist_ok=True)
            target = profile / f"{subject}-{uuid.uuid4().hex[:6]}.txt"
            command = [str(py_spy), "record", "--format", "raw", "-o", str(target), "--", *command]
        subprocess.run(command, check=True, timeout=600, stdout=subprocess.DEVNULL)
        found = json.loads(out.read_text())
        return float(found["rate"]), float(found["cpu_us"])


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--calls", type=int, default=40_000)
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--subject", choices=["bare", "ingest"])
    parser.add_argument("--broker")
    parser.add_argument("--prefix")
    parser.add_argument("--out", type=Path)
    parser.add_argument("--profile", type=Path, help="py-spy each Faust worker into DIR")
    args = parser.parse_args()
    if args.subject:
        run_faust_subject(args.subject, args.broker, args.prefix, args.calls, args.out)
        return

    from weave_stream.broker.embedded import EmbeddedBroker

    prefix = f"bench{uuid.uuid4().hex[:6]}"
    rates: dict[str, list[float]] = {"raw": [], "bare": [], "ingest": []}
    cpu: dict[str, list[float]] = {"bare": [], "ingest": []}
    with EmbeddedBroker() as broker:
        asyncio.run(fill_topic(broker.address, f"{prefix}.calls", args.calls, 4))
        for round_ in range(args.rounds):
            rates["raw"].append(asyncio.run(run_raw(broker.address, f"{prefix}.calls", args.calls)))
            for subject in ("bare", "ingest"):
                rate, cpu_us = faust_rate(subject, broker.url, prefix, args.calls, args.profile)
                rates[subject].append(rate)
                cpu[subject].append(cpu_us)
            print(
                f"round {round_ + 1}: " + ", ".join(f"{k} {v[-1]:,.0f}/s" for k, v in rates.items())
            )
    median = {k: statistics.median(v) for k, v in rates.items()}
    print()
    cpu_median = {k: statistics.median(v) for k, v in cpu.items()}
    print(f"{'subject':<10}{'events/s (median)':>20}{'CPU µs/event':>15}{'rounds':>40}")
    for subject, values in rates.items():
        shown = ", ".join(f"{v:,.0f}" for v in values)
        used = f"{cpu_median[subject]:.1f}" if subject in cpu_median else "-"
        print(f"{subject:<10}{median[subject]:>20,.0f}{used:>15}{shown:>40}")
    print(
        "(CPU: the worker process, every thread, first to last event: steadier on a busy machine)"
    )
    print()
    for name, baseline in (("ingest_vs_bare_faust", "bare"), ("ingest_vs_raw", "raw")):
        figure = {
            "bench": name,
            "value": round(median["ingest"]),
            "baseline": round(median[baseline]),
            "ratio": round(median["ingest"] / median[baseline], 3),
        }
        if baseline in cpu_median:
            figure["cpu_ratio"] = round(cpu_median[baseline] / cpu_median["ingest"], 3)
        print(json.dumps(figure))


if __name__ == "__main__":
    main()
