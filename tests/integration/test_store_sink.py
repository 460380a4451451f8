"""The store sink on the real broker: the store holds what the topics hold, exactly once.

Every worker runs a store sink; these tests read its tables back and compare them with
the valid-calls topic and the derived topics (after the readers' first-value rule).
"""

from __future__ import annotations

import threading
import time
from collections import Counter
from collections.abc import Callable
from pathlib import Path
from typing import Any

import httpx
import orjson

from tests.support.records import produce_calls, wait_for_records
from tests.support.store_data import unwritable
from tests.support.topologies import (
    ASSETS,
    WORDY,
    covers,
    documents,
    register_file,
    wait_for_values,
)
from tests.support.waiting import wait_until
from weave_stream.columns.values import identity
from weave_stream.config import Settings
from weave_stream.query.calls import calls as store_calls
from weave_stream.runners.workers import WorkerProcess
from weave_stream.store import Store
from weave_stream.store.rows import join_value

COLUMNS = ["words", "size"]


def stored(settings: Settings) -> tuple[Counter[str], dict[tuple, Any], Counter[tuple]]:
    """(call ids, value per identity, rows per identity) in the store now."""
    store = Store(settings.store_location)
    if not store.exists():
        return Counter(), {}, Counter()
    call_ids = Counter(store.table("calls").to_pyarrow_table().column("id").to_pylist())
    rows = [
        r for r in store.table("values").to_pyarrow_table().to_pylist() if r["topology"] == "wordy"
    ]
    keys = [(r["call_id"], r["column_name"], r["op_ref"], r["trial"]) for r in rows]
    return call_ids, {k: join_value(r) for k, r in zip(keys, rows, strict=True)}, Counter(keys)


def wait_for_store(settings: Settings, calls: int, values: int, timeout: float = 120) -> None:
    def counts() -> tuple[int, int]:
        call_ids, by_identity, _ = stored(settings)
        return len(call_ids), len(by_identity)

    wait_until(
        counts,
        timeout,
        f"the store to hold {calls} calls and {values} values",
        until=lambda found: found == (calls, values),
        interval=0.5,
    )


def assert_store_is_the_topics(settings: Settings, produced: list[dict[str, Any]]) -> list[Any]:
    """Each valid call once; each derived value once, equal to the first on its topic."""
    records = wait_for_records(
        settings, settings.topics.valid, lambda rs: len({r.key for r in rs}) >= len(produced)
    )
    valid = {orjson.loads(r.value or b"{}")["id"] for r in records}
    assert valid == {c["id"] for c in produced}
    first = wait_for_values(settings, "wordy", COLUMNS, covers(produced, COLUMNS), timeout=120)
    wait_for_store(settings, len(valid), len(first))
    call_ids, by_identity, rows = stored(settings)
    assert call_ids == Counter(valid)  # every call exactly once
    assert set(rows.values()) == {1}  # every value exactly once
    assert by_identity == {identity(v): v.value for v in first}
    return first


def test_a_write_error_stops_the_sink_loudly_then_the_store_holds_every_call_and_value_once(
    make_settings: Callable[..., Settings], start_worker: Callable[..., WorkerProcess]
) -> None:
    """Disk full or a permission error: the sink stops (metric, /readyz, log) and moves no
    offset; once writable, the store holds exactly what the topics hold; GET /calls reads it.
    A topology whose op calls an op (halves) leaves each value's sub-calls in the store."""
    settings = make_settings(store_batch_seconds=0.3)
    worker = start_worker(settings)
    register_file(settings, WORDY)
    register_file(settings, ASSETS / "halves.py")
    store = Store(settings.store_location)
    calls = documents(["money", "food"], "store", 60)
    calls.append({**calls[0], "id": "thirteen", "inputs": {"document": " ".join(["w"] * 13)}})
    # The sink creates the tables as it starts.
    wait_until(store.present, 30, "the store sink's tables", until=lambda tables: len(tables) >= 3)
    with unwritable(Path(store.uri("calls"))):
        produce_calls(settings, calls)
        ready = wait_until(
            lambda: httpx.get(f"{worker.url}/readyz", timeout=10).json(),
            60,
            "/readyz to list the store sink as failed",
            until=lambda ready: "store-sink" in ready.get("failures", {}),
        )
        assert ready["ready"] is False and "calls table" in ready["failures"]["store-sink"]
        metrics = worker.metrics()
        assert metrics["weave_stream_store_sink_failed"] == 1
        assert metrics['weave_stream_store_sink_failures_total{table="calls"}'] >= 1
        app_ids = [f"{settings.topics.valid}:{p}" for p in (0, 1)]
        assert set(store.transaction_versions("calls", app_ids).values()) == {None}
        assert "store sink stopped" in worker.log_tail(200)
    produce_calls(settings, calls[:10])  # redelivered by a producer: still once in the store
    first = assert_store_is_the_topics(settings, calls)
    wait_until(
        lambda: httpx.get(f"{worker.url}/readyz", timeout=10).status_code,
        60,
        "the sink to report ok again (/readyz 200)",
        until=lambda status: status == 200,
    )
    assert worker.metrics()["weave_stream_store_sink_failed"] == 0
    failed = {v.call_id: v.error for v in first if v.column == "size" and v.error}
    assert "thirteen" in failed
    answer = httpx.get(
        f"{worker.url}/calls",
        params={
            "columns": "wordy.words,wordy.size#error",
            "where": '{"wordy.size#error": {"exists": true}}',
            "limit": "1000",
        },
        timeout=30,
    )
    assert answer.status_code == 200, answer.text
    lines = [orjson.loads(line) for line in answer.text.splitlines()]
    assert {line["id"]: line["wordy.size#error"] for line in lines} == failed
    bad = httpx.get(f"{worker.url}/calls", params={"where": "{status: {gtt: 1}}"}, timeout=30)
    assert bad.status_code == 400 and "unknown operator 'gtt'" in bad.json()["error"]
    assert_sub_calls_are_stored(store, calls)
    rows = worker.metrics()['weave_stream_store_rows_total{table="calls"}']
    assert rows == len(calls)


def assert_sub_calls_are_stored(store: Store, produced: list[dict[str, Any]]) -> None:
    """halves' two count_words calls per call are in the subcalls table, once each, as
    children of its value (not values of their own), and calls().tree draws them."""
    ids = {c["id"] for c in produced}
    frame = wait_until(
        lambda: store_calls(store=store, call_ids=sorted(ids)).sub_calls(),
        120,
        "the store to hold halves' sub-calls",
        until=lambda frame: set(frame["call_id"]) == ids,
        interval=0.5,
    )
    assert len(frame) == 2 * len(ids)  # each once, though some calls were sent twice
    assert set(frame["op_ref"].str.split(":").str[0]) == {"count_words"}
    assert set(frame["position"]) == {"0", "1"} and set(frame["column"]) == {"balance"}
    halves_values = [
        r for r in store.table("values").to_pyarrow_table().to_pylist() if r["topology"] == "halves"
    ]
    assert len(halves_values) == len(ids)  # the sub-calls are not values
    (ref,) = set(frame["column_ref"])
    tree = store_calls(store=store).tree("thirteen", column="balance").splitlines()
    assert tree[0].startswith(f"balance: {ref}") and len(tree) == 3
    assert all(line.startswith("    └─ count_words:") for line in tree[1:])


def test_sigkill_during_commits_again_and_again_leaves_every_call_and_value_once(
    make_settings: Callable[..., Settings], start_worker: Callable[..., WorkerProcess]
) -> None:
    settings = make_settings(store_batch_seconds=0.2, store_batch_rows=40, batch_size=16)
    worker = start_worker(settings, "crashy")
    register_file(settings, WORDY)
    calls = documents(["tech_support", "trivia", "money"], "sigkill", 1200)
    producer = threading.Thread(
        target=lambda: [
            (produce_calls(settings, calls[i : i + 30]), time.sleep(0.1))
            for i in range(0, len(calls), 30)
        ]
    )
    producer.start()
    kills = 0
    while kills < 3:
        # Kill once the sink has written 50 more calls: it is committing batches now.
        before = stored(settings)[0].total()
        target = min(len(calls), before + 50)
        count = wait_until(
            lambda: stored(settings)[0].total(),
            90,
            f"the sink to write calls after a restart (up to {target})",
            until=lambda n: n >= target,  # noqa: B023 -- called within this iteration
        )
        if count == len(calls):
            break  # everything is in: the stream is over
        worker.kill()
        kills += 1
        worker = start_worker(settings, "crashy")
    producer.join()
    assert_store_is_the_topics(settings, calls)
