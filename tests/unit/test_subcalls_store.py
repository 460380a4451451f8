"""Sub-calls in the call store: written by run_local(store=) and the store sink's path,
read back as a frame and a tree equal to the local run's, never counted as values."""

from __future__ import annotations

import shutil
from pathlib import Path
from typing import Any

import pandas as pd
import pytest
from aiokafka import TopicPartition

from weave_stream import Column, MemoryCache, Topology, run_local
from weave_stream.columns.tree import tree_records
from weave_stream.errors import QueryError
from weave_stream.metrics import UNREADABLE_RECORDS
from weave_stream.ops import OpResult, op
from weave_stream.query.calls import calls
from weave_stream.runners.streaming.store_sink import _rows
from weave_stream.store import Store, StoreWriter

T0 = 1_795_662_000


def call_list(count: int) -> list[dict[str, Any]]:
    return [
        {"id": f"c{i}", "started_at": T0 + i, "inputs": {"document": f"doc {i}"}}
        for i in range(count)
    ]


@op(name="leaf", batched=True)
def leaf(text: list[str]) -> list[OpResult]:
    return [
        OpResult.failure(f"cannot read {t!r}") if "bad" in t else OpResult(value=len(t), cost=0.5)
        for t in text
    ]


@op(name="middle")
async def middle(text: str) -> int:
    return int(await leaf.acall(text=text)) + int(await leaf.acall(text=text + "!"))


@op(name="top")
async def top(document: str) -> int:
    return int(await middle.acall(text=document)) * 10 + int(await leaf.acall(text=document))


TOPOLOGY = Topology("t", [Column("s", top, args={"document": "inputs.document"})])


def rows(store: Store, table: str) -> list[dict[str, Any]]:
    return list(store.table(table).to_pyarrow_table().to_pylist())


def test_the_tree_read_back_from_the_store_is_the_local_runs(tmp_path: Path) -> None:
    store = Store(tmp_path / "store")
    table = run_local(TOPOLOGY, call_list(3), store=store)
    for call_id in ("c0", "c2"):
        assert calls(store=store).tree(call_id) == table.tree(call_id)
    assert calls(store=store).tree("c1", column="s") == table.tree("c1", column="s")
    frame = calls(store=store, call_ids=["c1"]).sub_calls()
    local = table.sub_calls_frame()
    local = local[local["call_id"] == "c1"].reset_index(drop=True)
    pd.testing.assert_frame_equal(frame[list(local.columns)], local, check_dtype=False)
    assert set(frame["column_ref"]) == {top.ref} and len(frame) == 4
    # Sub-calls are children, not values: one value per call, none of leaf or middle.
    assert [(r["call_id"], r["op_ref"]) for r in rows(store, "values")] == [
        (f"c{i}", top.ref) for i in range(3)
    ]
    assert len(rows(store, "subcalls")) == 3 * 4
    with pytest.raises(QueryError, match="no derived value for call 'nope'"):
        calls(store=store).tree("nope")


def test_running_again_stores_each_sub_call_once(tmp_path: Path) -> None:
    store = Store(tmp_path / "store")
    run_local(TOPOLOGY, call_list(2), store=store)
    before = rows(store, "subcalls")
    again = run_local(TOPOLOGY, call_list(2), MemoryCache(), store=store)  # recomputed
    assert len(again.sub_calls) == len(before) == 8
    after = rows(store, "subcalls")
    assert [(r["call_id"], r["position"]) for r in after] == [
        (r["call_id"], r["position"]) for r in before
    ]


def test_a_failed_sub_call_is_stored_with_its_error_under_the_failed_value(
    tmp_path: Path,
) -> None:
    store = Store(tmp_path / "store")
    bad = [{"id": "b0", "started_at": T0, "inputs": {"document": "bad doc"}}]
    table = run_local(TOPOLOGY, bad, store=store)
    (value,) = table.values
    assert value.error is not None and "cannot read 'bad doc'" in value.error
    frame = calls(store=store).sub_calls()
    # leaf failed, so middle (which did not catch it) failed, so top's value is an error.
    assert frame[["position", "op_ref"]].values.tolist() == [["0", middle.ref], ["0.0", leaf.ref]]
    assert frame["error"].str.contains("cannot read 'bad doc'").all()
    assert "error: SubCallError" in calls(store=store).tree("b0")


def test_the_stream_records_of_trees_store_what_the_local_runner_stores(
    tmp_path: Path,
) -> None:
    table = run_local(TOPOLOGY, call_list(2))
    records = tree_records(table.sub_calls)
    assert len(records) == 2  # one record per value's tree, keyed like its value
    assert sorted(key for key, _ in records) == [b"c0/0", b"c1/0"]
    tp = TopicPartition("w.subcalls.t", 0)
    streamed = _rows("subcalls", [(tp, offset, raw) for offset, (_, raw) in enumerate(records)])
    local_store, stream_store = Store(tmp_path / "local"), Store(tmp_path / "stream")
    StoreWriter(local_store).write_sub_calls(table.sub_calls)
    StoreWriter(stream_store).write_rows("subcalls", streamed, {"w.subcalls.t:0": 1})
    skip = {"stored_at"}
    assert [
        {k: v for k, v in r.items() if k not in skip} for r in rows(stream_store, "subcalls")
    ] == [{k: v for k, v in r.items() if k not in skip} for r in rows(local_store, "subcalls")]
    assert stream_store.transaction_versions("subcalls", ["w.subcalls.t:0"]) == {
        "w.subcalls.t:0": 1
    }


def test_a_store_written_before_sub_calls_were_stored_reads_as_none(tmp_path: Path) -> None:
    store = Store(tmp_path / "store")
    table = run_local(TOPOLOGY, call_list(1), store=store)
    shutil.rmtree(store.uri("subcalls"))
    old = Store(tmp_path / "store")
    assert calls(store=old).sub_calls().empty
    assert calls(store=old).tree("c0") == table.tree("c0").splitlines()[0]


def test_a_record_that_is_not_a_tree_is_skipped_and_counted() -> None:
    tp = TopicPartition("w.subcalls.t", 0)
    counted = UNREADABLE_RECORDS.labels(tp.topic)
    before = counted._value.get()
    assert _rows("subcalls", [(tp, 0, b'{"column_ref": 3, "sub_calls": []}')]) == []
    assert _rows("subcalls", [(tp, 1, b"[1, 2]")]) == []
    assert counted._value.get() == before + 2
