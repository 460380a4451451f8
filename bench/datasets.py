"""What one "from now on" batch costs the store sink, as a dataset grows.

The sink adds each batch of matched calls as one version. Planning it needs the
dataset's state (the calls in it, for exactly-once; the rows per period, for the
cap). Subject: the sink's way, the state kept between batches (checked by the
version fence at each commit). Baseline: the state read from the table for every
batch. Both add the same batches of 200 new calls (capped at 100 rows a day) to
datasets of the same size, interleaved, in a temporary store.

    .venv/bin/python bench/datasets.py [--rows 50000] [--rounds 5]
"""

from __future__ import annotations

import argparse
import json
import statistics
import tempfile
import time
from datetime import UTC, datetime, timedelta

from weave_stream.datasets.apply import Candidate, StateCache, apply_candidates
from weave_stream.datasets.dataset import write_rows
from weave_stream.datasets.events import NewRow
from weave_stream.store import Store

MAPPING = {"document": "inputs.document", "score": "t.judge.score"}
START = datetime(2026, 11, 1, tzinfo=UTC)


def fill(store: Store, name: str, rows: int) -> None:
    """A dataset of ``rows`` rows over many days, written in versions of 5,000."""
    for first in range(0, rows, 5000):
        batch = [
            NewRow(
                f"old-{i}",
                {"document": f"document {i} " * 8, "score": (i % 100) / 100},
                started_at=START + timedelta(minutes=i),
                rule="t/" + name,
            )
            for i in range(first, min(rows, first + 5000))
        ]
        write_rows(store, name, batch, mapping=MAPPING, create=True, append=True)


def batch(name: str, round_: int, size: int = 200) -> list[Candidate]:
    day = START + timedelta(days=400 + round_)
    return [
        Candidate(
            name,
            "t/" + name,
            f"new-{round_}-{i}",
            {"document": f"new {i}", "score": 0.1},
            MAPPING,
            cap=(100, 86400),
            started_at=day + timedelta(seconds=i),
        )
        for i in range(size)
    ]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rows", type=int, default=50_000)
    parser.add_argument("--rounds", type=int, default=5)
    args = parser.parse_args()
    store = Store(tempfile.mkdtemp(prefix="bench-datasets-"))
    for name in ("cached", "uncached"):
        fill(store, name, args.rows)
    cache: StateCache = {}
    apply_candidates(store, batch("cached", -1), cache=cache)  # the sink's first batch reads
    times: dict[str, list[float]] = {"cached": [], "uncached": []}
    for round_ in range(args.rounds):
        order = ["cached", "uncached"] if round_ % 2 == 0 else ["uncached", "cached"]
        for name in order:
            started = time.perf_counter()
            added = apply_candidates(
                store, batch(name, round_), cache=cache if name == "cached" else None
            )
            times[name].append(time.perf_counter() - started)
            assert added == {name: 100}, added  # the cap: 100 of the 200
    cached = statistics.median(times["cached"]) * 1000
    uncached = statistics.median(times["uncached"]) * 1000
    print(f"dataset of {args.rows} rows, batches of 200 matches (100 kept by the cap)")
    print(f"{'state':<28}{'ms per batch (median)':>24}")
    print(f"{'kept between batches':<28}{cached:>24.1f}")
    print(f"{'read for every batch':<28}{uncached:>24.1f}")
    figure = {
        "bench": "dataset_batch_ms",
        "value": round(cached, 1),
        "baseline": round(uncached, 1),
        "ratio": round(cached / uncached, 3),
    }
    print(json.dumps(figure))


if __name__ == "__main__":
    main()
