"""The batch updater against a pandas ground truth: tumbling and hopping windows, late and
out-of-order rows, partitions merged at query time, expiry, restart, redelivery."""

from __future__ import annotations

import math
import random

import numpy as np
import pandas as pd
import pytest
from scipy import stats

from tests.support.windows_rows import (
    EXACT,
    GROUP_BY,
    T0,
    assert_matches_truth,
    late_flags,
    make_rows,
    spec_for,
    table_frame,
    truth,
)
from weave_stream import metrics
from weave_stream.aggregates import aggregate_rows, aggregate_table, compute_aggregates, drill_down
from weave_stream.topology.aggregates import parse_aggregates
from weave_stream.windows import (
    AggregatePlan,
    AggregateRow,
    WindowState,
    merge_partials,
)


def test_tumbling_windows_equal_pandas_ground_truth() -> None:
    spec = spec_for("10m")
    rows = make_rows(3000)
    frame = table_frame(spec, aggregate_rows([spec], rows)["quality"])
    assert_matches_truth(frame, truth(rows, 600, 600, GROUP_BY), ["window_start", *GROUP_BY])


def test_ci95_is_students_t_interval_of_the_mean() -> None:
    spec = spec_for("1h")
    rows = make_rows(500)
    frame = table_frame(spec, aggregate_rows([spec], rows)["quality"], by=["doc_class"])
    for record in frame.to_dict("records"):
        scores = [
            r.values["score"]
            for r in rows
            if "score" in r.values
            and r.fields["doc_class"] == record["doc_class"]
            and record["window_start"] <= r.event_time < record["window_start"] + 3600
        ]
        low, high = stats.t.interval(
            0.95, len(scores) - 1, loc=np.mean(scores), scale=stats.sem(scores)
        )
        assert record["score.ci95_low"] == pytest.approx(low, rel=1e-9)
        assert record["score.ci95_high"] == pytest.approx(high, rel=1e-9)


def test_hopping_windows_out_of_order_within_grace_equal_ground_truth() -> None:
    spec = spec_for({"size": "30m", "step": "10m"}, grace="2m")
    rows = make_rows(3000, jitter=90.0)  # out of order by up to 90 s, inside the grace period
    assert not any(late_flags(rows, 600, 120))
    state = WindowState([spec], {})
    for start in range(0, len(rows), 250):
        assert state.apply(rows[start : start + 250]).late == {"quality": 0}
    frame = table_frame(spec, state.snapshot("quality"))
    assert_matches_truth(frame, truth(rows, 1800, 600, GROUP_BY), ["window_start", *GROUP_BY])
    assert set(frame["window_start"] % 600) == {0}
    assert frame.groupby("window_start")["rows"].sum().max() > 0


def test_late_rows_are_counted_reported_and_left_out() -> None:
    spec = spec_for("5m", grace="30s")
    rows = make_rows(2000, jitter=240.0)  # some arrive after their pane closed
    flags = late_flags(rows, 300, 30)
    assert 20 < sum(flags) < len(rows) / 2
    before = metrics.AGGREGATE_LATE_ROWS.labels("late-test", "quality")._value.get()
    state = WindowState([spec], {}, topology="late-test")
    late = sum(state.apply(rows[i : i + 100]).late["quality"] for i in range(0, len(rows), 100))
    assert late == sum(flags)
    snapshot = state.snapshot("quality")
    assert snapshot.late_rows == sum(flags)
    assert metrics.AGGREGATE_LATE_ROWS.labels("late-test", "quality")._value.get() - before == late
    table = aggregate_table(spec, snapshot)
    assert table.late_rows == sum(flags) and f"{sum(flags)} late row(s)" in table.format("table")
    on_time = [row for row, is_late in zip(rows, flags, strict=True) if not is_late]
    frame = table_frame(spec, snapshot)
    assert_matches_truth(frame, truth(on_time, 300, 300, GROUP_BY), ["window_start", *GROUP_BY])


def test_partials_split_across_partitions_merge_to_the_whole() -> None:
    spec = spec_for({"size": "20m", "step": "5m"})
    rows = make_rows(3000, seed=11)
    rng = random.Random(3)
    partitions: list[list[AggregateRow]] = [[], [], []]
    for row in rows:
        partitions[rng.randrange(3)].append(row)
    snapshots = []
    for number, part in enumerate(partitions):
        state = WindowState([spec], {}, namespace=f"p{number}/")
        for start in range(0, len(part), 100):
            state.apply(part[start : start + 100])
        snapshots.append(state.snapshot("quality"))
    merged = merge_partials(AggregatePlan(spec), snapshots)
    assert merged.sources == 3
    frame = table_frame(spec, snapshots)
    assert_matches_truth(frame, truth(rows, 1200, 300, GROUP_BY), ["window_start", *GROUP_BY])
    single = aggregate_rows([spec], rows)["quality"]
    whole = table_frame(spec, single)
    pd.testing.assert_frame_equal(
        frame[EXACT], whole[EXACT], check_exact=False, rtol=1e-9, check_dtype=False
    )
    start, group = int(T0) + 1200, {"doc_class": "food"}
    split = drill_down(spec, snapshots, window_start=start, group=group)
    one = drill_down(spec, single, window_start=start, group=group)
    assert [ref.call_id for ref in split.sample] == [ref.call_id for ref in one.sample]
    assert [(ref.call_id, ref.score) for ref in split.worst] == [
        (ref.call_id, ref.score) for ref in one.worst
    ]


def test_streaming_in_small_batches_equals_local_runner() -> None:
    spec = spec_for({"size": "15m", "step": "5m"})
    rows = make_rows(1500, seed=5, jitter=60.0)
    state = WindowState([spec], {})
    for start in range(0, len(rows), 37):
        state.apply(rows[start : start + 37])
    streamed = aggregate_table(spec, state.snapshot("quality")).frame
    local = compute_aggregates([spec], rows)["quality"].frame
    columns = [c for c in local.columns if not c.startswith("score.ci95")]
    pd.testing.assert_frame_equal(streamed[columns], local[columns], check_exact=False, rtol=1e-9)


def test_windows_expire_after_retention_and_memory_stays_bounded() -> None:
    spec = spec_for("1m", grace="10s", retention="3m")
    table: dict[str, bytes] = {}
    state = WindowState([spec], table)
    most = 0
    for minute in range(60):
        batch = [
            AggregateRow(
                f"m{minute}-{i}",
                T0 + 60 * minute + i,
                {"doc_class": CLASS, "attributes.model": "m"},
                values={"score": 0.5},
            )
            for i in range(30)
            for CLASS in ("food", "money")
        ]
        state.apply(batch)
        most = max(most, state.bucket_count())
    # panes kept: the current one and those within size + retention = 4 minutes behind it
    assert most <= 2 * 5
    starts = {pane for pane, _ in state.snapshot("quality").panes}
    assert min(starts) >= T0 + 60 * 59 - 60 - 180
    assert sum(1 for key in table if key.startswith("b/")) == state.bucket_count()


def test_state_survives_a_restart_from_its_table() -> None:
    spec = spec_for({"size": "20m", "step": "10m"})
    rows = make_rows(2000, seed=9, jitter=30.0)
    table: dict[str, bytes] = {}
    first = WindowState([spec], table)
    for start in range(0, 1000, 100):
        first.apply(rows[start : start + 100])
    restarted = WindowState([spec], table)  # as a new worker restoring the changelog
    assert restarted.clock == first.clock and restarted.bucket_count() == first.bucket_count()
    restarted.apply(rows[900:1000])  # the uncommitted batch, redelivered after the crash
    for start in range(1000, 2000, 100):
        restarted.apply(rows[start : start + 100])
    frame = table_frame(spec, restarted.snapshot("quality"))
    assert_matches_truth(frame, truth(rows, 1200, 600, GROUP_BY), ["window_start", *GROUP_BY])
    assert restarted.snapshot("quality").duplicates == 100


def test_each_identity_counts_once() -> None:
    spec = parse_aggregates(
        [{"name": "q", "window": "1h", "metrics": {"s": ["count"], "t": ["count"]}}], "t"
    )[0]
    state = WindowState([spec], {})

    def row(call: str, trial: int = 0, ref: str = "op:1", **values: float) -> AggregateRow:
        return AggregateRow(
            call, T0, values=values, op_refs=dict.fromkeys(values, ref), trial=trial
        )

    report = state.apply([row("a", s=1.0), row("a", s=1.0), row("b", s=2.0)])
    assert (report.fresh, report.duplicates) == (2, 1)
    report = state.apply([row("a", s=1.0, t=5.0)])  # t is new for call a, s is not
    assert (report.fresh, report.duplicates) == (1, 0)
    state.apply([row("a", ref="op:2", s=1.5), row("a", trial=1, s=1.2), row("b", s=2.0)])
    figures = aggregate_table(spec, state.snapshot("q")).frame.iloc[0]
    assert figures["s.count"] == 4 and figures["t.count"] == 1


def test_dedupe_memory_is_bounded_and_forgets_the_oldest() -> None:
    spec = parse_aggregates([{"name": "q", "window": "1h", "metrics": {"s": ["count"]}}], "t")[0]
    table: dict[str, bytes] = {}
    state = WindowState([spec], table, dedupe_capacity=100)
    for batch in range(10):
        state.apply([AggregateRow(f"c{batch}-{i}", T0, values={"s": 1.0}) for i in range(30)])
    assert 100 <= len(state.seen) <= 130
    assert sum(1 for key in table if key.startswith("s/")) <= 5
    assert state.apply([AggregateRow("c9-0", T0, values={"s": 1.0})]).duplicates == 1
    assert state.apply([AggregateRow("c0-0", T0, values={"s": 1.0})]).duplicates == 0


def test_idle_stream_closes_its_last_window_on_the_wall_clock() -> None:
    spec = spec_for("5m", grace="1m")
    state = WindowState([spec], {})
    rows = make_rows(200, span=280.0)  # all in the first window
    assert state.apply(rows, now=T0 + 281).closed == []
    assert state.close_due(now=T0 + 330).closed == []  # before end + grace
    closed = state.close_due(now=T0 + 360).closed
    assert {w.window_start for w in closed} == {T0}
    assert sum(w.bucket.rows for w in closed) == 200
    assert state.close_due(now=T0 + 400).closed == []  # emitted once
    late = state.apply([AggregateRow("x", T0 + 10, {"doc_class": "food"}, {"score": 1.0})])
    assert late.late == {"quality": 1}


def test_a_far_future_event_does_not_close_current_windows() -> None:
    spec = spec_for("5m", grace="1m")
    state = WindowState([spec], {}, max_future_skew=600)
    future = AggregateRow("f", T0 + 86400, {"doc_class": "food"}, {"score": 1.0})
    state.apply([future], now=T0)
    assert state.clock == T0  # the wall clock; the far-future event did not move it
    assert state.apply(make_rows(50, span=200.0), now=T0 + 200).late == {"quality": 0}


def test_drill_down_returns_only_calls_of_that_window_and_group() -> None:
    spec = spec_for({"size": "20m", "step": "10m"})
    rows = make_rows(3000, seed=21)
    snapshots = aggregate_rows([spec], rows)["quality"]
    by_id = {(r.call_id, r.trial): r for r in rows}
    start = int(T0) + 1200
    for doc_class in ("food", "science"):
        drill = drill_down(spec, snapshots, window_start=start, group={"doc_class": doc_class})
        members = [
            r
            for r in rows
            if r.fields["doc_class"] == doc_class and start <= r.event_time < start + 1200
        ]
        assert drill.rows == len(members)
        assert 0 < len(drill.sample) <= 8 * 2 * 2  # per pane and model, merged over both
        for ref in [*drill.sample, *drill.worst]:
            source = by_id[(ref.call_id, ref.trial)]
            assert source.fields["doc_class"] == doc_class
            assert start <= source.event_time < start + 1200
        lowest = sorted((r.values["score"], r.call_id) for r in members if "score" in r.values)[:3]
        assert [(ref.score, ref.call_id) for ref in drill.worst] == lowest
    with pytest.raises(Exception, match="not a window start"):
        drill_down(spec, snapshots, window_start=start + 1, group={})


def test_rows_metric_counts_applied_and_duplicate_rows() -> None:
    spec = spec_for("5m")
    applied = metrics.AGGREGATE_ROWS.labels("metric-test", "applied")
    duplicate = metrics.AGGREGATE_ROWS.labels("metric-test", "duplicate")
    before = applied._value.get(), duplicate._value.get()
    state = WindowState([spec], {}, topology="metric-test")
    rows = make_rows(40)
    state.apply(rows)
    state.apply(rows[:10])
    assert applied._value.get() - before[0] == 40
    assert duplicate._value.get() - before[1] == 10
    assert not math.isnan(state.clock)


def test_a_pane_closes_exactly_at_its_end_plus_grace() -> None:
    spec = parse_aggregates(
        [{"name": "q", "window": "1m", "grace": "10s", "metrics": {"s": ["count"]}}], "t"
    )[0]
    state = WindowState([spec], {})

    def at(offset: float, call: str) -> AggregateRow:
        return AggregateRow(call, T0 + offset, values={"s": 1.0})

    assert state.apply([at(69.999, "a"), at(5.0, "b")]).late == {"q": 0}
    assert state.apply([at(70.0, "c"), at(59.0, "d"), at(60.0, "e")]).late == {"q": 1}
