"""Windowed aggregates: throughput against Faust's own limit, the naive Faust way and Quix Streams.

All subjects read the same pre-filled topic of valid calls (canonical JSON, 4
partitions) on the embedded broker, interleaved round by round so the ratios hold
on a noisy machine. The aggregation, for every subject: hopping windows of 1 h every
5 min on the call's ``started_at``, grouped by ``attributes.model`` and
``attributes.env`` (6 groups), 5 metrics: count, mean, standard deviation and p90 of
the call's duration, and the sum of its prompt tokens.

* ``bare``       a Faust agent that only counts events (the engine's limit);
* ``aggregate``  weave-stream's topology worker with an aggregate-only topology (no
  columns, so no model): per micro-batch, per source partition, into changelog-backed
  windows (DDSketch quantiles, dedupe, drill-down samples and worst-k included);
* ``naive``      the naive Faust way: per event, one read-modify-write of a windowed
  table keyed by group (5-minute tumbling panes: one update per event; Faust's own
  hopping table would update 12 windows per event);
* ``quix``       the same aggregation written with Quix Streams (``group_by`` on the
  two keys, then ``hopping_window(1h, 5m).reduce()``), run by a separate interpreter:
  quixstreams pins pydantic<2.14 (this project runs 2.14), so it lives in its own
  virtualenv. Without one the figure is reported as not measured, with the command
  that creates it;
* ``quix_panes`` Quix Streams updating only the event's 5-minute pane (a tumbling
  window), the way weave-stream keeps state: Quix's engine cost without the 12 window
  updates per event of its hopping windows.

Each subject runs in a fresh process with its own consumer group; its rate is
(events - 1) / (time of last event - time of first event).

Run: ``.venv/bin/python bench/aggregate.py [--calls 40000] [--rounds 3] [--profile DIR]``
(``--profile`` records each Faust subject's worker with py-spy into DIR).
Figures: ``aggregate_vs_bare_faust`` (goal >= 0.8), ``aggregate_vs_naive_faust``,
``aggregate_vs_quixstreams`` (and ``..._panes``); each also carries ``cpu_ratio``, the
same comparison in CPU time per event (steadier on a shared machine).
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import statistics
import subprocess
import sys
import tempfile
import uuid
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
sys.path.insert(0, str(Path(__file__).resolve().parent))

from aggregate_subjects import QUIX_APP, run_faust_subject
from ingest import make_call

QUIX_PYTHON = Path(
    os.environ.get("WEAVE_STREAM_QUIX_PYTHON", "~/.cache/weave-stream/quix-venv/bin/python")
).expanduser()
QUIX_SETUP = (
    "python3.11 -m venv ~/.cache/weave-stream/quix-venv && "
    "~/.cache/weave-stream/quix-venv/bin/pip install 'quixstreams>=3.28,<4'"
)
MODELS = ("gpt-4o-mini", "gpt-4o", "llama-3-8b")
ENVS = ("prod", "staging")


def bench_call(i: int) -> dict[str, Any]:
    """``make_call`` of bench/ingest.py over 6 groups, 100 calls per second of event time."""
    call = make_call(i)
    call["started_at"] = 1795662000 + i * 0.01  # 100 calls/s of event time
    call["ended_at"] = call["started_at"] + 0.2 + (i * 37 % 1000) / 1000
    call["attributes"] = {"model": MODELS[i % 3], "env": ENVS[(i // 3) % 2]}
    return call


async def fill_topic(address: str, topic: str, calls: int, partitions: int) -> None:
    from aiokafka import AIOKafkaProducer
    from aiokafka.admin import AIOKafkaAdminClient, NewTopic

    from weave_stream.ingest.call import parse_call_object

    admin = AIOKafkaAdminClient(bootstrap_servers=address)
    await admin.start()
    # Quix Streams reads retention configs from the topic; the embedded broker reports
    # none unless they were set at creation (shared/PACKAGES.md).
    configs = {"retention.ms": "-1", "retention.bytes": "-1"}
    await admin.create_topics([NewTopic(topic, partitions, 1, topic_configs=configs)])
    await admin.close()
    producer = AIOKafkaProducer(bootstrap_servers=address, linger_ms=5, max_batch_size=65536)
    await producer.start()
    for i in range(calls):
        call = parse_call_object(bench_call(i))  # canonical JSON, as the ingest agent writes
        await producer.send(topic, call.to_json(), key=call.id.encode())
    await producer.flush()
    await producer.stop()


Measure = tuple[float, float]  # (events/s, CPU µs per event)


def subject_rate(
    subject: str, broker: str, prefix: str, calls: int, profile: Path | None
) -> Measure:
    with tempfile.TemporaryDirectory() as tmp:
        out = Path(tmp) / "rate.json"
        command = [sys.executable, __file__, "--subject", subject, "--broker", broker]
        command += ["--prefix", prefix, "--calls", str(calls), "--out", str(out)]
        if profile is not None:
            py_spy = Path(sys.executable).with_name("py-spy")
            profile.mkdir(parents=True, exist_ok=True)
            target = profile / f"{subject}-{uuid.uuid4().hex[:6]}.txt"
            command = [str(py_spy), "record", "--format", "raw", "-o", str(target), "--", *command]
        subprocess.run(command, check=True, timeout=900, stdout=subprocess.DEVNULL)
        found = json.loads(out.read_text())
        return float(found["rate"]), float(found["cpu_us"])


def quix_rate(address: str, topic: str, calls: int, mode: str) -> Measure | None:
    if not QUIX_PYTHON.exists():
        return None
    with tempfile.TemporaryDirectory() as tmp:
        script, out = Path(tmp) / "quix_app.py", Path(tmp) / "rate.json"
        script.write_text(QUIX_APP)
        command = [str(QUIX_PYTHON), str(script), address, topic, str(calls), str(out), tmp, mode]
        subprocess.run(command, check=True, timeout=900, capture_output=True)
        found = json.loads(out.read_text())
        return float(found["rate"]), float(found["cpu_us"])


SUBJECTS = ("bare", "take", "manual", "aggregate", "naive", "quix", "quix_panes")
FAUST_SUBJECTS = SUBJECTS[:5]


def main() -> None:
    parser = argparse.ArgumentParser(description=(__doc__ or "").split("\n")[0])
    parser.add_argument("--calls", type=int, default=40_000)
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--profile", type=Path, help="py-spy each Faust worker into DIR")
    parser.add_argument(
        "--subjects",
        default="bare,aggregate,naive,quix,quix_panes",
        help=f"comma-separated, among {','.join(SUBJECTS)} (take: a bare agent over "
        "take_events batches; manual: one acking events by hand per batch; quix_panes: "
        "Quix Streams updating 5-minute panes instead of every hopping window)",
    )
    parser.add_argument("--subject", choices=FAUST_SUBJECTS)
    parser.add_argument("--broker")
    parser.add_argument("--prefix")
    parser.add_argument("--out", type=Path)
    args = parser.parse_args()
    if args.subject:
        run_faust_subject(args.subject, args.broker, args.prefix, args.calls, args.out)
        return

    from weave_stream.broker.embedded import EmbeddedBroker

    chosen = [subject for subject in SUBJECTS if subject in args.subjects.split(",")]
    prefix = f"bench{uuid.uuid4().hex[:6]}"
    topic = f"{prefix}.calls.valid"
    measured: dict[str, list[Measure]] = {subject: [] for subject in chosen}
    with EmbeddedBroker() as broker:
        asyncio.run(fill_topic(broker.address, topic, args.calls, 4))
        for round_ in range(args.rounds):
            for subject in chosen:
                if subject.startswith("quix"):
                    mode = "panes" if subject == "quix_panes" else "hopping"
                    found = quix_rate(broker.address, topic, args.calls, mode)
                else:
                    found = subject_rate(subject, broker.url, prefix, args.calls, args.profile)
                if found is not None:
                    measured[subject].append(found)
            shown = ", ".join(f"{k} {v[-1][0]:,.0f}/s" for k, v in measured.items() if v)
            print(f"round {round_ + 1}: {shown}", flush=True)
    rate = {k: statistics.median(r for r, _ in v) for k, v in measured.items() if v}
    cpu = {k: statistics.median(c for _, c in v) for k, v in measured.items() if v}
    print()
    print(f"{'subject':<12}{'events/s':>12}{'CPU µs/event':>15}   events/s per round")
    for subject, values in measured.items():
        if values:
            shown = ", ".join(f"{r:,.0f}" for r, _ in values)
            print(f"{subject:<12}{rate[subject]:>12,.0f}{cpu[subject]:>15,.1f}   {shown}")
        else:
            print(f"{subject:<12}{'not measured':>12}   no Quix Streams interpreter: {QUIX_SETUP}")
    print("(medians over rounds; CPU: the whole process, every thread, first to last event)")
    print()
    if "aggregate" not in rate:
        return
    for name, baseline in (
        ("aggregate_vs_bare_faust", "bare"),
        ("aggregate_vs_naive_faust", "naive"),
        ("aggregate_vs_quixstreams", "quix"),
        ("aggregate_vs_quixstreams_panes", "quix_panes"),
    ):
        figure: dict[str, Any] = {"bench": name, "value": round(rate["aggregate"])}
        if baseline in rate:
            figure.update(
                baseline=round(rate[baseline]),
                ratio=round(rate["aggregate"] / rate[baseline], 3),
                cpu_ratio=round(cpu[baseline] / cpu["aggregate"], 3),
            )
        else:
            figure.update(baseline=None, ratio=None, note="not measured")
        print(json.dumps(figure))
    if args.profile is not None:
        print(f"py-spy profiles (raw, one per subject and round): {args.profile}")


if __name__ == "__main__":
    main()
