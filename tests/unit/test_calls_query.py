"""calls() over a store written by the local runner: the answers are pandas' on the same data.

The store holds real trace trees (predict roots, their openai.chat and retrieve
children, and embed grandchildren) over three days, and three derived columns of the
predict calls (an int, a classifier's dict, a judge's dict that sometimes fails).
"""

from __future__ import annotations

from collections import Counter
from datetime import timedelta
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import pytest
from scipy import stats

from tests.support.store_data import PREDICT, START, TOPOLOGY, trace_calls, truth
from weave_stream import calls
from weave_stream.columns.values import identity
from weave_stream.errors import QueryError, StoreError
from weave_stream.runners.local import run_local
from weave_stream.store import Store
from weave_stream.store.rows import value_from_row


@pytest.fixture(scope="module")
def world(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Any]:
    folder = tmp_path_factory.mktemp("store")
    records = trace_calls()
    result = run_local(TOPOLOGY, records, store=folder)
    return {"store": Store(folder), "truth": truth(records, result.values), "result": result}


def ids(frame: pd.DataFrame) -> list[str]:
    return sorted(frame["id"])


def test_every_call_and_value_is_stored_once_and_a_second_run_adds_nothing(
    world: dict[str, Any],
) -> None:
    store, expected = world["store"], world["truth"]
    everything = calls(store=store, columns=["op_name"]).to_pandas()
    assert ids(everything) == ids(expected)
    values = store.table("values").to_pyarrow_table().to_pylist()
    identities = Counter((v["call_id"], v["column_name"], v["op_ref"], v["trial"]) for v in values)
    assert set(identities.values()) == {1}
    # The same values as the run's, error for error (the run's first values).
    stored = {identity(v): (v.value, v.error) for v in map(value_from_row, values)}
    assert stored == {identity(v): (v.value, v.error) for v in world["result"].values}
    run_local(TOPOLOGY, trace_calls(), store=store)  # the same calls again
    assert calls(store=store).count() == len(expected)
    assert store.table("values").to_pyarrow_table().num_rows == len(values)


def test_derived_columns_read_as_pandas_computes_them(world: dict[str, Any]) -> None:
    store, expected = world["store"], world["truth"]
    got = calls(
        store=store,
        op="predict",
        columns={
            "document": "inputs.document",
            "words": "support.words",
            "label": "support.topic.label",
            "score": "support.quality.score",
            "error": "support.quality#error",
            "topic": "support.topic",
        },
    ).to_pandas()
    want = expected[expected["op"] == "predict"].set_index("id")
    got = got.set_index("id").loc[want.index]
    assert got["document"].tolist() == want["document"].tolist()
    assert got["words"].tolist() == want["words"].tolist()
    assert got["label"].tolist() == want["label"].tolist()
    pd.testing.assert_series_equal(
        got["score"].astype(float), want["score"].astype(float), check_names=False
    )
    assert got["error"].fillna("").tolist() == want["score_error"].fillna("").tolist()
    assert all(set(topic) == {"label", "confidence"} for topic in got["topic"])


@pytest.mark.parametrize(
    ("where", "expect"),
    [
        (
            {"inputs.document": {"contains": "money"}},
            lambda t: t["document"].fillna("").str.contains("money"),
        ),
        ({"support.quality.score": {"lt": 0.3}}, lambda t: t["score"].fillna(2) < 0.3),
        (
            {"support.topic.label": "money", "support.words": {"ge": 8}},
            lambda t: (t["label"] == "money") & (t["words"].fillna(0) >= 8),
        ),
        (
            {"any": [{"exception": {"exists": True}}, {"support.quality#error": {"exists": True}}]},
            lambda t: t["exception"].notna() | t["score_error"].notna(),
        ),
        ({"not": {"support.topic.label": {"in": ["money"]}}}, lambda t: t["label"] != "money"),
        (
            {"inputs.tags": {"contains": "beta"}},
            lambda t: t["inputs"].map(lambda i: "beta" in i.get("tags", [])),
        ),
        ({"op_name": {"startswith": "weave:///acme"}}, lambda t: t["op_name"] == PREDICT),
        ({"support.words": {"ne": 10}}, lambda t: t["words"] != 10),
    ],
)
def test_filters_select_what_pandas_selects(
    world: dict[str, Any], where: dict[str, Any], expect: Any
) -> None:
    store, expected = world["store"], world["truth"]
    got = calls(store=store, where=where, columns=["op_name"]).to_pandas()
    assert ids(got) == ids(expected[expect(expected)])


def test_weave_filters_and_time_ranges(world: dict[str, Any]) -> None:
    store, t = world["store"], world["truth"]
    since, until = START + timedelta(hours=20), START + timedelta(hours=50)
    got = calls(store=store, since=since.isoformat(), until=until.isoformat(), trace_roots=True)
    window = t[(t["started_at"] >= since) & (t["started_at"] < until) & t["parent_id"].isna()]
    assert ids(got.to_pandas()) == ids(window)
    assert len(got) == len(window) == got.count()
    traced = calls(store=store, trace_id=["t0003", "t0004"], op=["embed", "openai.*"])
    mask = t["trace_id"].isin(["t0003", "t0004"]) & t["op"].isin(["embed", "openai.chat"])
    assert ids(traced.to_pandas()) == ids(t[mask])
    assert ids(calls(store=store, parent_id="r0002").to_pandas()) == ["e00020", "e00021"]
    assert calls(store=store, since="1h").count() == 0  # the data is from 2026-11


def test_sort_limit_and_iteration(world: dict[str, Any]) -> None:
    store, t = world["store"], world["truth"]
    query = calls(
        store=store,
        op="predict",
        columns=["support.quality.score"],
        sort=["support.quality.score", "-id"],
        limit=5,
    )
    rows = list(query)
    lowest = t[t["op"] == "predict"].sort_values(["score", "id"], ascending=[True, False])
    lowest = lowest.head(5)
    assert [r["id"] for r in rows] == lowest["id"].tolist()
    assert [r["support.quality.score"] for r in rows] == lowest["score"].tolist()
    table = query.to_arrow()
    assert table.column_names == ["id", "support.quality.score"] and table.num_rows == 5


def test_group_by_hour_and_label_matches_pandas_and_drills_to_its_calls(
    world: dict[str, Any],
) -> None:
    store, t = world["store"], world["truth"]
    grouped = (
        calls(store=store, op="predict")
        .group_by("support.topic.label", every="6h")
        .agg(
            scored=("support.quality.score", "count"),
            mean=("support.quality.score", "mean"),
            p90=("support.quality.score", "p90"),
            errors=("support.quality", "error_rate"),
        )
    )
    got = grouped.to_pandas()
    predict = t[t["op"] == "predict"].copy()
    predict["time"] = predict["started_at"].dt.floor("6h")
    want = predict.groupby(["label", "time"]).agg(
        calls=("id", "size"),
        scored=("score", "count"),
        mean=("score", "mean"),
        p90=("score", lambda s: s.quantile(0.9)),
        errors=("score_error", lambda s: s.notna().mean()),
        call_ids=("id", sorted),
    )
    got = got.set_index(["support.topic.label", "time"]).sort_index()
    assert list(got.index) == list(want.index)
    assert got["calls"].tolist() == want["calls"].tolist()
    assert got["scored"].tolist() == want["scored"].tolist()
    for name in ("mean", "p90", "errors"):
        np.testing.assert_allclose(got[name].astype(float), want[name].astype(float))
    assert [sorted(i) for i in got["call_ids"]] == want["call_ids"].tolist()
    row = grouped.to_pandas().iloc[3]
    drilled = grouped.drill(row).to_pandas()
    assert ids(drilled) == sorted(row["call_ids"])


def test_children_follow_parent_ids_over_the_trace_tree(world: dict[str, Any]) -> None:
    store, t = world["store"], world["truth"]
    parents = calls(store=store, op="predict", where={"support.topic.label": "money"})
    chosen = set(t[(t["op"] == "predict") & (t["label"] == "money")]["id"])
    chats = parents.children(op_name="openai.chat").to_pandas()
    assert ids(chats) == sorted(t[t["parent_id"].isin(chosen) & (t["op"] == "openai.chat")]["id"])
    descendants = set(chosen)
    frontier = set(chosen)
    while frontier:
        frontier = set(t[t["parent_id"].isin(frontier)]["id"])
        descendants |= frontier
    everyone = parents.children(recursive=True).to_pandas()
    assert ids(everyone) == sorted(descendants - chosen)
    # Any 3 parents (a limit without a sort) have 6 embeds below them, every time: the
    # walk once read the parents twice and, 1 time in 10, two different threes (0 or 4).
    embeds = parents.limit(3).children(op_name="embed", recursive=True)
    assert [len(embeds) for _ in range(20)] == [6] * 20


def test_two_time_ranges_compare_as_scipy_does(world: dict[str, Any]) -> None:
    store, t = world["store"], world["truth"]
    middle = START + timedelta(hours=36)
    a = calls(store=store, op="predict", until=middle.isoformat())
    b = calls(store=store, op="predict", since=middle.isoformat())
    result = a.compare(b, by="support.topic.label", metrics=["support.quality.score"])
    frame = result.frame.set_index("group")
    predict = t[t["op"] == "predict"]
    for group in ("money", "other", "all"):
        part = predict if group == "all" else predict[predict["label"] == group]
        left = part[part["started_at"] < middle]["score"].dropna()
        right = part[part["started_at"] >= middle]["score"].dropna()
        welch = stats.ttest_ind(right, left, equal_var=False)
        interval = welch.confidence_interval(0.95)
        row = frame.loc[group]
        assert (row["n_a"], row["n_b"]) == (len(left), len(right))
        assert row["diff"] == pytest.approx(right.mean() - left.mean())
        assert row["p"] == pytest.approx(welch.pvalue)
        assert (row["ci_low"], row["ci_high"]) == pytest.approx((interval.low, interval.high))
    assert "B - A" not in result.format("csv") and "diff" in result.format("table")


def test_building_a_query_reads_nothing(world: dict[str, Any], tmp_path: Path) -> None:
    store = Store(world["store"].location)
    query = (
        calls(store=store, op="predict", since="30d", where={"support.quality.score": {"lt": 1}})
        .sort("-started_at")
        .limit(3)
    )
    grouped = query.group_by("support.topic.label").agg(n="count")
    children = query.children(op_name="embed")
    assert store.scans == 0
    missing = calls(store=tmp_path / "nowhere", where={"status": "error"}).group_by("op")
    with pytest.raises(StoreError, match=r"no call store at"):
        missing.agg(n="count").to_pandas()
    query.to_pandas()
    assert store.scans == 2  # calls and values, once each
    grouped.to_pandas()
    children.count()
    assert store.scans == 6


def test_unknown_names_and_malformed_filters_say_what_is_known(world: dict[str, Any]) -> None:
    store = world["store"]
    with pytest.raises(QueryError, match=r"support\.quality.*support\.topic.*support\.words"):
        calls(store=store, columns=["support.qualty.score"]).to_pandas()
    with pytest.raises(QueryError, match=r"did you mean 'support.quality'"):
        calls(store=store, columns=["support.qualty.score"]).to_pandas()
    with pytest.raises(QueryError, match="op refs: judge:"):
        calls(store=store, columns=["support.quality@judge:0000.score"]).to_pandas()
    with pytest.raises(QueryError, match=r"where\.any\[1\]\.latency_ms: unknown operator 'gtt'"):
        calls(store=store, where={"any": [{"status": "error"}, {"latency_ms": {"gtt": 1}}]})
    with pytest.raises(QueryError, match=r"where\.status\.in: takes a list"):
        calls(store=store, where={"status": {"in": "error"}})
    with pytest.raises(QueryError, match=r"did you mean the call field inputs.document"):
        calls(store=store, columns=["input.document"]).to_pandas()
    with pytest.raises(QueryError, match="is neither a duration before now"):
        calls(store=store, since="yesterday")


def test_a_pinned_op_ref_and_the_latest_per_call(world: dict[str, Any], tmp_path: Path) -> None:
    from weave_stream.store import StoreWriter

    store = Store(tmp_path / "two-refs")
    records = trace_calls(6)
    result = run_local(TOPOLOGY, records, store=store)
    old = [v for v in result.values if v.column == "quality" and v.error is None]
    newer = [
        v.model_copy(
            update={
                "op_ref": "judge:v2",
                "value": {"score": 2.0, "reason": "v2"},
                "computed_at": v.computed_at + timedelta(days=1),
            }
        )
        for v in old[:2]
    ]
    StoreWriter(store).write_values(newer)
    got = calls(
        store=store,
        op="predict",
        columns={
            "latest": "support.quality.score",
            "pinned": f"support.quality@{old[0].op_ref}.score",
        },
    ).to_pandas()
    got = got.set_index("id")
    assert got.loc[old[0].call_id, "latest"] == 2.0
    assert got.loc[old[0].call_id, "pinned"] == old[0].value["score"]
    assert got.loc[old[2].call_id, "latest"] == got.loc[old[2].call_id, "pinned"]
    assert len(got) == 6  # two op refs never duplicate a call
