"""The call store: sink throughput next to ingest, calls() against DuckDB, lookups, bytes.

In one run, baseline and subject interleaved:

* ``store_sink_vs_ingest``: a worker process ingesting a pre-filled calls topic of
  the embedded broker, alone (the ingest rate) and with the store sink running in
  the same process, as every worker runs it (the rate at which calls are committed
  to the store). Goal: >= 0.9 (the store is not the bottleneck).
* ``calls_query_vs_duckdb``: 1 M calls with three derived columns (a classifier's
  label, a judge's score, a word count), generated straight into the store's
  tables; mean score and counts per class per hour through ``calls().group_by()``
  (with the call ids of every group) against a hand-written DuckDB query over the
  same Delta files; pandas on the loaded frames is reported too. Goal: ratio
  (DuckDB ms / ours) >= 0.8.
* ``point_lookup_ms``: one call and its three values by id (ours).
* ``bytes_per_call`` / ``bytes_per_value``: the tables' size on disk per row, for the
  generated store (realistic documents from chatterbot-corpus) and for the sink's
  own small files before compaction.

Run: ``.venv/bin/python bench/store.py [--calls 1000000] [--stream-calls 40000] [--rounds 3]``
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
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
sys.path.insert(0, str(Path(__file__).resolve().parent))

from ingest import fill_topic

TOPOLOGY = "bench"
LABELS = ["technology", "money", "science", "culture", "food", "chat"]


# -- (a) the sink next to ingest, in a worker process ---------------------------------


def run_worker_subject(subject: str, broker: str, prefix: str, calls: int, out: Path) -> None:
    """In a worker process: ingest (and, for ``sink``, store) ``calls``; write the rate."""
    from weave_stream import metrics
    from weave_stream.config import load_settings
    from weave_stream.runners.streaming.app import create_app, run_worker
    from weave_stream.runners.streaming.ingest_agent import register_ingest
    from weave_stream.runners.streaming.store_sink import register_store_sink

    data_dir = Path(out).parent / "data"
    settings = load_settings(
        env={},
        broker=broker,
        broker_kind="embedded",
        topic_prefix=prefix,
        partitions=4,
        web_port=0,
        data_dir=data_dir,
        store_batch_seconds=1.0,
    )
    app = create_app(settings, app_id=f"bench-{subject}-{uuid.uuid4().hex[:8]}")
    register_ingest(app, settings)
    if subject == "sink":
        register_store_sink(app, settings)

    def total(counter: Any) -> float:
        return sum(
            s.value for m in counter.collect() for s in m.samples if s.name.endswith("_total")
        )

    @app.task
    async def watch() -> None:
        first = last = 0.0
        commits: list[tuple[float, float]] = []  # (time, rows committed so far)
        while True:
            now = time.perf_counter()
            ingested = total(metrics.INGEST_RECORDS)
            if ingested and not first:
                first = now
            if subject == "ingest" and ingested >= calls:
                rate = (calls - 1) / (now - first)
                break
            stored = total(metrics.STORE_ROWS)
            if subject == "sink" and (not commits or stored > commits[-1][1]):
                commits.append((now, stored))
            if subject == "sink" and stored >= calls:
                # Rows committed after the first commit, over the time since it.
                (t0, rows0), (t1, rows1) = (
                    commits[1] if len(commits) > 2 else commits[0],
                    commits[-1],
                )
                rate = (rows1 - rows0) / (t1 - t0)
                last = now
                break
            await asyncio.sleep(0.002)
        info = {"rate": rate, "seconds": (last or now) - first}
        if subject == "sink":
            from weave_stream.store import Store
            from weave_stream.store.maintenance import info as table_info

            calls_table = next(
                t for t in table_info(Store.from_settings(settings)) if t.table == "calls"
            )
            info.update(bytes=calls_table.bytes, rows=calls_table.rows, files=calls_table.files)
        out.write_text(json.dumps(info))
        os.kill(os.getpid(), signal.SIGTERM)

    run_worker(settings.model_copy(update={"log_level": "warning"}), app)


def worker_rate(subject: str, broker: str, calls: int, address: str) -> dict[str, float]:
    prefix = f"b{uuid.uuid4().hex[:8]}"
    asyncio.run(fill_topic(address, f"{prefix}.calls", calls, 4))
    with tempfile.TemporaryDirectory() as tmp:
        out = Path(tmp) / "rate.json"
        command = [sys.executable, __file__, "--subject", subject, "--broker", broker]
        command += ["--prefix", prefix, "--stream-calls", str(calls), "--out", str(out)]
        subprocess.run(command, check=True, timeout=900, stdout=subprocess.DEVNULL)
        return dict(json.loads(out.read_text()))


# -- (b) 1 M calls with three derived columns, straight into the tables ---------------


def generate_store(folder: Path, calls: int, seed: int = 7) -> dict[str, float]:
    """Write ``calls`` calls and 3 values each; returns seconds and the day range."""
    import numpy as np
    import pyarrow as pa
    from deltalake import write_deltalake

    from weave_stream.demo.samples import corpus_documents
    from weave_stream.store import Store
    from weave_stream.store.schema import CALLS_SCHEMA, TABLES, VALUES_SCHEMA

    store = Store(folder)
    store.ensure()
    random = np.random.default_rng(seed)
    texts = [d.text for d in corpus_documents("english", None)]
    catalog: set[tuple[str, ...]] = set()
    raw_bytes = 0
    start = np.datetime64("2026-11-20T00:00:00", "us").astype(np.int64)
    week = 7 * 86400 * 1_000_000
    started = time.perf_counter()
    chunk = 250_000
    for offset in range(0, calls, chunk):
        n = min(chunk, calls - offset)
        index = np.arange(offset, offset + n)
        ids = pa.array([f"019a{i:028x}" for i in index])
        begin = np.sort(start + random.integers(0, week, n))
        latency = random.gamma(2.0, 400.0, n)
        doc = random.integers(0, len(texts), n)
        # Production documents are unique: two conversations and a ticket number each,
        # so no encoding gets them for free (sizes on disk are realistic).
        other = random.integers(0, len(texts), n)
        documents = [
            f"Ticket {i}: {texts[a]} {texts[b]}" for i, a, b in zip(index, doc, other, strict=True)
        ]
        inputs = pa.array([json.dumps({"document": d}) for d in documents])
        outputs = pa.array(
            [json.dumps({"topic": d.split()[2], "summary": d[:80]}) for d in documents]
        )
        raw_bytes += sum(len(d) for d in documents) * 2 + 120 * n
        times = pa.array(begin, pa.timestamp("us", "UTC"))
        days = pa.array(begin.astype("datetime64[us]").astype("datetime64[D]").astype(str))
        prompt = random.integers(80, 900, n)
        calls_table = pa.table(
            {
                "id": ids,
                "op_name": pa.array(["weave:///acme/support/op/text-extract:v3"] * n),
                "op": pa.array(["text-extract"] * n),
                "trace_id": ids,
                "kind": pa.array(["complete"] * n),
                "status": pa.array(np.where(random.random(n) < 0.03, "error", "success")),
                "started_at": times,
                "ended_at": pa.array(
                    begin + (latency * 1000).astype(np.int64), pa.timestamp("us", "UTC")
                ),
                "latency_ms": latency,
                "prompt_tokens": prompt,
                "completion_tokens": np.full(n, 40),
                "total_tokens": prompt + 40,
                "cost": prompt * 1.5e-7 + 40 * 6e-7,
                "inputs": inputs,
                "output": outputs,
                "stored_at": times,
                "date": days,
            }
        )
        write_deltalake(store.table("calls"), _conform(calls_table, CALLS_SCHEMA), mode="append")
        label = random.integers(0, len(LABELS), n)
        score = np.round(np.clip(random.normal(0.55 + 0.05 * label, 0.2), 0, 1), 4)
        words = np.array([len(d.split()) for d in documents], dtype=float)
        parts = []
        for column, op_ref, fields in (
            (
                "doc_class",
                "classify:4f2a9c",
                ({"label": np.array(LABELS)[label]}, {"confidence": random.random(n)}),
            ),
            (
                "faithfulness",
                "judge:b71e03",
                (
                    {"reason": np.array([f"{w:.0f} words, mostly on topic" for w in words])},
                    {"score": score},
                ),
            ),
            ("words", "word_count:91ac2d", None),
        ):
            table = {
                "call_id": ids,
                "trace_id": ids,
                "topology": pa.array([TOPOLOGY] * n),
                "column_name": pa.array([column] * n),
                "op_ref": pa.array([op_ref] * n),
                "op": pa.array([op_ref.split(":")[0]] * n),
                "trial": pa.array(np.zeros(n, dtype=np.int32)),
                "kind": pa.array(["object" if fields else "int"] * n),
                "computed_at": times,
                "started_at": times,
                "stored_at": times,
                "date": days,
                "cached": pa.array(np.zeros(n, dtype=bool)),
                "latency_ms": random.gamma(2.0, 20.0, n),
            }
            if fields is None:
                table["number"] = words
            else:
                texts_, numbers = fields
                table["fields_text"] = _map(texts_, pa.string(), n)
                table["fields_number"] = _map(numbers, pa.float64(), n)
            parts.append(_conform(pa.table(table), VALUES_SCHEMA))
        write_deltalake(store.table("values"), pa.concat_tables(parts), mode="append")
        catalog.update(
            (TOPOLOGY, column, op_ref, day, field, kind)
            for day in set(days.to_pylist())
            for column, op_ref, field, kind in CATALOG
        )
    # What the writer records for every value it stores (queries plan from it).
    rows = [dict(zip(CATALOG_KEY, entry, strict=True)) for entry in sorted(catalog)]
    catalog_table = pa.Table.from_pylist(rows, schema=TABLES["catalog"].schema)
    write_deltalake(store.table("catalog"), catalog_table, mode="append")
    return {"seconds": time.perf_counter() - started, "json_bytes_per_call": raw_bytes / calls}


CATALOG_KEY = ("topology", "column_name", "op_ref", "date", "field", "type")
CATALOG = [
    ("doc_class", "classify:4f2a9c", "", "object"),
    ("doc_class", "classify:4f2a9c", "label", "text"),
    ("doc_class", "classify:4f2a9c", "confidence", "number"),
    ("faithfulness", "judge:b71e03", "", "object"),
    ("faithfulness", "judge:b71e03", "reason", "text"),
    ("faithfulness", "judge:b71e03", "score", "number"),
    ("words", "word_count:91ac2d", "", "int"),
]


def _map(fields: dict[str, Any], kind: Any, n: int) -> Any:
    import numpy as np
    import pyarrow as pa

    ((key, values),) = fields.items()
    offsets = pa.array(np.arange(n + 1, dtype=np.int32))
    return pa.MapArray.from_arrays(offsets, pa.array([key] * n), pa.array(values, kind))


def _conform(table: Any, schema: Any) -> Any:
    import pyarrow as pa

    columns = [
        table.column(f.name).cast(f.type)
        if f.name in table.column_names
        else pa.nulls(table.num_rows, f.type)
        for f in schema
    ]
    return pa.Table.from_arrays(columns, schema=schema)


DUCKDB_SQL = """
SELECT l.fields_text['label'] AS label,
       time_bucket(INTERVAL '1 hour', c.started_at) AS hour,
       count(*) AS calls,
       avg(s.fields_number['score']) AS mean_score
FROM calls c
LEFT JOIN (SELECT call_id, fields_text FROM "values"
           WHERE topology = 'bench' AND column_name = 'doc_class' AND trial = 0) l
       ON l.call_id = c.id
LEFT JOIN (SELECT call_id, fields_number FROM "values"
           WHERE topology = 'bench' AND column_name = 'faithfulness' AND trial = 0) s
       ON s.call_id = c.id
GROUP BY ALL
"""


def ours(folder: Path) -> Any:
    from weave_stream import calls

    return (
        calls(store=folder)
        .group_by(f"{TOPOLOGY}.doc_class.label", every="1h")
        .agg(mean_score=(f"{TOPOLOGY}.faithfulness.score", "mean"))
        .to_arrow()
    )


def ours_without_refs(folder: Path) -> Any:
    from weave_stream import calls

    return (
        calls(store=folder)
        .group_by(f"{TOPOLOGY}.doc_class.label", every="1h")
        .agg(mean_score=(f"{TOPOLOGY}.faithfulness.score", "mean"), max_refs=0)
        .to_arrow()
    )


def duckdb_baseline(folder: Path) -> Any:
    import duckdb
    from deltalake import DeltaTable

    connection = duckdb.connect()
    connection.execute("SET TimeZone = 'UTC'")
    connection.register("calls", DeltaTable(str(folder / "calls")).to_pyarrow_dataset())
    connection.register("values", DeltaTable(str(folder / "values")).to_pyarrow_dataset())
    result = connection.sql(DUCKDB_SQL).to_arrow_table()
    connection.close()
    return result


def pandas_frames(folder: Path) -> tuple[Any, Any]:
    import pyarrow.compute as pc
    from deltalake import DeltaTable

    calls_frame = DeltaTable(str(folder / "calls")).to_pyarrow_table(columns=["id", "started_at"])
    values = DeltaTable(str(folder / "values")).to_pyarrow_table(
        columns=["call_id", "column_name", "fields_text", "fields_number"]
    )
    labels = values.filter(pc.equal(values["column_name"], "doc_class"))
    scores = values.filter(pc.equal(values["column_name"], "faithfulness"))
    label = pc.list_flatten(pc.map_lookup(labels["fields_text"], "label", "all"))
    score = pc.list_flatten(pc.map_lookup(scores["fields_number"], "score", "all"))
    import pandas as pd

    frame_l = pd.DataFrame({"id": labels["call_id"].to_pandas(), "label": label.to_pandas()})
    frame_s = pd.DataFrame({"id": scores["call_id"].to_pandas(), "score": score.to_pandas()})
    return calls_frame.to_pandas(), (frame_l, frame_s)


def pandas_query(frames: tuple[Any, Any]) -> Any:
    calls_frame, (labels, scores) = frames
    joined = calls_frame.merge(labels, on="id", how="left").merge(scores, on="id", how="left")
    joined["hour"] = joined["started_at"].dt.floor("1h")
    return joined.groupby(["label", "hour"]).agg(calls=("id", "size"), mean_score=("score", "mean"))


def timed(function: Any, *args: Any) -> tuple[float, Any]:
    started = time.perf_counter()
    result = function(*args)
    return (time.perf_counter() - started) * 1000, result


def figure(name: str, value: float, baseline: float, ratio: float, **extra: Any) -> None:
    print(
        json.dumps(
            {
                "bench": name,
                "value": round(value, 3),
                "baseline": round(baseline, 3),
                "ratio": round(ratio, 3),
                **extra,
            }
        )
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--calls", type=int, default=1_000_000)
    parser.add_argument("--stream-calls", type=int, default=40_000)
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--subject", choices=["ingest", "sink"])
    parser.add_argument("--broker")
    parser.add_argument("--prefix")
    parser.add_argument("--out", type=Path)
    args = parser.parse_args()
    if args.subject:
        run_worker_subject(args.subject, args.broker, args.prefix, args.stream_calls, args.out)
        return

    from weave_stream.broker.embedded import EmbeddedBroker
    from weave_stream.store import Store
    from weave_stream.store.maintenance import info

    # (a) the sink next to ingest
    rates: dict[str, list[float]] = {"ingest": [], "sink": []}
    sink_bytes: dict[str, float] = {}
    with EmbeddedBroker() as broker:
        for round_ in range(args.rounds):
            # Alternate who goes first: on a shared machine the load drifts within a round.
            order = ("ingest", "sink") if round_ % 2 == 0 else ("sink", "ingest")
            for subject in order:
                result = worker_rate(subject, broker.url, args.stream_calls, broker.address)
                rates[subject].append(result["rate"])
                if subject == "sink":
                    sink_bytes = result
            print(
                f"round {round_ + 1}: ingest alone {rates['ingest'][-1]:,.0f} calls/s, "
                f"sink with ingest {rates['sink'][-1]:,.0f} calls/s"
            )

    # (b) 1 M calls, three derived columns
    folder = Path(tempfile.mkdtemp(prefix="bench-store-"))
    made = generate_store(folder, args.calls)
    print(
        f"generated {args.calls:,} calls and {3 * args.calls:,} values in {made['seconds']:.0f} s"
    )
    timings: dict[str, list[float]] = {"ours": [], "duckdb": [], "pandas": [], "no_refs": []}
    frames = pandas_frames(folder)
    for _ in range(args.rounds + 2):
        spent, mine = timed(ours, folder)
        timings["ours"].append(spent)
        spent, theirs = timed(duckdb_baseline, folder)
        timings["duckdb"].append(spent)
        spent, _ = timed(pandas_query, frames)
        timings["pandas"].append(spent)
        spent, _ = timed(ours_without_refs, folder)
        timings["no_refs"].append(spent)
    groups_ours = mine.num_rows
    groups_duckdb = theirs.num_rows
    assert groups_ours == groups_duckdb, (groups_ours, groups_duckdb)
    median = {k: statistics.median(v) for k, v in timings.items()}

    # (c) point lookups
    from weave_stream import calls

    columns = [f"{TOPOLOGY}.doc_class.label", f"{TOPOLOGY}.faithfulness.score", f"{TOPOLOGY}.words"]
    lookups = []
    for i in range(0, args.calls, max(1, args.calls // 15)):
        query = calls(store=folder, call_ids=[f"019a{i:028x}"], columns=columns)
        spent, row = timed(query.to_pandas)
        assert len(row) == 1
        lookups.append(spent)

    sizes = {t.table: t for t in info(Store(folder))}
    per_call = sizes["calls"].bytes / sizes["calls"].rows
    per_value = sizes["values"].bytes / sizes["values"].rows

    print()
    print(f"{'figure':<44}{'median':>12}{'rounds':>40}")
    print(
        f"{'ingest alone (calls/s)':<44}{statistics.median(rates['ingest']):>12,.0f}"
        f"{', '.join(f'{v:,.0f}' for v in rates['ingest']):>40}"
    )
    sunk = statistics.median(rates["sink"])
    print(
        f"{'store sink with ingest (calls/s committed)':<44}{sunk:>12,.0f}"
        f"{', '.join(f'{v:,.0f}' for v in rates['sink']):>40}"
    )
    for name in ("ours", "no_refs", "duckdb", "pandas"):
        print(
            f"{'group-by, ' + name + ' (ms)':<44}{median[name]:>12,.0f}"
            f"{', '.join(f'{v:,.0f}' for v in timings[name]):>40}"
        )
    print(f"{'point lookup (ms)':<44}{statistics.median(lookups):>12,.1f}")
    print(f"{'bytes per call / per value (generated)':<44}{per_call:>12,.0f}{per_value:>40,.0f}")
    print(f"{'  (JSON of a call before the store)':<44}{made['json_bytes_per_call']:>12,.0f}")
    sink_per_call = sink_bytes["bytes"] / max(1, sink_bytes["rows"])
    label = f"bytes per call (sink, {int(sink_bytes['files'])} files)"
    print(f"{label:<44}{sink_per_call:>12,.0f}")
    print(f"groups: {groups_ours:,} (each with its call ids)")
    print()
    sink, ingest = statistics.median(rates["sink"]), statistics.median(rates["ingest"])
    figure("store_sink_vs_ingest", sink, ingest, sink / ingest)
    figure(
        "calls_query_vs_duckdb",
        median["ours"],
        median["duckdb"],
        median["duckdb"] / median["ours"],
        pandas_ms=round(median["pandas"], 1),
    )
    figure(
        "calls_query_vs_pandas", median["ours"], median["pandas"], median["pandas"] / median["ours"]
    )
    figure(
        "calls_query_without_refs_vs_duckdb",
        median["no_refs"],
        median["duckdb"],
        median["duckdb"] / median["no_refs"],
    )
    print(json.dumps({"bench": "point_lookup_ms", "value": round(statistics.median(lookups), 2)}))
    print(
        json.dumps(
            {
                "bench": "bytes_per_call",
                "value": round(per_call),
                "per_value": round(per_value),
                "json_per_call": round(made["json_bytes_per_call"]),
                "sink_small_files": round(sink_per_call),
            }
        )
    )


if __name__ == "__main__":
    main()
