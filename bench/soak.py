"""Kill -9 soak: workers SIGKILLed and restarted at random moments; is any value lost?

On the embedded broker: ``--workers`` workers (default 3) share one topology; calls
are produced at a steady ``--rate`` while a chaos loop SIGKILLs a random worker
(its topology child dies with it), waits for the others to take over, and restarts
it a moment later. Some kills land while a restarted worker is
still joining (during a rebalance). After the last call and kill, every worker is
restarted and the topology drains. Then, per (call, column):

* after ``first_values`` every value is present exactly once, none missing;
* repeats of one identity carry the same value (the ops are deterministic: a
  different value would be a value written for the wrong call);
* values first written by the reconciler (not by the stream) are losses the
  stream made and the reconciler repaired: counted as lost.

Takeover: per kill, the seconds from the SIGKILL to the first value written after
it on every partition of the calls (a partition the victim held waits for a
survivor; the survivors' own keep flowing), from Kafka record timestamps.

Figures: ``soak_lost_values`` (goal 0) and ``soak_takeover_s`` (p50, max; goal
p50 <= 5 s, max <= 10 s with the embedded broker's timeouts). Every figure
carries the load average: on a busy machine the takeover times are pessimistic.

Run: ``.venv/bin/python bench/soak.py [--workers 3] [--calls 3000] [--rate 20]
[--kills 10] [--seed 1]``; ``--keep DIR`` keeps the workers' logs there.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import random
import statistics
import sys
import tempfile
import threading
import time
import urllib.request
from collections import Counter, defaultdict
from datetime import datetime
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

import orjson
from aiokafka import AIOKafkaConsumer, TopicPartition
from aiokafka.partitioner import DefaultPartitioner

from weave_stream.broker.embedded import EmbeddedBroker
from weave_stream.broker.kafka import ensure_topics, group_progress, produce, read_topic
from weave_stream.columns.derive import DerivedValue
from weave_stream.columns.values import first_values, identity
from weave_stream.config import Settings, load_settings
from weave_stream.demo.samples import corpus_documents, sample_calls
from weave_stream.runners.workers import WorkerProcess
from weave_stream.topology.registrations import register, registration_for

TOPOLOGY = '''\
"""The soak's topology: two deterministic columns, one depending on the other."""
import hashlib
import time

from weave_stream.ops import op
from weave_stream.topology.spec import Column, Source, Topology


@op
def fingerprint(text: str) -> str:
    time.sleep(0.003)  # a little work per call: batches are in flight when a worker dies
    return hashlib.sha256(text.encode()).hexdigest()[:16]


@op
def shard(fingerprint: str) -> int:
    return int(fingerprint, 16) % 97


topology = Topology(
    name="soak",
    source=Source(op_name="text-extract"),
    columns=[
        Column(name="fingerprint", op=fingerprint, args={"text": "inputs.document"}),
        Column(name="shard", op=shard, args={"fingerprint": "columns.fingerprint"}),
    ],
)
'''
COLUMNS = ["fingerprint", "shard"]
REPAIRED_HEADER = "weave-stream-writer"


class Tail:
    """Follows a derived topic in a thread: per call partition, value write times (ms)."""

    def __init__(self, settings: Settings, topic: str, partition_of: dict[str, int]) -> None:
        self.settings, self.topic, self.partition_of = settings, topic, partition_of
        self.written: dict[int, list[int]] = defaultdict(list)
        self._lock = threading.Lock()
        self._stop = threading.Event()
        self._thread = threading.Thread(target=lambda: asyncio.run(self._follow()), daemon=True)

    def start(self) -> Tail:
        self._thread.start()
        return self

    def stop(self) -> None:
        self._stop.set()
        self._thread.join(10)

    async def _follow(self) -> None:
        consumer = AIOKafkaConsumer(
            self.topic,
            bootstrap_servers=self.settings.broker_address,
            auto_offset_reset="earliest",
            enable_auto_commit=False,
        )
        await consumer.start()
        try:
            while not self._stop.is_set():
                batches = await consumer.getmany(timeout_ms=200)
                with self._lock:
                    for records in batches.values():
                        for record in records:
                            call_id = orjson.loads(record.value or b"{}").get("call_id")
                            partition = self.partition_of.get(call_id)
                            if partition is not None:
                                self.written[partition].append(record.timestamp)
        finally:
            await consumer.stop()

    def resumed_after(self, moment_ms: int) -> dict[int, float]:
        """Per partition: seconds from ``moment_ms`` to its first value written after it."""
        with self._lock:
            return {
                p: (min(t for t in times if t > moment_ms) - moment_ms) / 1000
                for p, times in self.written.items()
                if any(t > moment_ms for t in times)
            }


def parse_args() -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--workers", type=int, default=3)
    parser.add_argument("--partitions", type=int, default=6)
    parser.add_argument("--calls", type=int, default=3000)
    parser.add_argument("--rate", type=float, default=20.0, help="calls per second")
    parser.add_argument("--kills", type=int, default=10, help="at least this many SIGKILLs")
    parser.add_argument("--seed", type=int, default=1)
    parser.add_argument("--drain-timeout", type=float, default=300.0)
    parser.add_argument("--keep", type=Path, help="copy the workers' logs here")
    parser.add_argument(
        "--session", type=float, help="consumer session timeout, s (default: the broker kind's)"
    )
    return parser.parse_args()


def make_calls(count: int, seed: int, start: int = 0) -> list[dict[str, Any]]:
    texts = corpus_documents("english", None)
    calls = sample_calls(texts * (count // len(texts) + 1), seed=f"soak{seed}.{start}")[:count]
    for number, call in enumerate(calls, start):  # every document distinct: no cache sharing
        call["id"] = f"soak-{seed}-{number:06d}"
        call["inputs"] = {**call["inputs"], "document": f"{call['inputs']['document']} #{number}"}
    return calls


def child_ready(worker: WorkerProcess) -> bool:
    """Whether the worker's topology child answers /readyz with 200 (found through /proc)."""
    if worker.process is None or worker.process.poll() is not None:
        return False
    for status in Path("/proc").glob("[0-9]*/status"):
        try:
            if f"PPid:\t{worker.process.pid}\n" not in status.read_text():
                continue
            environ = (status.parent / "environ").read_bytes().split(b"\0")
        except OSError:
            continue
        ports = [e.split(b"=", 1)[1] for e in environ if e.startswith(b"WEAVE_STREAM_WEB_PORT=")]
        try:
            url = f"http://127.0.0.1:{ports[-1].decode()}/readyz"
            with urllib.request.urlopen(url, timeout=2) as answer:
                return bool(answer.status == 200)
        except (IndexError, OSError, ValueError):
            return False
    return False


class Chaos:
    """The workers, and the kills and restarts done to them."""

    def __init__(self, settings: Settings, count: int, logs: Path, rng: random.Random) -> None:
        self.settings, self.logs, self.rng = settings, logs, rng
        self.workers = {f"w{i}": self._start(f"w{i}") for i in range(count)}
        for worker in self.workers.values():
            worker.wait_ready(timeout=180)
        # (time, worker, a survivor was ready, a worker was joining: a kill in a rebalance)
        self.kills: list[tuple[float, str, bool, bool]] = []

    def _start(self, worker_id: str) -> WorkerProcess:
        settings = self.settings.model_copy(update={"worker_id": worker_id, "web_port": 0})
        log = self.logs / f"{worker_id}.{int(time.time() * 1000)}.log"
        return WorkerProcess(settings, log_path=log).start()

    def alive(self) -> list[str]:
        return [w for w, p in self.workers.items() if p.process and p.process.poll() is None]

    def pick(self) -> tuple[str, bool, bool] | None:
        """A victim, whether a survivor's topology child is ready to take over (the
        takeover is measured then), and whether a worker is joining; half the time a
        joining worker is around, the kill lands during its join (a rebalance)."""
        alive = self.alive()
        if len(alive) < 2:
            return None
        ready = [w for w in alive if child_ready(self.workers[w])]
        joining = [w for w in alive if w not in ready]
        if joining and self.rng.random() < 0.5:
            victim = self.rng.choice(alive)
        elif len(ready) >= 2:
            victim = self.rng.choice(ready)
        else:
            return None
        return victim, any(w != victim for w in ready), any(w != victim for w in joining)

    def kill(self, victim: str, measured: bool, joining: bool) -> float:
        self.workers[victim].kill()
        moment = time.time()
        self.kills.append((moment, victim, measured, joining))
        print(
            f"  {time.strftime('%X')} SIGKILL {victim}{'' if measured else ' (no survivor ready)'}"
            f"{' (during a join)' if joining else ''}"
        )
        return moment

    def restart_dead(self) -> None:
        for worker_id, worker in self.workers.items():
            if worker.process is None or worker.process.poll() is not None:
                self.workers[worker_id] = self._start(worker_id)

    def stop(self) -> None:
        for worker in self.workers.values():
            worker.stop(timeout=30)


STAGES = (  # what a survivor's topology child logs, in order, after a member died
    ("detected", "Revoking previously assigned partitions"),
    ("revoked", "(Re-)joining group"),
    ("joined", "Joined group"),
    ("recovered", "Worker ready"),
)


def stage_times(child_logs: list[Path], kill: float, group: str) -> dict[str, float]:
    """Seconds from ``kill`` to each stage (the first survivor to reach it), from the logs
    of one consumer group's members."""
    found: dict[str, float] = {}
    for path in child_logs:
        after = kill
        stage = 0
        for line in path.read_text(errors="replace").splitlines():
            if stage == len(STAGES) or not line.startswith("[20"):
                continue
            name, marker = STAGES[stage]
            if marker not in line:
                continue
            moment = datetime.strptime(line[1:24], "%Y-%m-%d %H:%M:%S,%f").timestamp()
            if moment < after:
                continue
            found[name] = min(found.get(name, moment), moment)
            after, stage = moment, stage + 1
    return {group + name: round(found[name] - kill, 2) for name, _ in STAGES if name in found}


def main() -> None:
    args = parse_args()
    rng = random.Random(args.seed)
    load_before = os.getloadavg()
    work = Path(tempfile.mkdtemp(prefix="weave-soak-"))
    logs = args.keep or work / "logs"
    logs.mkdir(parents=True, exist_ok=True)
    with EmbeddedBroker(log_path=work / "broker.log") as broker:
        settings = load_settings(
            env={},
            broker=broker.url,
            broker_kind="embedded",
            topic_prefix="soak",
            partitions=args.partitions,
            data_dir=work / "data",
            web_port=0,
            batch_size=32,
            session_timeout_seconds=args.session,
        )
        topics = settings.topics
        asyncio.run(ensure_topics(settings, [topics.calls, topics.valid, topics.dlq]))
        chaos = Chaos(settings, args.workers, logs, rng)
        topology_file = work / "soak_topology.py"
        topology_file.write_text(TOPOLOGY)
        _, registration = registration_for(str(topology_file), settings)
        asyncio.run(register(settings, registration))
        asyncio.run(ensure_topics(settings, [topics.derived("soak", column) for column in COLUMNS]))
        time.sleep(2.0)  # registration read by every worker: calls from now on count

        calls: list[dict[str, Any]] = []
        partition_of: dict[str, int] = {}
        tail = Tail(settings, topics.derived("soak", COLUMNS[0]), partition_of).start()
        enough = threading.Event()
        producer = threading.Thread(
            target=produce_until, args=(settings, args, calls, partition_of, enough)
        )
        started = time.monotonic()
        producer.start()
        # Chaos starts once every topology child runs (each partition has a value).
        while len(tail.resumed_after(0)) < args.partitions and time.monotonic() - started < 300:
            time.sleep(0.5)
        print(f"soak: {args.rate} calls/s, {args.workers} workers, kills:", flush=True)
        takeovers: list[float] = []
        stages: list[dict[str, float]] = []
        while len(chaos.kills) < args.kills:
            time.sleep(rng.uniform(1.0, 8.0))
            choice = chaos.pick()
            if choice is None:
                chaos.restart_dead()
                continue
            moment = chaos.kill(*choice)
            deadline = time.monotonic() + 90
            while choice[1] and time.monotonic() < deadline:
                resumed = tail.resumed_after(int(moment * 1000))
                if len(resumed) == args.partitions:
                    takeovers.append(max(resumed.values()))
                    child_logs = sorted((work / "data" / "logs").glob("*.log"))
                    worker_logs = sorted(logs.glob("w*.*.log"))
                    stages.append(
                        {
                            **stage_times(worker_logs, moment, "ingest "),
                            **stage_times(child_logs, moment, "topology "),
                            "value": takeovers[-1],
                        }
                    )
                    print(f"      takeover {stages[-1]}", flush=True)
                    break
                time.sleep(0.2)
            if rng.random() < 0.7:
                time.sleep(rng.uniform(0.0, 3.0))
                chaos.restart_dead()
        enough.set()
        producer.join()
        chaos.restart_dead()
        for worker in chaos.workers.values():
            worker.wait_ready(timeout=180)
        print(f"  {time.strftime('%X')} all workers up; draining", flush=True)
        group = topics.topology_group("soak")
        deadline = time.monotonic() + args.drain_timeout
        while time.monotonic() < deadline:
            done, lag = asyncio.run(group_progress(settings, group, topics.valid))
            if lag == 0 and done >= len(calls):
                break
            time.sleep(1.0)
        # Time for a last reconciliation pass (settle time + interval) to repair losses.
        lost = count_values(settings, calls, time.monotonic() + 120)
        tail.stop()
        chaos.stop()
        if args.keep:
            for child_log in (work / "data" / "logs").glob("*.log"):
                (logs / child_log.name).write_bytes(child_log.read_bytes())
    report(args, chaos, len(calls), lost, takeovers, stages, load_before, os.getloadavg())


def produce_until(
    settings: Settings,
    args: argparse.Namespace,
    calls: list[dict[str, Any]],
    partition_of: dict[str, int],
    enough: threading.Event,
) -> None:
    """Produce calls at the rate, ``--calls`` at least, until the chaos is over."""
    partitions = list(range(args.partitions))
    partitioner = DefaultPartitioner()
    while len(calls) < args.calls or not enough.is_set():
        chunk = make_calls(100, args.seed, start=len(calls))
        for call in chunk:  # the producer's partitioner: murmur2 of the key, as here
            partition_of[call["id"]] = partitioner(call["id"].encode(), partitions, partitions)
        records = [(c["id"].encode(), orjson.dumps(c), ()) for c in chunk]
        asyncio.run(produce(settings, settings.topics.calls, records, rate=args.rate))
        calls.extend(chunk)


def count_values(
    settings: Settings, calls: list[dict[str, Any]], deadline: float
) -> dict[str, int]:
    """Read every value back (waiting, until ``deadline``, for repairs of missing ones)."""
    wanted = {(c["id"], column) for c in calls for column in COLUMNS}
    while True:
        raw, repaired = asyncio.run(read_values(settings))
        kept = first_values(raw)
        present = Counter((v.call_id, v.column) for v in kept)
        missing = wanted - set(present)
        if not missing or time.monotonic() > deadline:
            break
        time.sleep(2.0)
    variants: dict[tuple[str, str, str, int], set[str]] = defaultdict(set)
    for value in raw:
        variants[identity(value)].add(repr(value.value))
    by_identity = Counter(identity(v) for v in raw)
    first_by_reconciler = {key for key, first in repaired.items() if first}
    lost_calls = {call_id for call_id, _ in missing} | {key[0] for key in first_by_reconciler}
    if lost_calls:
        explain_losses(settings, sorted(lost_calls))
    return {
        "missing": len(missing),
        "repaired": len(first_by_reconciler),
        "conflicting": sum(1 for v in variants.values() if len(v) > 1),
        "duplicated": sum(1 for n in by_identity.values() if n > 1),
        "extra": sum(1 for key in present if key not in wanted),
        "not_once": sum(1 for key in wanted if present.get(key, 0) not in (0, 1)),
    }


def explain_losses(settings: Settings, call_ids: list[str]) -> None:
    """Print where each lost call stands: on the valid topic or not (lost by ingest), and
    whether the topology's group committed past it (acknowledged without its values)."""

    async def where() -> tuple[dict[str, tuple[int, int]], dict[int, int | None]]:
        found = {}
        async for record in read_topic(settings, settings.topics.valid):
            key = (record.key or b"").decode()
            if key in call_ids:
                found[key] = (record.partition, record.offset)
        consumer = AIOKafkaConsumer(  # bench-local: runs against older checkouts too
            bootstrap_servers=settings.broker_address,
            group_id=settings.topics.topology_group("soak"),
            enable_auto_commit=False,
        )
        await consumer.start()
        try:
            valid = settings.topics.valid
            committed = {
                p: await consumer.committed(TopicPartition(valid, p))
                for p in range(settings.partitions)
            }
        finally:
            await consumer.stop()
        return found, committed

    found, committed = asyncio.run(where())
    print(f"lost calls ({len(call_ids)}):")
    for call_id in call_ids[:20]:
        if call_id not in found:
            print(f"  {call_id}: not on {settings.topics.valid} (lost before the topology)")
            continue
        partition, offset = found[call_id]
        mark = committed.get(partition)
        state = "committed past it" if mark is not None and mark > offset else "not committed"
        print(f"  {call_id}: {settings.topics.valid}[{partition}]@{offset}, {state} ({mark})")


async def read_values(
    settings: Settings,
) -> tuple[list[DerivedValue], dict[tuple[str, str, str, int], bool]]:
    """Every value in topic order, and per identity whether its first was a repair."""
    values: list[DerivedValue] = []
    first_is_repair: dict[tuple[str, str, str, int], bool] = {}
    for column in COLUMNS:
        async for record in read_topic(settings, settings.topics.derived("soak", column)):
            if record.value is None:
                continue
            value = DerivedValue.from_json(record.value)
            values.append(value)
            by = dict(record.headers).get(REPAIRED_HEADER, b"stream")
            first_is_repair.setdefault(identity(value), by == b"reconciler")
    return values, first_is_repair


def report(
    args: argparse.Namespace,
    chaos: Chaos,
    produced: int,
    lost: dict[str, int],
    takeovers: list[float],
    stages: list[dict[str, float]],
    load_before: tuple[float, float, float],
    load_after: tuple[float, float, float],
) -> None:
    load = {"load_1m": [round(load_before[0], 1), round(load_after[0], 1)], "cpus": os.cpu_count()}
    unmeasured = sum(1 for _, _, measured, _ in chaos.kills if not measured)
    in_rebalance = sum(1 for *_, joining in chaos.kills if joining)
    lost_values = lost["missing"] + lost["repaired"]
    print(f"\n{'figure':<40}{'value':>12}")
    print(f"{'calls':<40}{produced:>12}")
    print(f"{'kills':<40}{len(chaos.kills):>12}")
    print(f"{'  during a join (a rebalance)':<40}{in_rebalance:>12}")
    print(f"{'  with no survivor ready (unmeasured)':<40}{unmeasured:>12}")
    for name, value in lost.items():
        print(f"{name:<40}{value:>12}")
    p50 = statistics.median(takeovers) if takeovers else None
    worst = max(takeovers) if takeovers else None
    print(f"{'takeover p50 / max (s)':<40}{p50 or 0:>6.1f} / {worst or 0:.1f} (n={len(takeovers)})")
    print("takeover by stage, median seconds from the SIGKILL (first survivor to get there):")
    names = [f"{group} {name}" for group in ("ingest", "topology") for name, _ in STAGES]
    for name in [*names, "value"]:
        times = [s[name] for s in stages if name in s]
        if times:
            print(f"  {name:<38}{statistics.median(times):>12.2f}")
    print(f"{'load average 1m (before, after)':<40}{load['load_1m']}")
    figures = {
        "bench": "soak_lost_values",
        "value": lost_values,
        "goal": 0,
        "kills": len(chaos.kills),
        "kills_during_rebalance": in_rebalance,
        "kills_without_ready_survivor": unmeasured,
        "calls": produced,
        "workers": args.workers,
        **lost,
        **load,
    }
    print(json.dumps(figures))
    takeover = {
        "bench": "soak_takeover_s",
        "p50": None if p50 is None else round(p50, 2),
        "max": None if worst is None else round(worst, 2),
        "n": len(takeovers),
        "goal": {"p50": 5.0, "max": 10.0},
        "stages": stages,
        **load,
    }
    print(json.dumps(takeover))


if __name__ == "__main__":
    main()
