"""Datasets from the call store: rows are pandas on the same calls, versions read back exactly.

The store holds the real trace trees of ``tests/support/store_data`` (predict roots, their
openai.chat and retrieve children, embed grandchildren) with three derived columns.
"""

from __future__ import annotations

import threading
from collections import Counter
from pathlib import Path
from typing import Any

import orjson
import pandas as pd
import pytest
from click.testing import CliRunner

from tests.support.store_data import TOPOLOGY, trace_calls, truth
from weave_stream import calls
from weave_stream.cli.main import cli
from weave_stream.datasets import Dataset, NewRow, list_datasets, read_export, write_rows
from weave_stream.errors import DatasetError
from weave_stream.experiments import Experiment, Variant
from weave_stream.ops import op
from weave_stream.runners.local import run_local
from weave_stream.store import Store
from weave_stream.topology.spec import Column

MAPPING = {
    "document": "inputs.document",
    "label": "support.topic.label",
    "score": "support.quality.score",
}


class _Scaled:
    def __init__(self, factor: float = 1.0) -> None:
        self.factor = factor

    def __call__(self, text: str) -> float:
        return len(text) * self.factor


scaled = op(name="scaled_length")(_Scaled)()


@pytest.fixture(scope="module")
def world(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Any]:
    folder = tmp_path_factory.mktemp("store")
    records = trace_calls(60)
    for record in records:  # a Weave project, so rows carry refs
        record["project_id"] = "acme/support"
    result = run_local(TOPOLOGY, records, store=folder)
    return {"store": Store(folder), "truth": truth(records, result.values), "result": result}


def records(frame: pd.DataFrame) -> list[dict[str, Any]]:
    """Rows as dicts, a missing value as None (pandas reads None in a float column as NaN)."""
    return [
        {k: None if isinstance(v, float) and pd.isna(v) else v for k, v in row.items()}
        for row in frame.to_dict(orient="records")
    ]


def test_a_query_becomes_a_dataset_whose_rows_are_pandas_on_the_same_calls(
    world: dict[str, Any],
) -> None:
    store, t = world["store"], world["truth"]
    query = calls(store=store, op="predict", sort="started_at")
    dataset = query.to_dataset("predict-all", MAPPING)
    got = dataset.to_pandas()
    want = t[t["op"] == "predict"].sort_values("started_at")
    assert got["source_call"].tolist() == want["id"].tolist()
    assert got["document"].tolist() == want["document"].tolist()
    assert got["label"].tolist() == want["label"].tolist()
    scores = [None if pd.isna(s) else s for s in want["score"]]
    assert [None if pd.isna(s) else s for s in got["score"]] == scores
    assert got["source_ref"].tolist() == [f"weave:///acme/support/call/{i}" for i in want["id"]]
    assert got["id"].is_unique and list(got.columns) == [
        "id",
        "document",
        "label",
        "score",
        "source_call",
        "source_ref",
    ]
    assert dataset.mapping == MAPPING and dataset.latest.version == 0
    assert dataset.latest.source["query"] == "calls(op=predict)"


def test_child_calls_of_every_parent_over_a_multi_level_trace(world: dict[str, Any]) -> None:
    store, t = world["store"], world["truth"]
    parents = calls(store=store, op="predict", where={"support.topic.label": "money"})
    chosen = t[(t["op"] == "predict") & (t["label"] == "money")]
    assert 0 < len(chosen) < (t["op"] == "predict").sum()
    chats = parents.children(op_name="openai.chat").to_dataset("chats", {"query": "inputs.query"})
    rows = chats.to_pandas()
    want = t[t["parent_id"].isin(set(chosen["id"])) & (t["op"] == "openai.chat")]
    assert sorted(rows["source_call"]) == sorted(want["id"])
    assert dict(zip(rows["source_call"], rows["query"], strict=True)) == {
        i: q["query"] for i, q in zip(want["id"], want["inputs"], strict=True)
    }
    # Grandchildren: two embeds under each chosen predict's retrieve call, none elsewhere.
    embeds = parents.children(op_name="embed", recursive=True)
    leaves = embeds.to_dataset("leaves", {"text": "inputs.text"}).to_pandas()
    traces = Counter(t.set_index("id").loc[leaves["source_call"], "trace_id"])
    assert traces == Counter(dict.fromkeys(chosen["trace_id"], 2))
    assert (
        Dataset("leaves", store).latest.source["query"].endswith(".children(recursive, op=embed)")
    )


def test_versions_are_immutable_and_read_back_exactly(
    world: dict[str, Any], tmp_path: Path
) -> None:
    store = world["store"]
    early = calls(store=store, op="predict", sort="started_at", limit=10)
    data = early.to_dataset("versions", MAPPING)
    first = data.rows()
    later = calls(store=store, op="predict", sort="started_at", limit=25)
    with pytest.raises(DatasetError, match=r"exists .*append"):
        later.to_dataset("versions", MAPPING)
    later.to_dataset("versions", append=True)  # the remembered mapping; 10 of 25 are in
    second = data.rows()
    assert [r["source_call"] for r in second[:10]] == [r["source_call"] for r in first]
    assert len(second) == 25 and len({r["source_call"] for r in second}) == 25
    gone = [second[3]["id"], second[12]["id"]]
    third = data.remove(gone, note="mislabelled")
    assert (third.version, third.rows, third.removed) == (2, 23, 2)
    assert data.rows(version=0) == first and data.rows(version=1) == second
    assert data.rows() == [r for r in second if r["id"] not in gone]
    diff = data.diff(0, 2)
    assert {r["id"] for r in diff.added} == {r["id"] for r in second[10:]} - set(gone)
    assert [r["id"] for r in diff.removed] == [second[3]["id"]]
    assert [(v.version, v.rows, v.added) for v in data.versions()] == [
        (0, 10, 10),
        (1, 25, 15),
        (2, 23, 0),
    ]
    # A replay of the same query adds nothing, and a removed call is not added back.
    assert later.to_dataset("versions", append=True).latest.version == 2
    summary = {info.dataset: info for info in list_datasets(store)}["versions"]
    assert (summary.rows, summary.version) == (23, 2)
    with pytest.raises(DatasetError, match=r"no version 7; its versions are 0..2"):
        data.rows(version=7)
    # Export round-trips: JSONL and Parquet exactly, CSV for scalar fields.
    frame = data.to_pandas(version=1)
    for suffix in (".jsonl", ".parquet"):
        back = read_export(data.export(tmp_path / f"rows{suffix}", version=1))
        assert records(back) == records(frame) == second
    csv = read_export(data.export(tmp_path / "rows.csv", version=1))
    assert csv["id"].tolist() == frame["id"].tolist()
    assert csv["document"].tolist() == frame["document"].tolist()


def test_mapping_errors_name_the_path_and_the_nearest_known(world: dict[str, Any]) -> None:
    store = world["store"]
    predict = calls(store=store, op="predict")
    with pytest.raises(
        DatasetError,
        match=r"'inputs.documnet' resolves in none of the 60 calls "
        r"the query matched \(nearest known: inputs.document",
    ):
        predict.to_dataset("bad", {"document": "inputs.documnet"})
    with pytest.raises(DatasetError, match=r"nearest known: support.topic.label"):
        predict.to_dataset("bad", {"label": "support.topic.lable"})
    with pytest.raises(DatasetError, match=r"unknown derived column support.topik"):
        predict.to_dataset("bad", {"label": "support.topik.label"})
    with pytest.raises(DatasetError, match="'id' is a column every row has"):
        predict.to_dataset("bad", {"id": "inputs.document"})
    with pytest.raises(DatasetError, match="matched no calls"):
        calls(store=store, op="nothing").to_dataset("bad", MAPPING)
    with pytest.raises(DatasetError, match="not a dataset name"):
        predict.to_dataset("bad name", MAPPING)
    predict.limit(2).to_dataset("mapped", MAPPING)
    with pytest.raises(DatasetError, match="remembers the mapping"):
        predict.to_dataset("mapped", {"document": "inputs.document"}, append=True)
    with pytest.raises(DatasetError, match=r"no dataset 'nope'.*known: "):
        Dataset("nope", store).rows()
    assert "bad" not in {info.dataset for info in list_datasets(store)}


def test_concurrent_writers_make_gapless_versions_and_add_each_call_once(
    tmp_path: Path,
) -> None:
    store = Store(tmp_path)
    write_rows(store, "shared", [], mapping={"x": "inputs.x"}, create=True)
    errors: list[BaseException] = []

    def add(worker: int) -> None:
        try:
            for batch in range(4):
                # Half of each batch is another writer's too: each call lands once.
                ids = [f"c{batch}-{i}" for i in range(worker * 3, worker * 3 + 6)]
                rows = [NewRow(i, {"x": i}) for i in ids]
                write_rows(store, "shared", rows, mapping={"x": "inputs.x"})
        except BaseException as exc:  # reported below
            errors.append(exc)

    threads = [threading.Thread(target=add, args=(w,)) for w in range(3)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert errors == []
    data = Dataset("shared", store)
    versions = [v.version for v in data.versions()]
    assert versions == list(range(len(versions)))
    rows = data.rows()
    assert Counter(r["source_call"] for r in rows) == Counter(
        {f"c{b}-{i}": 1 for b in range(4) for i in range(12)}
    )
    assert data.latest.rows == len(rows) == 48


def test_a_dataset_runs_through_the_local_runner_as_its_source_calls_or_its_fields(
    world: dict[str, Any],
) -> None:
    store = world["store"]
    data = calls(store=store, op="predict", limit=8, sort="started_at").to_dataset(
        "to-run", MAPPING
    )
    rerun = run_local(TOPOLOGY, data)
    ids = [r["source_call"] for r in data.rows()]
    assert sorted({v.call_id for v in rerun.values}) == sorted(ids)
    original = {(v.call_id, v.column): (v.value, v.error) for v in world["result"].values}
    assert {(v.call_id, v.column): (v.value, v.error) for v in rerun.values} == {
        key: value for key, value in original.items() if key[0] in ids
    }
    # Or its mapped fields, as the inputs of example calls (a Weave evaluation's shape).
    examples = run_local(TOPOLOGY, data.example_calls(op_name="predict"))
    source = {r["id"]: r["source_call"] for r in data.rows()}
    assert sorted(source) == sorted({v.call_id for v in examples.values})
    assert {(source[v.call_id], v.column): (v.value, v.error) for v in examples.values} == {
        key: value for key, value in original.items() if key[0] in ids
    }


def test_an_experiment_runs_on_a_dataset_its_rows_the_examples(world: dict[str, Any]) -> None:
    store = world["store"]
    data = calls(store=store, op="predict", limit=6, sort="started_at").to_dataset(
        "to-compare", MAPPING
    )
    experiment = Experiment(
        "doc-length",
        data=data,  # anything with to_pandas(): the rows become the examples' inputs
        columns=[Column("chars", scaled, args={"text": "inputs.document"})],
        variants=[Variant("one"), Variant("two", params={"chars": {"factor": 2.0}})],
        scores=["chars"],
        by="inputs.label",
    )
    frame = experiment.run().per_example().set_index(["variant", "example_id"])
    rows = {r["id"]: r for r in data.rows()}
    assert sorted(frame.loc["one"].index) == sorted(rows)  # one example per dataset row
    for row_id, row in rows.items():
        assert frame.loc[("one", row_id), "mean"] == len(row["document"])
        assert frame.loc[("two", row_id), "mean"] == 2 * len(row["document"])
        assert frame.loc[("one", row_id), "class"] == row["label"]


def test_the_dataset_commands(world: dict[str, Any], tmp_path: Path) -> None:
    store, t = world["store"], world["truth"]
    runner = CliRunner()
    base = ["--store-url", store.location]
    select = ["--from-calls", "--op", "predict", "--sort", "started_at"]
    created = runner.invoke(
        cli,
        [
            "dataset",
            "create",
            "cli-set",
            *select,
            "--limit",
            "5",
            "--where",
            "{support.topic.label: other}",
            "--map",
            "document=inputs.document",
            "--map",
            "label=support.topic.label",
            *base,
        ],
    )
    assert created.exit_code == 0, created.output
    assert "version 0, 5 rows" in created.output
    again = runner.invoke(cli, ["dataset", "create", "cli-set", *select, "--map", "x=op", *base])
    assert again.exit_code == 1 and "exists (5 rows, version 0)" in again.output
    money = ["--where", "{support.topic.label: money}", "--limit", "4"]
    added = runner.invoke(cli, ["dataset", "add", "cli-set", *select, *money, *base])
    assert added.exit_code == 0 and "version 1, 9 rows (+4" in added.output
    chats = runner.invoke(
        cli,
        [
            "dataset",
            "create",
            "cli-chats",
            *select,
            "--limit",
            "3",
            "--children-op",
            "openai.chat",
            "--map",
            "query=inputs.query",
            *base,
        ],
    )
    assert chats.exit_code == 0, chats.output
    listed = runner.invoke(cli, ["datasets", *base])
    assert listed.exit_code == 0
    line = next(x for x in listed.output.splitlines() if x.strip().startswith("cli-set "))
    assert line.split()[:3] == ["cli-set", "9", "2"]
    shown = runner.invoke(
        cli, ["dataset", "show", "cli-set", "--version", "0", "--format", "json", *base]
    )
    rows = [orjson.loads(x) for x in shown.output.splitlines()]
    others = t[(t["op"] == "predict") & (t["label"] == "other")].sort_values("started_at")
    assert [r["source_call"] for r in rows] == others["id"].tolist()[:5]
    assert {r["label"] for r in rows} == {"other"}
    out = tmp_path / "cli.parquet"
    exported = runner.invoke(cli, ["dataset", "export", "cli-set", "--out", str(out), *base])
    assert exported.exit_code == 0 and len(read_export(out)) == 9
    first_id = rows[0]["id"]
    removed = runner.invoke(cli, ["dataset", "remove", "cli-set", first_id, *base])
    assert removed.exit_code == 0 and "version 2, 8 rows (-1)" in removed.output
    diff = runner.invoke(cli, ["dataset", "diff", "cli-set", "--from", "0", "--to", "2", *base])
    assert diff.exit_code == 0 and "0 -> 2: +4 -1 rows" in diff.output
    bad = runner.invoke(cli, ["dataset", "add", "nope", *select, *base])
    assert bad.exit_code == 1 and "no dataset 'nope'" in bad.output and "cli-set" in bad.output
    bad_map = runner.invoke(
        cli, ["dataset", "create", "x", *select, "--map", "document=inputs.documnet", *base]
    )
    assert bad_map.exit_code == 1 and "nearest known: inputs.document" in bad_map.output
