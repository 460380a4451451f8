"""Reading aggregates back (changelog entries -> per-partition snapshots), the queries, the
comparison frame, the plots, and the latest-closed-window gauges."""

from __future__ import annotations

import math
from datetime import UTC, datetime
from pathlib import Path

import orjson
import pandas as pd
import pytest

from tests.support.windows_rows import T0, make_rows
from weave_stream import metrics
from weave_stream.aggregates import aggregate_rows, aggregate_table
from weave_stream.aggregates.gauges import OTHER_GROUP, WindowGauges
from weave_stream.aggregates.queries import (
    comparison_frame,
    drill,
    parse_by,
    parse_group,
    plot_tables,
    query_tables,
    tables_document,
)
from weave_stream.aggregates.source import (
    decode_partials,
    partition_namespace,
)
from weave_stream.columns.derive import DerivedValue
from weave_stream.config import load_settings
from weave_stream.errors import QueryError
from weave_stream.ops import op
from weave_stream.runners.local import local_aggregates
from weave_stream.topology.aggregates import parse_aggregates
from weave_stream.topology.spec import Column, Topology
from weave_stream.windows import (
    AggregatePlan,
    AggregateRow,
    WindowState,
    merge_partials,
)

SPEC = {
    "name": "quality",
    "window": {"size": "10m", "step": "5m"},
    "grace": "2m",
    "group_by": ["doc_class", "attributes.model"],
    "metrics": {
        "score": ["count", "mean", "std", "p90", "error_rate"],
        "label": ["counts"],
        "latency_ms": ["mean"],
    },
}


def plan() -> AggregatePlan:
    return AggregatePlan(parse_aggregates([SPEC], "t")[0])


def partitioned(rows: list[AggregateRow], partitions: int = 3) -> dict[str, bytes]:
    """Rows spread over partitions as the streaming runner keeps them, in one table."""
    table: dict[str, bytes] = {}
    for partition in range(partitions):
        state = WindowState([plan()], table, namespace=partition_namespace(partition))
        mine = [row for index, row in enumerate(rows) if index % partitions == partition]
        for start in range(0, len(mine), 50):
            state.apply(mine[start : start + 50])
    return table


def test_changelog_entries_decode_to_one_snapshot_per_partition_that_merge_to_the_whole() -> None:
    rows = make_rows(600, span=1800.0)
    snapshots = decode_partials([plan()], partitioned(rows))["quality"]
    assert len(snapshots) == 3
    assert sum(b.rows for s in snapshots for b in s.panes.values()) == 600
    whole = aggregate_table(plan(), aggregate_rows([plan()], rows)["quality"])
    merged = aggregate_table(plan(), snapshots)
    assert merged.sources == 3
    exact = ["rows", "score.count", "score.mean", "score.std", "score.errors", "label.counts.ok"]
    pd.testing.assert_frame_equal(merged.frame[exact], whole.frame[exact], check_exact=False)


def test_late_rows_duplicates_and_watermarks_come_from_each_partitions_meta() -> None:
    table: dict[str, bytes] = {}
    for partition, late_time in ((0, T0 - 3600), (1, T0 - 7200)):
        state = WindowState([plan()], table, namespace=partition_namespace(partition))
        fresh = AggregateRow(f"p{partition}", T0, {"doc_class": "a"}, {"score": 1.0})
        state.apply([fresh, fresh, AggregateRow(f"late{partition}", late_time, {}, {"score": 0})])
    snapshots = decode_partials([plan()], table)["quality"]
    merged = merge_partials(plan(), snapshots)
    assert (merged.late_rows, merged.duplicates, merged.watermark) == (2, 2, T0)


def test_keys_of_aggregates_a_topology_no_longer_has_are_skipped() -> None:
    table = partitioned(make_rows(30), partitions=1)
    other = AggregatePlan(parse_aggregates([{**SPEC, "name": "renamed"}], "t")[0])
    decoded = decode_partials([other], table)
    assert [len(s.panes) for s in decoded["renamed"]] == [0]


def test_the_changelog_topic_is_fausts_name_for_the_aggregates_table_of_the_topology() -> None:
    settings = load_settings(env={}, topic_prefix="p1")
    assert (
        settings.topics.aggregates_changelog("t")
        == "weave-stream.p1.topology.t-aggregates-changelog"
    )


def test_queries_regroup_filter_by_time_and_drill_into_one_window_and_group() -> None:
    rows = make_rows(400, span=3600.0)
    snapshots = {"quality": decode_partials([plan()], partitioned(rows))["quality"]}
    (by_class,) = query_tables([plan()], snapshots, by=["doc_class"])
    assert by_class.group_keys == ("doc_class",)
    assert by_class.frame.groupby("window_start")["rows"].sum().max() <= 400
    (recent,) = query_tables([plan()], snapshots, since="15m")
    # The newest event is at T0 + 3591 s: windows ending after T0 + 2691 s stay.
    assert recent.frame["window_end"].min() == pd.Timestamp(T0 + 2700, unit="s", tz=UTC)
    assert by_class.frame["window_end"].min() < recent.frame["window_end"].min()
    found = drill([plan()], snapshots, window_start=T0 + 600, group={"doc_class": "food"})
    in_window = [r for r in rows if T0 + 600 <= r.event_time < T0 + 1200]
    assert found.rows == sum(1 for r in in_window if r.fields["doc_class"] == "food")
    listed = found.sample + found.worst
    assert listed and all(ref.group[0] == "food" for ref in listed)
    assert all(T0 + 600 <= ref.event_time < T0 + 1200 for ref in listed)
    document = tables_document("t", [by_class])
    assert orjson.loads(orjson.dumps(document))["aggregates"][0]["group_by"] == ["doc_class"]


def test_query_arguments_are_checked_with_a_message_that_says_what_to_do() -> None:
    snapshots = {"quality": aggregate_rows([plan()], make_rows(10))["quality"]}
    with pytest.raises(QueryError, match="choose --by among"):
        query_tables([plan()], snapshots, aggregate="quality", by=["model"])
    with pytest.raises(QueryError, match="no aggregate 'nope'"):
        query_tables([plan()], snapshots, aggregate="nope")
    with pytest.raises(QueryError, match="not key=value"):
        parse_group(["doc_class"])
    assert parse_by(["doc_class, attributes.model"]) == ["doc_class", "attributes.model"]
    assert parse_group(["doc_class="]) == {"doc_class": ""}


def test_plots_are_written_one_per_aggregate(tmp_path: Path) -> None:
    rows = make_rows(300, span=1800.0, trials=2)
    snapshots = {"quality": aggregate_rows([plan()], rows)["quality"]}
    tables = query_tables([plan()], snapshots, by=["doc_class"])
    written = plot_tables([plan()], snapshots, tables, tmp_path / "q.png")
    assert written == [tmp_path / "q.png"] and written[0].stat().st_size > 10_000


def test_the_comparison_frame_pairs_two_columns_per_call_and_trial_with_the_class() -> None:
    at = datetime(2026, 11, 26, tzinfo=UTC)

    def v(
        call: str, column: str, content: object, trial: int = 0, ref: str = "r:1"
    ) -> DerivedValue:
        return DerivedValue(
            call_id=call,
            topology="t",
            column=column,
            op_ref=ref,
            trial=trial,
            value=content,
            computed_at=at,
        )

    values = [
        v("c1", "v1", {"label": "money", "confidence": 0.6}),
        v("c1", "v2", {"label": "money", "confidence": 0.9}),
        v("c2", "v1", {"label": "food", "confidence": 0.4}),
        v("c2", "judge", {"score": 0.5}, ref="judge:a"),
        v("c2", "judge", {"score": 0.7}, ref="judge:b"),
        v("c2", "judge", {"score": 0.8}, trial=1, ref="judge:b"),
    ]
    frame = comparison_frame(values, ["v1.confidence", "v2.confidence"], by="v1")
    records = frame.sort_values("call_id").to_dict("records")
    assert records[0] == {
        "call_id": "c1",
        "trial": 0,
        "v1": "money",
        "v1.confidence": 0.6,
        "v2.confidence": 0.9,
    }
    assert records[1]["v1"] == "food" and pd.isna(records[1]["v2.confidence"])
    refs = comparison_frame(values, ["judge"], by="v1", by_refs=True)
    found = zip(refs["judge.op_ref"], refs["trial"], refs["judge"], refs["v1"], strict=True)
    assert sorted(found) == [
        ("judge:a", 0, 0.5, "food"),
        ("judge:b", 0, 0.7, "food"),
        ("judge:b", 1, 0.8, "food"),  # trial 1 still grouped by the deterministic v1
    ]


def test_local_aggregates_run_the_topology_and_aggregate_its_values() -> None:
    @op
    def words(text: str) -> int:
        return len(text.split())

    topology = Topology(
        "local",
        [Column("words", words, args={"text": "inputs.document"})],
        aggregates=[{"name": "w", "window": "1h", "metrics": {"words": ["sum", "count"]}}],
    )
    calls = [
        {
            "id": f"c{i}",
            "started_at": T0 + i,
            "ended_at": T0 + i + 1,
            "inputs": {"document": "one two three"[: 3 + 4 * (i % 3)]},
        }
        for i in range(9)
    ]
    plans, snapshots = local_aggregates(topology, calls)
    (table,) = query_tables(plans, snapshots)
    assert table.frame[["rows", "words.count", "words.sum"]].values.tolist() == [[9, 9, 18]]


def gauge(name: str, **labels: str) -> float | None:
    value = metrics.REGISTRY.get_sample_value(name, labels)
    return None if value is None else float(value)


def test_gauges_show_the_newest_closed_window_with_bounded_groups_merged_exactly() -> None:
    spec = parse_aggregates(
        [
            {
                "name": "g",
                "window": "1m",
                "grace": "0s",
                "group_by": ["c"],
                "metrics": {"s": ["mean"]},
            }
        ],
        "gauge-test",
    )[0]
    state = WindowState([spec], {})
    gauges = WindowGauges("gauge-test", [AggregatePlan(spec)], max_groups=2)
    first = [
        AggregateRow(f"a{i}", float(i), {"c": "abcd"[i % 4]}, {"s": float(i)}) for i in range(12)
    ]
    gauges.observe(state.apply([*first, AggregateRow("tick", 61.0, {"c": "e"}, {"s": 0.0})]).closed)
    labels = {"topology": "gauge-test", "aggregate": "g"}
    rows = {g: gauge("weave_stream_aggregate_window_rows", **labels, group=g) for g in "abcd"}
    assert rows == {"a": 3.0, "b": 3.0, "c": None, "d": None}
    other = [i for i in range(12) if i % 4 >= 2]
    assert gauge("weave_stream_aggregate_window_rows", **labels, group=OTHER_GROUP) == 6.0
    assert gauge(
        "weave_stream_aggregate_window_mean", **labels, column="s", group=OTHER_GROUP
    ) == pytest.approx(sum(other) / 6)
    assert gauge("weave_stream_aggregate_window_end_seconds", **labels) == 60.0
    # The next window has one group: the others' series go away.
    gauges.observe(
        state.apply(
            [
                AggregateRow("e", 90.0, {"c": "e"}, {"s": 5.0}),
                AggregateRow("tick2", 125.0, {"c": "e"}, {"s": 1.0}),
            ]
        ).closed
    )
    assert gauge("weave_stream_aggregate_window_rows", **labels, group="e") == 2.0
    assert gauge("weave_stream_aggregate_window_rows", **labels, group="a") is None
    assert gauge("weave_stream_aggregate_window_end_seconds", **labels) == 120.0
    assert not math.isnan(
        gauge("weave_stream_aggregate_window_mean", **labels, column="s", group="e") or math.nan
    )
