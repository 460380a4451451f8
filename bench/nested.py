"""Ops that call ops: what routing sub-calls through the scheduler costs against one batch.

Figures (subjects and baseline interleaved round by round, in alternating order;
each ratio is the median of the rounds' ratios, so load from other processes on
this shared machine hits both sides alike; the load average is printed per round):

* ``nested_vs_direct``: 1,000 parents (an async op) each calling ``embed`` once on
  its call's text, through :func:`~weave_stream.runners.local.run_local` in one batch,
  against a column computing ``embed`` directly on the same texts in one batch run.
  ``ratio`` = direct seconds / nested seconds (throughput ratio). Goal >= 0.9.
* ``nested_sync_vs_direct``: the same with a sync parent (``embed.call``): each
  parent runs on a thread of its own, 64 at a time (the parent's batch size).
* ``sub_call_overhead``: microseconds per parent of the routing itself: 2,000
  parents calling a batched op that does nothing, async and sync parents.

Texts are real and distinct: the chatterbot-corpus conversations in English and
Spanish. The model is loaded before anything is timed; every run starts with an
empty cache, so every embedding is computed.

Run: ``.venv/bin/python bench/nested.py [--parents 1000] [--rounds 3]``
"""

from __future__ import annotations

import argparse
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


@op(name="via_embed")
async def via_embed(document: str) -> list[float]:
    """The parent: one sub-call of embed per input."""
    vector: list[float] = await embed.acall(text=document)
    return vector


@op(name="via_embed_sync")
def via_embed_sync(document: str) -> list[float]:
    """The same parent written as sync code."""
    vector: list[float] = embed.call(text=document)
    return vector


@op(name="nothing", batched=True, batch_size=256)
def nothing(text: list[str]) -> list[int]:
    """A batched op that does no work: what is left is the routing's cost."""
    return [0] * len(text)


@op(name="via_nothing")
async def via_nothing(document: str) -> int:
    return int(await nothing.acall(text=document))


@op(name="via_nothing_sync")
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


def timed(column_op: Any, records: list[dict[str, Any]], sub_ref: str | None) -> float:
    """Seconds to run one column of ``column_op`` over ``records`` in one batch."""
    argument = "document" if sub_ref is not None else "text"
    column = Column("v", column_op, args={argument: "inputs.document"})
    started = time.perf_counter()
    table = run_local(Topology("bench", [column]), records, MemoryCache(), batch_size=len(records))
    elapsed = time.perf_counter() - started
    assert table.stats.computed == len(records) and table.stats.columns["v"].errors == 0
    if sub_ref is not None:
        stats = table.stats.sub_ops[sub_ref]
        assert stats.computed == len(records), stats
        batches.setdefault(column_op.name, []).append(list(stats.batches))
    return elapsed


def main() -> None:
    parser = argparse.ArgumentParser(description="ops that call ops, against one batch")
    parser.add_argument("--parents", type=int, default=1000)
    parser.add_argument("--rounds", type=int, default=3)
    args = parser.parse_args()
    records = calls(real_texts(args.parents))
    load_model()
    timed(embed, records[:64], None)  # warm the model up
    sides = {
        "direct": lambda: timed(embed, records, None),
        "nested": lambda: timed(via_embed, records, embed.ref),
        "nested_sync": lambda: timed(via_embed_sync, records, embed.ref),
    }
    seconds: dict[str, list[float]] = {side: [] for side in sides}
    loads = []
    for round_number in range(args.rounds):
        order = list(sides) if round_number % 2 == 0 else list(reversed(sides))
        for side in order:
            seconds[side].append(sides[side]())
        loads.append(os.getloadavg()[0])
        figures = ", ".join(f"{side} {seconds[side][-1]:.2f} s" for side in sides)
        print(f"  round {round_number + 1}: {figures} (load average {loads[-1]:.1f})")

    overhead: dict[str, list[float]] = {"async": [], "sync": []}
    small = calls([f"text {i}" for i in range(2000)])
    for _ in range(args.rounds):
        for kind, parent in (("async", via_nothing), ("sync", via_nothing_sync)):
            overhead[kind].append(timed(parent, small, nothing.ref) / len(small) * 1e6)

    results = {}
    for side in ("nested", "nested_sync"):
        ratios = [d / s for d, s in zip(seconds["direct"], seconds[side], strict=True)]
        results[side] = {
            "value": statistics.median(args.parents / s for s in seconds[side]),
            "baseline": statistics.median(args.parents / d for d in seconds["direct"]),
            "ratio": statistics.median(ratios),
        }
    print()
    print(f"{'figure':<24}{'subject':>14}{'baseline':>14}{'ratio':>9}  goal")
    for side in ("nested", "nested_sync"):
        r = results[side]
        print(
            f"{side + '_vs_direct':<24}{r['value']:>10.1f} t/s{r['baseline']:>10.1f} t/s"
            f"{r['ratio']:>9.3f}  >= 0.9"
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
    print(json.dumps({"bench": "nested_vs_direct", **common, **results["nested"]}))
    print(json.dumps({"bench": "nested_sync_vs_direct", **common, **results["nested_sync"]}))
    for kind in ("async", "sync"):
        value = statistics.median(overhead[kind])
        print(
            json.dumps({"bench": f"sub_call_overhead_{kind}", "unit": "us/parent", "value": value})
        )


if __name__ == "__main__":
    main()
