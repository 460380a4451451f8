"""The call store: typed rows, refusing what is not a store, exactly-once writes, maintenance."""

from __future__ import annotations

import threading
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import orjson
import pyarrow as pa
import pytest
from click.testing import CliRunner
from deltalake import DeltaTable, write_deltalake

from tests.support.store_data import unwritable
from weave_stream import metrics
from weave_stream.cli.main import cli
from weave_stream.columns.derive import DerivedValue
from weave_stream.errors import StoreError
from weave_stream.ingest.call import parse_call_object
from weave_stream.store import FencedError, Store, StoreWriter
from weave_stream.store.maintenance import apply_retention, compact, info, vacuum
from weave_stream.store.rows import (
    call_from_row,
    call_row,
    join_value,
    split_value,
    value_from_row,
    value_row,
)
from weave_stream.store.schema import CALLS_SCHEMA

NOW = datetime(2026, 11, 26, 12, tzinfo=UTC)


def a_call(call_id: str, day: int = 0, **fields: Any) -> Any:
    started = NOW + timedelta(days=day)
    return parse_call_object(
        {
            "id": call_id,
            "op_name": "weave:///acme/app/op/extract:v1",
            "started_at": started.isoformat(),
            "ended_at": (started + timedelta(seconds=2)).isoformat(),
            "inputs": {"document": f"document {call_id}"},
            **fields,
        }
    )


def a_value(call_id: str, value: Any = 0.5, error: str | None = None, **fields: Any) -> Any:
    return DerivedValue(
        call_id=call_id,
        topology="t",
        column=fields.pop("column", "score"),
        op_ref=fields.pop("op_ref", "judge:1"),
        value=None if error else value,
        error=error,
        computed_at=NOW,
        started_at=fields.pop("started_at", NOW),
        **fields,
    )


@pytest.mark.parametrize(
    ("value", "kind", "untyped"),
    [
        (None, "null", False),
        (True, "bool", False),
        (7, "int", False),
        (2**60, "json", True),
        (0.25, "number", False),
        ("money", "text", False),
        ([0.5, -0.25, 1.0], "vector", False),
        ([0.1, 0.2], "json", True),  # not exact in float32: kept as JSON
        (["a", 1], "json", True),
        ({"label": "money", "confidence": 0.93}, "object", False),
        ({"score": 1, "reason": "ok"}, "json", True),  # an int field would come back a float
        ({"label": "x", "spans": [[1, 2]]}, "json", True),
    ],
)
def test_values_split_into_typed_columns_and_come_back_exactly(
    value: Any, kind: str, untyped: bool
) -> None:
    parts = split_value(value)
    assert parts["kind"] == kind
    assert (parts["value_json"] is not None) == untyped
    back = join_value(parts)
    assert back == value and type(back) is type(value)


def test_a_call_row_keeps_every_field_and_extracts_the_filter_columns() -> None:
    call = a_call(
        "c1",
        exception='{"type": "ValueError"}',
        summary={
            "usage": {
                "gpt-4o": {"prompt_tokens": 10, "completion_tokens": 4},
                "small": {"input_tokens": 3, "output_tokens": 1},
            },
            "weave": {
                "costs": {
                    "gpt-4o": {
                        "prompt_tokens_total_cost": 0.01,
                        "completion_tokens_total_cost": 0.02,
                    }
                }
            },
        },
        custom_field={"kept": True},
    )
    row = call_row(call, NOW)
    assert (row["op"], row["status"], row["latency_ms"]) == ("extract", "error", 2000.0)
    assert (row["prompt_tokens"], row["completion_tokens"], row["total_tokens"]) == (13, 5, 18)
    assert row["cost"] == pytest.approx(0.03)
    assert row["date"] == "2026-11-26" and orjson.loads(row["extra"]) == {
        "custom_field": {"kept": True}
    }
    assert call_from_row(row) == call
    assert pa.Table.from_pylist([row], schema=CALLS_SCHEMA).num_rows == 1


def test_rows_give_back_the_value_and_the_call_they_were_made_from() -> None:
    value = a_value("c1", {"score": 0.5, "reason": "ok"}, details={"tokens": 12}, cost=0.01)
    assert value_from_row(value_row(value, NOW)) == value
    start = parse_call_object(
        {"start": {"id": "h1", "started_at": NOW.isoformat(), "inputs": {"q": 1}, "surprise": [1]}}
    )
    assert call_from_row(call_row(start, NOW)) == start
    assert call_row(start, NOW)["kind"] == "start" and call_row(start, NOW)["status"] == "running"


def test_a_folder_that_is_not_a_store_or_another_schema_version_is_a_clear_error(
    tmp_path: Path,
) -> None:
    with pytest.raises(StoreError, match=r"no call store at .*nothing has been written"):
        Store(tmp_path / "missing").table("calls")
    (tmp_path / "notes.txt").write_text("hello")
    with pytest.raises(StoreError, match=r"is not a weave-stream call store.*notes.txt"):
        Store(tmp_path).table("calls")
    other = tmp_path / "other"
    write_deltalake(other / "calls", pa.table({"a": [1]}), name="someone.else")
    with pytest.raises(StoreError, match="not weave-stream's calls table"):
        Store(other).table("calls")
    future = tmp_path / "future"
    DeltaTable.create(future / "calls", CALLS_SCHEMA, name="weave_stream.calls.v2")
    with pytest.raises(StoreError, match=r"schema version 2 .* reads version 1"):
        Store(future).table("calls")
    clutter = tmp_path / "clutter"
    (clutter / "values").mkdir(parents=True)
    (clutter / "values" / "x.csv").write_text("a,b")
    with pytest.raises(StoreError, match=r"values exists and is not a Delta table"):
        Store(clutter).ensure()


def test_a_batch_is_written_once_with_its_offsets_and_a_redelivery_adds_nothing(
    tmp_path: Path,
) -> None:
    store = Store(tmp_path)
    first = StoreWriter(store)
    batch = [a_call(f"c{i}") for i in range(5)]
    result = first.write_calls(batch, txns={"valid:0": 4}, expect={"valid:0": None})
    assert result.written == 5 and store.table("calls").transaction_version("valid:0") == 4
    # A restarted writer (empty index) given the same records looks them up: nothing new.
    again = StoreWriter(store).write_calls(batch, txns={"valid:0": 9}, expect={"valid:0": 4})
    assert (again.written, again.duplicates) == (0, 5)
    assert store.table("calls").to_pyarrow_table().num_rows == 5
    assert store.table("calls").transaction_version("valid:0") == 9
    # A zombie that still believes version 4 is fenced, writing nothing.
    with pytest.raises(FencedError, match="valid:0"):
        first.write_calls([a_call("late")], txns={"valid:0": 12}, expect={"valid:0": 4})
    assert store.table("calls").to_pyarrow_table().num_rows == 5


def test_first_success_wins_an_error_is_superseded_and_halves_are_merged(tmp_path: Path) -> None:
    store = Store(tmp_path)
    StoreWriter(store).write_values([a_value("c1", error="timeout"), a_value("c2", 0.2)])
    later = StoreWriter(store).write_values(
        [a_value("c1", 0.9), a_value("c2", 0.7), a_value("c2", 0.1, op_ref="judge:2")]
    )
    assert (later.written, later.superseded, later.duplicates) == (1, 1, 1)
    rows = {
        (r["call_id"], r["op_ref"]): r for r in store.table("values").to_pyarrow_table().to_pylist()
    }
    assert rows[("c1", "judge:1")]["number"] == 0.9 and rows[("c1", "judge:1")]["error"] is None
    assert rows[("c2", "judge:1")]["number"] == 0.2  # the first success stays
    assert len(rows) == 3
    start = parse_call_object(
        {"start": {"id": "h1", "started_at": NOW.isoformat(), "inputs": {"q": 1}}}
    )
    end = parse_call_object(
        {
            "end": {
                "id": "h1",
                "ended_at": (NOW + timedelta(days=1)).isoformat(),
                "output": "done",
                "summary": {},
            }
        }
    )
    StoreWriter(store).write_calls([end])
    StoreWriter(store).write_calls([start])
    (row,) = store.table("calls").to_pyarrow_table().to_pylist()
    assert (row["kind"], row["output"], row["inputs"]) == ("complete", '"done"', '{"q":1}')


def test_an_end_half_with_both_times_is_stored_as_a_half_until_its_start_comes(
    tmp_path: Path,
) -> None:
    # The weave client's end half carries started_at too; ingest forwards it alone after
    # the merge timeout, marked as a half: the store must not take it for a whole call.
    store = Store(tmp_path)
    times = {"started_at": NOW.isoformat(), "ended_at": (NOW + timedelta(seconds=2)).isoformat()}
    end = parse_call_object({"end": {"id": "h2", **times, "output": "done"}})
    StoreWriter(store).write_calls([end])
    (row,) = store.table("calls").to_pyarrow_table().to_pylist()
    assert row["kind"] == "end"
    start = parse_call_object({"start": {"id": "h2", "started_at": times["started_at"]}})
    StoreWriter(store).write_calls([start.model_copy(update={"inputs": {"q": 2}})])
    (row,) = store.table("calls").to_pyarrow_table().to_pylist()
    assert (row["kind"], row["output"], row["inputs"]) == ("complete", '"done"', '{"q":2}')


def test_a_value_that_fits_no_typed_column_keeps_its_json_and_is_counted(tmp_path: Path) -> None:
    before = metrics.STORE_UNTYPED_VALUES._value.get()
    writer = StoreWriter(Store(tmp_path))
    writer.write_calls([a_call("c1"), a_call("c2")])
    result = writer.write_values(
        [a_value("c1", {"spans": [[0, 4]], "label": "x"}), a_value("c2", {"label": "y"})]
    )
    assert result.untyped == 1 and metrics.STORE_UNTYPED_VALUES._value.get() == before + 1
    from weave_stream import calls

    got = calls(store=tmp_path, columns=["t.score", "t.score.label"]).to_pandas()
    assert got.set_index("id")["t.score.label"].to_dict() == {"c1": "x", "c2": "y"}
    assert got.set_index("id").loc["c1", "t.score"] == {"spans": [[0, 4]], "label": "x"}


def test_two_writers_committing_at_once_both_succeed(tmp_path: Path) -> None:
    store = Store(tmp_path)
    store.ensure()
    gate = threading.Barrier(2)
    results: dict[int, Any] = {}

    def write(partition: int) -> None:
        writer = StoreWriter(Store(tmp_path))
        for round_ in range(5):
            gate.wait()
            batch = [a_call(f"p{partition}-{round_}-{i}") for i in range(20)]
            txn = {f"valid:{partition}": round_}
            results[partition] = writer.write_calls(batch, txns=txn)

    threads = [threading.Thread(target=write, args=(p,)) for p in (0, 1)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    table = store.table("calls")
    assert table.to_pyarrow_table().num_rows == 200
    assert table.transaction_version("valid:0") == table.transaction_version("valid:1") == 4


def test_a_permission_error_is_a_store_error_and_moves_no_offset(tmp_path: Path) -> None:
    store = Store(tmp_path)
    writer = StoreWriter(store)
    writer.write_calls([a_call("c0")], txns={"valid:0": 0})
    with unwritable(tmp_path / "calls"), pytest.raises(StoreError, match="cannot write 1 rows"):
        writer.write_calls([a_call("c1")], txns={"valid:0": 1})
    assert store.table("calls").transaction_version("valid:0") == 0
    writer.write_calls([a_call("c1")], txns={"valid:0": 1})
    assert store.table("calls").to_pyarrow_table().num_rows == 2


def test_retention_drops_only_whole_days_beyond_it_and_compaction_keeps_every_row(
    tmp_path: Path,
) -> None:
    store = Store(tmp_path)
    writer = StoreWriter(store)
    for day in range(-5, 1):
        for batch in range(3):
            calls_ = [a_call(f"d{day}-{batch}-{i}", day=day) for i in range(4)]
            writer.write_calls(calls_)
            writer.write_values([a_value(c.id, started_at=c.started_at) for c in calls_])
    deleted = apply_retention(store, days=3, now=NOW + timedelta(hours=1))
    # Days -5 and -4 end before now - 3 days; day -3 (Nov 23) ends after it and stays.
    kept = {r["id"].rsplit("-", 2)[0] for r in store.table("calls").to_pyarrow_table().to_pylist()}
    assert kept == {"d-3", "d-2", "d-1", "d0"}
    assert deleted["calls"] == 24 and deleted["values"] == 24
    before = {t.table: t for t in info(store)}
    compact(store)
    after = {t.table: t for t in info(store)}
    assert after["calls"].rows == before["calls"].rows == 48
    assert after["calls"].files < before["calls"].files
    assert after["calls"].oldest_event == NOW - timedelta(days=3)
    assert vacuum(store, retention_hours=0, dry_run=True)["calls"]


def test_the_calls_and_store_commands(tmp_path: Path) -> None:
    store = tmp_path / "store"
    writer = StoreWriter(Store(store))
    writer.write_calls([a_call("c1"), a_call("c2", day=1)])
    writer.write_values(
        [
            a_value("c1", {"score": 0.2, "reason": "x"}),
            a_value("c2", {"score": 0.8, "reason": "y"}, started_at=NOW + timedelta(days=1)),
        ]
    )
    runner = CliRunner()
    base = ["--store-url", str(store)]
    shown = runner.invoke(
        cli,
        [
            "calls",
            *base,
            "--columns",
            "inputs.document,t.score.score",
            "--where",
            "{t.score.score: {lt: 0.5}}",
            "--format",
            "json",
        ],
    )
    assert shown.exit_code == 0, shown.output
    (line,) = shown.output.splitlines()
    assert orjson.loads(line) == {
        "id": "c1",
        "inputs.document": "document c1",
        "t.score.score": 0.2,
    }
    bad = runner.invoke(cli, ["calls", *base, "--where", "{t.score.score: {lt: 0.5}"])
    assert bad.exit_code == 1 and "line 1, column 26" in bad.output
    out = tmp_path / "calls.parquet"
    written = runner.invoke(cli, ["calls", *base, "--format", "parquet", "--out", str(out)])
    assert written.exit_code == 0 and pa.parquet.read_table(out).num_rows == 2
    described = runner.invoke(cli, ["store", "info", *base, "--format", "json"])
    tables = {t["table"]: t for t in orjson.loads(described.output)["tables"]}
    assert tables["calls"]["rows"] == 2 and tables["values"]["rows"] == 2
    ranges = [
        "--range-a",
        f"{NOW.isoformat()}..{(NOW + timedelta(hours=1)).isoformat()}",
        "--range-b",
        f"{(NOW + timedelta(days=1)).isoformat()}..",
    ]
    compared = runner.invoke(
        cli, ["compare", "t", "score.score", *ranges, *base, "--format", "csv"]
    )
    assert compared.exit_code == 0, compared.output
    assert "all,t.score.score,1,1,0.2,0.8" in compared.output
