"""Ops that call ops: what routing sub-calls through the scheduler costs against one batch.

Figures (each round runs direct, the subjects, direct again, the subjects' order
alternating; a subject's ratio in a round is against the mean of the two directs
around it, and the figure is the median over rounds, so load from other processes
on this shared machine hits both sides alike; the load average is printed per
round, and ``cpu_ratio`` compares the process's CPU seconds, which that load
disturbs less):

* ``nested_vs_direct``: 1,000 parents (an async op) each calling ``embed`` once on
  its call's text, through :func:`~weave_stream.runners.local.run_local` in one batch,
  against a column computing ``embed`` directly on the same texts in one batch run.
  ``ratio`` = direct seconds / nested seconds (throughput ratio). Goal >= 0.9.
* ``nested_sync_vs_direct``: the same with a sync parent (``embed.call``): each
  parent runs on a thread of its own, 256 at a time (`SYNC_FAN_OUT`; it was 64, the
  parent's batch size, which gave `embed` batches of 64).
* ``sub_call_overhead``: microseconds per parent of the routing itself: 2,000
  parents calling a batched op that does nothing, async and sync parents.

Texts are real and distinct: the chatterbot-corpus conversations in English and
Spanish. The model is loaded before anything is timed; every run starts with an
empty cache, so every embedding is computed.

Run: ``.venv/bin/python bench/nested.py [--parents 1000] [--rounds 3]``
"""

from __future__ import annotations

import argparse
import gc
import json
import os
import statistics
import sys
import time
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
os.environ.setdefault("HF_HUB_OFFLINE", "1")

from weave_stream.columns.cache import MemoryCache
from weave_stream.demo.samples import corpus_documents
from weave_stream.ops import Embed, op
from weave_stream.ops.embed import load_model
from weave_stream.runners.local import run_local
from weave_stream.topology.spec import Column, Topology

T0 = 1_795_662_000
embed = Embed()
# A parent's timeout bounds its batch, waits for its sub-calls included: 1,000 parents
# wait for four embed batches in turn, minutes on a loaded machine. What is measured is
# the routing, so the parents' timeout must not be what ends a run.
PARENT_TIMEOUT = 1800.0


@op(name="via_embed", timeout=PARENT_TIMEOUT)
async def via_embed(document: str) -> list[float]:
    """The parent: one sub-call of embed per input."""
    vector: list[float] = await embed.acall(text=document)
    return vector


@op(name="via_embed_sync", timeout=PARENT_TIMEOUT)
def via_embed_sync(document: str) -> list[float]:
    """The same parent written as sync code."""
    vector: list[float] = embed.call(text=document)
    return vector


@op(name="nothing", batched=True, batch_size=256)
def nothing(text: list[str]) -> list[int]:
    """A batched op that does no work: what is left is the routing's cost."""
    return [0] * len(text)


@op(name="via_nothing", timeout=PARENT_TIMEOUT)
async def via_nothing(document: str) -> int:
    return int(await nothing.acall(text=document))


@op(name="via_nothing_sync", timeout=PARENT_TIMEOUT)
def via_nothing_sync(document: str) -> int:
    return int(nothing.call(text=document))


def real_texts(count: int) -> list[str]:
    texts: dict[str, None] = {}
    for language in ("english", "spanish"):
        texts.update(dict.fromkeys(d.text for d in corpus_documents(language)))
    if len(texts) < count:
        raise SystemExit(f"only {len(texts)} distinct texts; ask for --parents <= that")
    return list(texts)[:count]


def calls(texts: list[str]) -> list[dict[str, Any]]:
    return [
        {"id": f"c{i}", "started_at": T0 + i, "inputs": {"document": text}}
        for i, text in enumerate(texts)
    ]


batches: dict[str, list[list[int]]] = {}  # the sub-op's batch sizes, by parent, per run


def timed(
    column_op: Any, records: list[dict[str, Any]], sub_ref: str | None
) -> tuple[float, float]:
    """Wall and CPU seconds to run one column of ``column_op`` over ``records`` in one batch."""
    argument = "document" if sub_ref is not None else "text"
    column = Column("v", column_op, args={argument: "inputs.document"})
    gc.collect()
    started, cpu = time.perf_counter(), time.process_time()
    table = run_local(Topology("bench", [column]), records, MemoryCache(), batch_size=len(records))
    elapsed, cpu = time.perf_counter() - started, time.process_time() - cpu
    errors = [v.error for v in table.values if v.error is not None]
    assert not errors, f"{len(errors)} errors, the first: {errors[0]}"
    assert table.stats.computed == len(records), table.stats.summary()
    if sub_ref is not None:
        stats = table.stats.sub_ops[sub_ref]
        assert stats.computed == len(records), stats
        batches.setdefault(column_op.name, []).append(list(stats.batches))
    return elapsed, cpu


def main() -> None:
    parser = argparse.ArgumentParser(description="ops that call ops, against one batch")
    parser.add_argument("--parents", type=int, default=1000)
    parser.add_argument("--rounds", type=int, default=3)
    args = parser.parse_args()
    records = calls(real_texts(args.parents))
    load_model()
    subjects = {
        "nested": lambda: timed(via_embed, records, embed.ref),
        "nested_sync": lambda: timed(via_embed_sync, records, embed.ref),
    }
    for warm in (embed, via_embed, via_embed_sync):  # the model, the threads, the code paths
        timed(warm, records[:64], None if warm is embed else embed.ref)
    walls: dict[str, list[float]] = {side: [] for side in subjects}
    cpus: dict[str, list[float]] = {side: [] for side in subjects}
    rates: dict[str, list[float]] = {"direct": [], **{side: [] for side in subjects}}
    loads = []
    for round_number in range(args.rounds):
        # direct, subjects, direct: each subject is compared with the mean of the two
        # directs around it; the subjects' order alternates between rounds.
        order = list(subjects) if round_number % 2 == 0 else list(reversed(subjects))
        before = timed(embed, records, None)
        measured = {side: subjects[side]() for side in order}
        after = timed(embed, records, None)
        direct_wall, direct_cpu = (before[0] + after[0]) / 2, (before[1] + after[1]) / 2
        rates["direct"].append(args.parents / direct_wall)
        for side, (wall, cpu) in measured.items():
            walls[side].append(direct_wall / wall)
            cpus[side].append(direct_cpu / cpu)
            rates[side].append(args.parents / wall)
        loads.append(os.getloadavg()[0])
        figures = ", ".join(f"{side} {args.parents / rates[side][-1]:.1f} s" for side in rates)
        print(f"  round {round_number + 1}: {figures} (load average {loads[-1]:.1f})")

    overhead: dict[str, list[float]] = {"async": [], "sync": []}
    small = calls([f"text {i}" for i in range(2000)])
    for _ in range(args.rounds):
        for kind, parent in (("async", via_nothing), ("sync", via_nothing_sync)):
            overhead[kind].append(timed(parent, small, nothing.ref)[0] / len(small) * 1e6)

    results = {
        side: {
            "value": statistics.median(rates[side]),
            "baseline": statistics.median(rates["direct"]),
            "ratio": statistics.median(walls[side]),
            "cpu_ratio": statistics.median(cpus[side]),
        }
        for side in subjects
    }
    print()
    print(f"{'figure':<24}{'subject':>14}{'baseline':>14}{'ratio':>9}{'cpu ratio':>11}  goal")
    for side, r in results.items():
        print(
            f"{side + '_vs_direct':<24}{r['value']:>10.1f} t/s{r['baseline']:>10.1f} t/s"
            f"{r['ratio']:>9.3f}{r['cpu_ratio']:>11.3f}  >= 0.9"
        )
    for kind in ("async", "sync"):
        print(f"{'sub_call_overhead ' + kind:<24}{statistics.median(overhead[kind]):>11.0f} us")
    print("embed batches seen (last round): " + "; ".join(
        f"{name}: {sizes[-1]}" for name, sizes in batches.items() if "embed" in name
    ))  # fmt: skip
    print(
        f"load average per round: {', '.join(f'{x:.1f}' for x in loads)} on {os.cpu_count()} cpus"
    )
    print()
    common = {"unit": "texts/s", "goal": ">= 0.9", "load": loads, "parents": args.parents}
    for side, r in results.items():
        print(json.dumps({"bench": f"{side}_vs_direct", **common, **r}))
    for kind in ("async", "sync"):
        value = statistics.median(overhead[kind])
        print(
            json.dumps({"bench": f"sub_call_overhead_{kind}", "unit": "us/parent", "value": value})
        )


if __name__ == "__main__":
    main()
