"""Calls/s through the collector against producing the same calls directly with aiokafka.

Subjects, on one embedded broker, interleaved round by round so the ratio holds on
a noisy machine; each sends the same complete calls (bench/ingest.py's, ~600 bytes
each) in batches of 100 from several concurrent clients, and a batch counts once
Kafka has acknowledged all of its calls:

* ``produce``    an ``AIOKafkaProducer`` (acks=all) shared by the clients: each sends
  its batch's records and awaits their acknowledgements (the transport's limit);
* ``collector``  ``weave-stream collector`` in its own process; each client POSTs
  its batch to ``/v2/<entity>/<project>/calls/complete`` as the weave client does
  and waits for the answer (the collector answers once Kafka acknowledged).

Request bodies and record values are encoded before the clock starts. Latency is
per batch: request to answer, or first send to last acknowledgement.

Run: ``.venv/bin/python bench/collector.py [--calls 20000] [--clients 8] [--rounds 3]``
Figures: ``collector_vs_produce`` (goal >= 0.8) with ``p99_ms`` of both.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import statistics
import subprocess
import sys
import time
import uuid
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
sys.path.insert(0, str(Path(__file__).resolve().parent))

from ingest import make_call

BATCH = 100
Result = tuple[float, list[float], float]  # calls/s, per-batch latencies (s), CPU µs per call


def cpu_seconds(pid: int) -> float:
    """User + system CPU time of process ``pid`` so far (Linux /proc)."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def batches(calls: int, salt: str) -> list[list[dict[str, object]]]:
    made = []
    for i in range(calls):
        call = make_call(i)
        call["id"] = f"{salt}-{call['id']}"  # new ids each round: no dedupe in play
        made.append(call)
    return [made[i : i + BATCH] for i in range(0, len(made), BATCH)]


async def run_clients(
    clients: int, work: list[object], send: object, server_pid: int | None = None
) -> Result:
    """Send ``work`` from ``clients`` concurrent clients: rate, latencies, CPU per call
    (this process, plus the server's when there is one)."""
    queue: asyncio.Queue[object] = asyncio.Queue()
    for item in work:
        queue.put_nowait(item)
    latencies: list[float] = []

    async def client() -> None:
        while not queue.empty():
            item = queue.get_nowait()
            started = time.perf_counter()
            await send(item)  # type: ignore[operator]
            latencies.append(time.perf_counter() - started)

    def used() -> float:
        return time.process_time() + (cpu_seconds(server_pid) if server_pid else 0.0)

    cpu_started, started = used(), time.perf_counter()
    await asyncio.gather(*(client() for _ in range(clients)))
    elapsed = time.perf_counter() - started
    calls = len(work) * BATCH
    return calls / elapsed, latencies, (used() - cpu_started) / calls * 1e6


async def run_produce(address: str, topic: str, calls: int, clients: int) -> Result:
    from aiokafka import AIOKafkaProducer

    work = [
        [(str(c["id"]).encode(), json.dumps(c).encode()) for c in batch]
        for batch in batches(calls, uuid.uuid4().hex[:8])
    ]
    producer = AIOKafkaProducer(
        bootstrap_servers=address, acks="all", linger_ms=2, max_batch_size=256 * 1024
    )
    await producer.start()

    async def send(batch: object) -> None:
        futures = [await producer.send(topic, value, key=key) for key, value in batch]  # type: ignore[attr-defined]
        await asyncio.gather(*futures)

    try:
        return await run_clients(clients, work, send)  # type: ignore[arg-type]
    finally:
        await producer.stop()


async def run_collector(url: str, calls: int, clients: int, pid: int | None = None) -> Result:
    import aiohttp

    work = [json.dumps({"batch": b}).encode() for b in batches(calls, uuid.uuid4().hex[:8])]
    headers = {"Content-Type": "application/json"}
    async with aiohttp.ClientSession(
        connector=aiohttp.TCPConnector(limit=clients), headers=headers
    ) as session:

        async def send(body: object) -> None:
            async with session.post(f"{url}/v2/bench/app/calls/complete", data=body) as answer:
                if answer.status != 200:
                    raise RuntimeError(f"collector answered {answer.status}: {await answer.text()}")
                await answer.read()

        return await run_clients(clients, work, send, pid)  # type: ignore[arg-type]


def start_collector(broker: str, prefix: str) -> tuple[subprocess.Popen[bytes], str]:
    env = {
        **os.environ,
        "WEAVE_STREAM_BROKER": broker,
        "WEAVE_STREAM_BROKER_KIND": "embedded",
        "WEAVE_STREAM_TOPIC_PREFIX": prefix,
        "WEAVE_STREAM_PARTITIONS": "4",
        "WEAVE_STREAM_LOG_LEVEL": "warning",
    }
    command = [sys.executable, "-m", "weave_stream", "collector", "--collector-port", "0"]
    process = subprocess.Popen(command, env=env, stdout=subprocess.PIPE, stderr=subprocess.DEVNULL)
    assert process.stdout is not None
    url = process.stdout.readline().decode().split()[2]
    return process, url


def p99(latencies: list[float]) -> float:
    return statistics.quantiles(latencies, n=100)[98] * 1000 if len(latencies) > 1 else 0.0


def main() -> None:
    parser = argparse.ArgumentParser(description=(__doc__ or "").split("\n")[0])
    parser.add_argument("--calls", type=int, default=20_000)
    parser.add_argument("--clients", type=int, default=8)
    parser.add_argument("--rounds", type=int, default=3)
    args = parser.parse_args()

    from weave_stream.broker.embedded import EmbeddedBroker

    prefix = f"bench{uuid.uuid4().hex[:6]}"
    results: dict[str, list[Result]] = {"produce": [], "collector": []}
    with EmbeddedBroker() as broker:
        collector, url = start_collector(broker.url, prefix)
        try:
            # Warm up both (topics, connections, metadata) outside the measured rounds.
            asyncio.run(run_produce(broker.address, f"{prefix}.direct", BATCH * 4, 2))
            asyncio.run(run_collector(url, BATCH * 4, 2))
            for round_ in range(args.rounds):
                results["produce"].append(
                    asyncio.run(
                        run_produce(broker.address, f"{prefix}.direct", args.calls, args.clients)
                    )
                )
                results["collector"].append(
                    asyncio.run(run_collector(url, args.calls, args.clients, collector.pid))
                )
                shown = ", ".join(f"{k} {v[-1][0]:,.0f} calls/s" for k, v in results.items())
                print(f"round {round_ + 1}: {shown}", flush=True)
        finally:
            collector.terminate()
            collector.wait(30)
    rate = {k: statistics.median(r for r, _, _ in v) for k, v in results.items()}
    tail = {k: p99([lat for _, lats, _ in v for lat in lats]) for k, v in results.items()}
    cpu = {k: statistics.median(c for _, _, c in v) for k, v in results.items()}
    print()
    print(
        f"{'subject':<12}{'calls/s':>12}{'p99 ms/batch':>15}{'CPU µs/call':>14}   calls/s per round"
    )
    for subject, values in results.items():
        shown = ", ".join(f"{r:,.0f}" for r, _, _ in values)
        print(
            f"{subject:<12}{rate[subject]:>12,.0f}{tail[subject]:>15,.1f}{cpu[subject]:>14,.1f}"
            f"   {shown}"
        )
    print(f"(batches of {BATCH} complete calls, {args.clients} concurrent clients, medians;")
    print(" CPU: the clients' process, and the collector's for the collector; not the broker's)")
    print()
    figure = {
        "bench": "collector_vs_produce",
        "value": round(rate["collector"]),
        "baseline": round(rate["produce"]),
        "ratio": round(rate["collector"] / rate["produce"], 3),
        "p99_ms": round(tail["collector"], 1),
        "baseline_p99_ms": round(tail["produce"], 1),
        "cpu_ratio": round(cpu["produce"] / cpu["collector"], 3),
    }
    print(json.dumps(figure))


if __name__ == "__main__":
    main()
