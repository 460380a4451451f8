"""Windowed aggregates on the real broker: against pandas, late calls, expiry, restarts, takeover.

Every test registers a topology of two cheap columns (``tests/assets/wordy.py``: word
count, and a size class that fails on 13-word documents) with one aggregate, streams
calls built from real documents with event times near now, and reads the aggregates
back the way ``weave-stream aggregates`` does (the changelog, every partition merged).
"""

from __future__ import annotations

import asyncio
import math
import time
import urllib.request
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from pathlib import Path

import numpy as np
import orjson
import pandas as pd
import pytest
import yaml

from tests.support.aggregates import (
    NAME,
    make_calls,
    snapshots_now,
    wait_for_rows,
    windows_topology,
)
from tests.support.records import produce_calls, table_key, wait_until_committed
from tests.support.topologies import register_file
from tests.support.waiting import wait_until
from weave_stream.aggregates.queries import drill, query_tables, tables_document
from weave_stream.aggregates.table import AggregateTable
from weave_stream.broker.kafka import read_topic
from weave_stream.config import Settings
from weave_stream.runners.local import local_aggregates
from weave_stream.runners.workers import WorkerProcess
from weave_stream.topology.loader import load_topology

EXACT = ["rows", "words.count", "words.sum", "words.mean", "words.std", "size.errors"]


def truth(calls: list[dict], size: int, step: int) -> pd.DataFrame:
    """Pandas ground truth per (window, size, model), from the calls alone."""
    records = []
    for call in calls:
        words = len(call["inputs"]["document"].split())
        label = None if words == 13 else ("long" if words > 20 else "short")
        started = datetime.fromisoformat(call["started_at"]).timestamp()
        first = math.floor(started / step) * step - size + step
        for window_start in range(int(first), int(started) + 1, step):
            records.append(
                {
                    "window_start": pd.Timestamp(window_start, unit="s", tz=UTC),
                    "size": label,
                    "attributes.model": call["attributes"]["model"],
                    "words": words,
                    "error": label is None,
                }
            )
    frame = pd.DataFrame(records)
    grouped = frame.groupby(["window_start", "size", "attributes.model"], dropna=False)
    out = pd.DataFrame(
        {
            "rows": grouped.size(),
            "words.count": grouped["words"].count(),
            "words.sum": grouped["words"].sum(),
            "words.mean": grouped["words"].mean(),
            "words.std": grouped["words"].std(),
            "size.errors": grouped["error"].sum(),
            "words.p90": grouped["words"].quantile(0.9, interpolation="lower"),
        }
    )
    return out.reset_index()


def assert_matches_truth(table: AggregateTable, calls: list[dict], size: int, step: int) -> None:
    expected = truth(calls, size, step)
    keys = ["window_start", "size", "attributes.model"]
    got = table.frame.copy()
    got["size"] = got["size"].astype(object).where(got["size"].notna(), None)
    expected["size"] = expected["size"].astype(object).where(expected["size"].notna(), None)
    merged = got.merge(expected, on=keys, how="outer", suffixes=("", ".truth"), indicator=True)
    assert (merged["_merge"] == "both").all(), merged[merged["_merge"] != "both"][keys]
    for column in EXACT:
        np.testing.assert_allclose(
            merged[column].astype(float),
            merged[f"{column}.truth"].astype(float),
            rtol=1e-9,
            err_msg=column,
        )
    # DDSketch: within its stated relative error of the true (lower) quantile.
    accuracy = table.relative_accuracy
    error = (merged["words.p90"] - merged["words.p90.truth"]).abs() / merged["words.p90.truth"]
    assert (error <= accuracy + 1e-12).all(), merged[["words.p90", "words.p90.truth"]]


def changelog_partitions(settings: Settings) -> list[tuple[str, int]]:
    """``(key, changelog partition)`` of every record of the aggregates changelog."""

    async def collect() -> list[tuple[str, int]]:
        topic = settings.topics.aggregates_changelog(NAME)
        return [
            (table_key(r.key), r.partition)
            async for r in read_topic(settings, topic)
            if r.key is not None
        ]

    return asyncio.run(collect())


def test_streamed_aggregates_equal_pandas_the_local_runner_and_the_http_api(
    make_settings: Callable[..., Settings],
    start_worker: Callable[..., WorkerProcess],
    tmp_path: Path,
) -> None:
    settings = make_settings()
    worker = start_worker(settings)
    path = windows_topology(tmp_path)
    register_file(settings, path)
    calls = make_calls("truth", datetime.now(UTC) - timedelta(minutes=25), 160)
    produce_calls(settings, calls)
    plans, snapshots = wait_for_rows(settings, len(calls))

    (table,) = query_tables(plans, snapshots)
    assert table.sources == 2 and table.late_rows == 0
    assert_matches_truth(table, calls, size=600, step=300)
    counts = table.frame[["size.counts.short", "size.counts.long"]].sum(axis=1)
    assert (counts + table.frame["size.errors"] == table.frame["rows"]).all()

    # Streaming equals local: the same calls through the local runner.
    local_plans, local = local_aggregates(load_topology(path), calls)
    (local_table,) = query_tables(local_plans, local)
    columns = sorted(table.frame.columns)
    assert columns == sorted(local_table.frame.columns)
    pd.testing.assert_frame_equal(
        table.frame[columns], local_table.frame[columns], check_exact=False, rtol=1e-9
    )

    # Every key sits in the changelog partition of its source partition (its namespace).
    placed = changelog_partitions(settings)
    assert placed and all(int(key.split("/", 1)[0]) == partition for key, partition in placed)
    assert {partition for _, partition in placed} == {0, 1}

    # Drill-down lists only calls of that window and group.
    window = table.frame.sort_values("rows").iloc[-1]
    start = window["window_start"].timestamp()
    group = {"size": window["size"], "attributes.model": window["attributes.model"]}
    found = drill(plans, snapshots, window_start=start, group=group)
    members = {
        c["id"]
        for c in calls
        if start <= datetime.fromisoformat(c["started_at"]).timestamp() < start + 600
        and c["attributes"]["model"] == group["attributes.model"]
        and (len(c["inputs"]["document"].split()) > 20) == (group["size"] == "long")
        and len(c["inputs"]["document"].split()) != 13
    }
    assert found.rows == len(members) == window["rows"]
    assert {ref.call_id for ref in found.sample} <= members and len(found.sample) == 5
    worst = [ref.values["words"] for ref in found.worst]
    assert worst == sorted(worst, reverse=True) and len(worst) == 3
    by_call = {c["id"]: len(c["inputs"]["document"].split()) for c in calls}
    assert worst[0] == max(by_call[m] for m in members)

    # The worker's HTTP API answers the same JSON as the CLI's query.
    with urllib.request.urlopen(f"{worker.url}/aggregates/{NAME}?by=size", timeout=30) as answer:
        served = orjson.loads(answer.read())
    regrouped = query_tables(plans, snapshots, by=["size"])
    assert served == orjson.loads(orjson.dumps(tables_document(NAME, regrouped)))


def test_out_of_order_calls_within_grace_count_and_later_ones_are_reported_late(
    make_settings: Callable[..., Settings],
    start_worker: Callable[..., WorkerProcess],
    tmp_path: Path,
) -> None:
    settings = make_settings()
    worker = start_worker(settings)
    register_file(settings, windows_topology(tmp_path, window="5m", grace="4m"))
    now = datetime.now(UTC)
    in_order = make_calls("order", now - timedelta(minutes=12), 90, spacing=7.0)
    produce_calls(settings, in_order)
    wait_for_rows(settings, len(in_order))

    shuffled = make_calls("shuffled", now - timedelta(seconds=40), 4, spacing=5.0)
    late = make_calls("late", now - timedelta(minutes=40), 2, spacing=5.0)
    produce_calls(settings, [shuffled[2], late[0], shuffled[0], late[1], shuffled[3], shuffled[1]])
    plans, snapshots = wait_for_rows(settings, len(in_order) + 6)

    (table,) = query_tables(plans, snapshots)
    assert table.late_rows == 2  # reported by the query API, not counted in any window
    assert_matches_truth(table, in_order + shuffled, size=300, step=300)
    late_rows = f'weave_stream_aggregate_late_rows_total{{aggregate="by_size",topology="{NAME}"}}'
    scraped = wait_until(
        worker.metrics,
        30,
        f"{late_rows} on the worker's /metrics",
        until=lambda metrics: bool(metrics.get(late_rows)),
        interval=0.5,
        describe=lambda metrics: metrics.get(late_rows),
    )
    assert scraped[late_rows] == 2
    # Closed windows (on event time, or on the wall clock once idle) feed the gauges.
    ends = [
        v for k, v in scraped.items() if k.startswith("weave_stream_aggregate_window_end_seconds")
    ]
    assert ends and max(ends) <= time.time() - 240  # closed: ended a grace period ago
    assert any(k.startswith("weave_stream_aggregate_window_rows{") for k in scraped)


def test_windows_past_retention_are_forgotten(
    make_settings: Callable[..., Settings],
    start_worker: Callable[..., WorkerProcess],
    tmp_path: Path,
) -> None:
    settings = make_settings()
    worker = start_worker(settings)
    register_file(settings, windows_topology(tmp_path, window="1m", grace="10s", retention="1m"))
    now = datetime.now(UTC)
    calls = make_calls("expiry", now - timedelta(minutes=15), 120, spacing=7.0)
    produce_calls(settings, calls)
    # Old panes are deleted as the clock passes them: what stays is the last few minutes.
    newest = max(datetime.fromisoformat(c["started_at"]).timestamp() for c in calls)

    def table_now() -> AggregateTable:
        (table,) = query_tables(*snapshots_now(settings))
        return table

    table = wait_until(
        table_now,
        90,
        "a window ending after the newest call",
        until=lambda t: not t.frame.empty and t.frame["window_end"].max().timestamp() > newest,
        interval=0.5,
        describe=lambda t: t.frame[["window_start", "window_end", "rows"]].to_dict("records"),
    )
    assert not table.frame.empty
    oldest_kept = table.frame["window_start"].min().timestamp()
    assert oldest_kept >= newest - 60 - 60 - 60  # retention after the window's end, plus a pane
    assert table.frame["rows"].sum() < len(calls)
    buckets = worker.metrics()[f'weave_stream_aggregate_buckets{{topology="{NAME}"}}']
    assert buckets <= 2 * 3 * 6  # partitions x panes within retention x groups


@pytest.mark.parametrize("takeover", [False, True], ids=["restart", "takeover"])
def test_state_survives_a_killed_worker_restarted_or_taken_over(
    make_settings: Callable[..., Settings],
    start_worker: Callable[..., WorkerProcess],
    tmp_path: Path,
    takeover: bool,
) -> None:
    settings = make_settings(partitions=2)
    first = start_worker(settings, "first")
    if takeover:
        start_worker(settings, "second")
    register_file(settings, windows_topology(tmp_path, window="1h"))
    hour = datetime.now(UTC).replace(minute=0, second=0, microsecond=0)
    before = make_calls("before", hour + timedelta(seconds=1), 80, spacing=1.0)
    produce_calls(settings, before)
    wait_for_rows(settings, len(before))

    first.kill()  # SIGKILL: its topology worker dies with it, nothing flushed or committed
    if not takeover:
        start_worker(settings, "first")
    after = make_calls("after", hour + timedelta(seconds=200), 80, spacing=1.0)
    produce_calls(settings, after)
    wait_for_rows(settings, len(before) + len(after), timeout=150)
    # Replays of uncommitted calls are in once every call is committed: none counts twice.
    wait_until_committed(settings, settings.topics.topology_group(NAME))
    plans, snapshots = snapshots_now(settings)

    (table,) = query_tables(plans, snapshots)
    assert table.late_rows == 0
    # The same buckets took both halves: exact only if each partition's state came back.
    assert_matches_truth(table, before + after, size=3600, step=3600)


def test_an_aggregate_only_topology_reads_call_fields_with_its_own_agent(
    make_settings: Callable[..., Settings],
    start_worker: Callable[..., WorkerProcess],
    tmp_path: Path,
) -> None:
    settings = make_settings()
    worker = start_worker(settings)
    spec = {
        "name": NAME,
        "source": {"op_name": "text-extract"},
        "aggregates": [
            {
                "name": "usage",
                "window": "10m",
                "group_by": ["attributes.model"],
                "metrics": {
                    "duration_seconds": ["count", "mean", "p90"],
                    "summary.usage.gpt-4o-mini.prompt_tokens": ["sum"],
                },
            }
        ],
    }
    path = tmp_path / f"{NAME}.yaml"
    path.write_text(yaml.safe_dump(spec))
    register_file(settings, path)
    calls = make_calls("fields", datetime.now(UTC) - timedelta(minutes=15), 70)
    produce_calls(settings, calls)  # fewer than a batch: the wait timer folds them in
    plans, snapshots = wait_for_rows(settings, len(calls))

    (table,) = query_tables(plans, snapshots)
    records = []
    for call in calls:
        started = datetime.fromisoformat(call["started_at"])
        records.append(
            {
                "window_start": pd.Timestamp(
                    math.floor(started.timestamp() / 600) * 600, unit="s", tz=UTC
                ),
                "attributes.model": call["attributes"]["model"],
                "duration": (datetime.fromisoformat(call["ended_at"]) - started).total_seconds(),
                "tokens": call["summary"]["usage"]["gpt-4o-mini"]["prompt_tokens"],
            }
        )
    grouped = pd.DataFrame(records).groupby(["window_start", "attributes.model"])
    expected = pd.DataFrame(
        {
            "duration_seconds.count": grouped["duration"].count(),
            "duration_seconds.mean": grouped["duration"].mean(),
            "summary.usage.gpt-4o-mini.prompt_tokens.sum": grouped["tokens"].sum(),
        }
    ).reset_index()
    got = table.frame[list(expected.columns)].reset_index(drop=True)
    pd.testing.assert_frame_equal(got, expected, check_exact=False, rtol=1e-9, check_dtype=False)
    scraped = worker.metrics()
    assert scraped[f'weave_stream_topology_calls_total{{topology="{NAME}"}}'] == len(calls)
