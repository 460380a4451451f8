"""Queries over merged partials: re-grouping, --since, output formats, snapshots as JSON,
samples; and the plots and comparisons drawn from them."""

from __future__ import annotations

import io

import numpy as np
import orjson
import pandas as pd
import pytest
from matplotlib.figure import Figure
from scipy import stats

from tests.support.windows_rows import (
    GROUP_BY,
    T0,
    assert_matches_truth,
    make_rows,
    spec_for,
    table_frame,
    truth,
)
from weave_stream.aggregates import aggregate_rows, aggregate_table, drill_down, sample_frame
from weave_stream.aggregates.compare import compare_columns, compare_op_refs, plot_comparison
from weave_stream.aggregates.plots import (
    draw_counts_stacked,
    draw_scores_over_time,
    draw_trial_scatter,
    plot_aggregate,
)
from weave_stream.errors import QueryError
from weave_stream.windows import AggregatePartials, AggregatePlan, AggregateRow, WindowState

PNG_MAGIC = b"\x89PNG\r\n\x1a\n"


@pytest.fixture(scope="module")
def rows() -> list[AggregateRow]:
    return make_rows(2400, seed=13, span=4 * 3600.0, trials=1)


@pytest.fixture(scope="module")
def spec():  # type: ignore[no-untyped-def]
    return spec_for({"size": "30m", "step": "10m"})


@pytest.fixture(scope="module")
def snapshots(spec, rows):  # type: ignore[no-untyped-def]
    # two partitions, as two workers would hold them
    parts = [WindowState([spec], {}), WindowState([spec], {})]
    for index in range(0, len(rows), 100):
        parts[(index // 100) % 2].apply(rows[index : index + 100])
    return [part.snapshot("quality") for part in parts]


def test_regrouping_on_a_subset_of_keys_merges_partials(spec, rows, snapshots) -> None:  # type: ignore[no-untyped-def]
    frame = table_frame(spec, snapshots, by=["doc_class"])
    assert_matches_truth(
        frame, truth(rows, 1800, 600, ["doc_class"]), ["window_start", "doc_class"]
    )
    totals = table_frame(spec, snapshots, by=())
    assert list(totals.columns[:3]) == ["window_start", "window_end", "rows"]
    assert_matches_truth(totals, truth(rows, 1800, 600, []), ["window_start"])
    with pytest.raises(QueryError, match=r"not grouped by \['op_name'\]; choose --by among"):
        aggregate_table(spec, snapshots, by=["op_name"])


def test_since_keeps_windows_ending_after_now_minus_since(spec, snapshots) -> None:  # type: ignore[no-untyped-def]
    everything = aggregate_table(spec, snapshots, by=())
    recent = aggregate_table(spec, snapshots, by=(), since="1h")
    newest = max(s.watermark for s in snapshots)
    ends = recent.frame["window_end"].map(lambda t: t.timestamp())
    assert (ends > newest - 3600).all()
    assert len(recent.frame) == sum(
        t.timestamp() > newest - 3600 for t in everything.frame["window_end"]
    )
    fixed = aggregate_table(spec, snapshots, by=(), since="30m", now=T0 + 3600)
    fixed_ends = [t.timestamp() for t in fixed.frame["window_end"]]
    assert fixed_ends[0] == T0 + 2400 and min(fixed_ends) > T0 + 1800


def test_snapshots_travel_as_json_and_merge_the_same(spec, snapshots) -> None:  # type: ignore[no-untyped-def]
    plan = AggregatePlan(spec)
    shipped = [
        AggregatePartials.decode(plan, orjson.loads(orjson.dumps(s.encode(plan))))
        for s in snapshots
    ]
    direct = aggregate_table(spec, snapshots).frame
    remote = aggregate_table(spec, shipped).frame
    pd.testing.assert_frame_equal(direct, remote, check_exact=False, rtol=1e-12)
    other = spec_for("5m").model_copy(update={"name": "other"})
    with pytest.raises(QueryError, match="not 'other'"):
        AggregatePartials.decode(AggregatePlan(other), snapshots[0].encode(plan))


def test_formats_table_csv_json(spec, snapshots) -> None:  # type: ignore[no-untyped-def]
    table = aggregate_table(spec, snapshots, by=["doc_class"])
    document = orjson.loads(table.format("json"))
    assert document["aggregate"] == "quality" and document["sources"] == 2
    assert len(document["windows"]) == len(table.frame)
    assert document["windows"][0]["window_start"].endswith("+00:00")
    parsed = pd.read_csv(io.StringIO(table.format("csv")))
    assert len(parsed) == len(table.frame)
    np.testing.assert_allclose(parsed["score.mean"], table.frame["score.mean"], rtol=1e-12)
    text = table.format("table")
    assert "doc_class" in text.splitlines()[0] and "score.ci95_low" in text
    assert "# 0 late row(s) not counted" in text and "±1.00% relative error" in text


def test_drill_down_output(spec, snapshots) -> None:  # type: ignore[no-untyped-def]
    drill = drill_down(
        spec,
        snapshots,
        window_start="2026-11-26T04:00:00Z",
        group={"doc_class": "money", "attributes.model": "llama-3-8b"},
    )
    document = orjson.loads(drill.format("json"))
    assert document["window_start"] == "2026-11-26T04:00:00+00:00"
    assert len(document["worst"]) == 3 and document["worst"][0]["values"]["score"] is not None
    assert all(ref["group"] == ["money", "llama-3-8b"] for ref in document["sample"])
    text = drill.format("table")
    assert "doc_class=money" in text and "judge:7f3a9c" in text
    assert drill.format("csv").splitlines()[0].startswith("list,call_id,trace_id")


def test_sample_frame_holds_sampled_calls_with_values_and_op_refs(spec, rows, snapshots) -> None:  # type: ignore[no-untyped-def]
    samples = sample_frame(spec, snapshots)
    assert {
        "call_id",
        "trace_id",
        "started_at",
        "trial",
        *GROUP_BY,
        "score",
        "score.op_ref",
    } <= set(samples.columns)
    by_id = {row.call_id: row for row in rows}
    for record in samples.head(50).to_dict("records"):
        source = by_id[record["call_id"]]
        assert record["doc_class"] == source.fields["doc_class"]
        assert record["latency_ms"] == source.values["latency_ms"]


def test_plots_are_labelled_and_written(tmp_path, spec, snapshots) -> None:  # type: ignore[no-untyped-def]
    table = aggregate_table(spec, snapshots, by=["doc_class"])
    figure = Figure()
    scores_ax, counts_ax = figure.subplots(2, 1)
    draw_scores_over_time(scores_ax, table, "score", unit="0-1")
    assert scores_ax.get_xlabel() == "window start (UTC)"
    assert scores_ax.get_ylabel() == "score: mean ± 95% CI (0-1)"
    legend = scores_ax.get_legend()
    assert legend.get_title().get_text() == "doc_class"
    assert sorted(t.get_text() for t in legend.get_texts()) == sorted(
        table.frame["doc_class"].unique()
    )
    draw_counts_stacked(counts_ax, table)
    assert counts_ax.get_ylabel() == "rows per 30-minute window (calls)"
    heights = sum(patch.get_height() for patch in counts_ax.patches)
    assert heights == table.frame["rows"].sum()
    path = plot_aggregate(
        table, tmp_path / "out" / "quality.png", score="score", units={"score": "0-1"}
    )
    assert path.read_bytes()[:8] == PNG_MAGIC and path.stat().st_size > 20_000


def test_trial_scatter_shows_each_call_at_its_mean_with_spread(tmp_path) -> None:  # type: ignore[no-untyped-def]
    spec = spec_for("1h")
    rows = make_rows(60, seed=3, trials=3, error_rate=0.0)
    samples = sample_frame(spec, aggregate_rows([spec], rows)["quality"])
    figure = Figure()
    ax = figure.subplots()
    draw_trial_scatter(
        ax, samples, "score", "latency_ms", by="doc_class", units={"latency_ms": "ms"}
    )
    assert ax.get_ylabel() == "latency_ms (mean over trials) (ms)"
    assert "±1 s.d. across trials" in ax.get_title()
    plotted = np.concatenate(
        [np.asarray(bars.lines[0].get_xdata(), dtype=float) for bars in ax.containers]
    )
    expected = samples.groupby("call_id")["score"].mean()
    assert sorted(np.round(plotted, 9)) == sorted(np.round(expected.to_numpy(), 9))
    few = Figure().subplots()
    draw_trial_scatter(few, samples, "score", "latency_ms", max_calls=10)
    assert sum(len(bars.lines[0].get_xdata()) for bars in few.containers) == 10
    assert f"10 of {len(expected)} sampled calls" in few.get_title()
    with pytest.raises(QueryError, match="no column"):
        draw_trial_scatter(ax, samples, "score", "nope")
    path = plot_aggregate(
        aggregate_table(spec, aggregate_rows([spec], rows)["quality"], by=["doc_class"]),
        tmp_path / "trials.png",
        score="score",
        samples=samples,
        scatter=("score", "latency_ms"),
        scatter_by="doc_class",
    )
    assert path.read_bytes()[:8] == PNG_MAGIC


def test_compare_two_columns_of_the_same_calls_is_paired_and_matches_scipy(tmp_path) -> None:  # type: ignore[no-untyped-def]
    rng = np.random.default_rng(4)
    samples = pd.DataFrame(
        {
            "call_id": [f"c{i}" for i in range(300)],
            "doc_class": rng.choice(["food", "money"], 300),
            "v1": rng.normal(0.6, 0.1, 300),
        }
    )
    samples["v2"] = (
        samples["v1"]
        + np.where(samples["doc_class"] == "food", 0.05, 0.0)
        + rng.normal(0, 0.05, 300)
    )
    result = compare_columns(samples, "v1", "v2", by="doc_class")
    frame = result.frame.set_index("group")
    assert list(frame.index) == ["food", "money", "all"]
    for group in ("food", "money"):
        part = samples[samples["doc_class"] == group]
        paired = stats.ttest_rel(part["v2"], part["v1"])
        signed_rank = stats.wilcoxon(part["v2"] - part["v1"])
        assert frame.loc[group, "test"] == "paired t"
        assert frame.loc[group, "paired_t"] == pytest.approx(paired.statistic)
        assert frame.loc[group, "p_value"] == pytest.approx(paired.pvalue)
        assert frame.loc[group, "wilcoxon_p"] == pytest.approx(signed_rank.pvalue)
        assert frame.loc[group, "n_a"] == len(part)
        assert np.isnan(frame.loc[group, "welch_p"])  # the unpaired test is not what ran
        low, high = frame.loc[group, "ci_low"], frame.loc[group, "ci_high"]
        assert low < frame.loc[group, "difference"] < high
    # Paired, the 0.05 shift of food is found despite the 0.1 spread between calls.
    assert frame.loc["food", "p_value"] < 1e-6 and frame.loc["money", "p_value"] > 0.01
    holm = sorted(frame.loc[["food", "money"], "p_value"])
    assert sorted(frame.loc[["food", "money"], "p_holm"]) == pytest.approx(
        [2 * holm[0], max(2 * holm[0], holm[1])]
    )
    assert "paired (both sides cover the same calls)" in result.format("table")
    assert orjson.loads(result.format("json"))["groups"][0]["group"] == "food"
    path = plot_comparison(result, tmp_path / "compare.png", unit="0-1")
    assert path.read_bytes()[:8] == PNG_MAGIC


def test_compare_averages_trials_per_call_before_testing() -> None:
    rows = []
    for call in range(30):
        for trial in range(5):  # five trials: the unit is still the call
            rows.append({"call_id": f"c{call}", "trial": trial, "a": call / 30 + trial * 0.01})
    samples = pd.DataFrame(rows)
    samples["b"] = samples["a"] + 0.02 * (samples["trial"] - 1)
    row = compare_columns(samples, "a", "b").frame.set_index("group").loc["all"]
    per_call = samples.groupby("call_id")[["a", "b"]].mean()
    assert (row["n_a"], row["n_b"]) == (30, 30)
    assert row["p_value"] == pytest.approx(stats.ttest_rel(per_call["b"], per_call["a"]).pvalue)


def test_compare_of_different_calls_is_unpaired_welch_and_mann_whitney() -> None:
    rng = np.random.default_rng(1)
    samples = pd.DataFrame(
        {
            "call_id": [f"c{i}" for i in range(60)],
            "score": np.r_[rng.normal(0.4, 0.1, 30), rng.normal(0.5, 0.1, 30)],
            "score.op_ref": ["judge:v1"] * 30 + ["judge:v2"] * 30,
        }
    )
    row = compare_op_refs(samples, "score", "judge:v1", "judge:v2").frame.iloc[-1]
    a, b = samples["score"][:30], samples["score"][30:]
    assert row["test"] == "Welch t"
    assert row["welch_p"] == pytest.approx(stats.ttest_ind(a, b, equal_var=False).pvalue)
    assert row["mwu_p"] == pytest.approx(stats.mannwhitneyu(a, b).pvalue)
    assert row["p_value"] == row["welch_p"] and np.isnan(row["wilcoxon_p"])


def test_compare_two_op_refs_of_one_column() -> None:
    samples = pd.DataFrame(
        {
            "call_id": [f"c{i}" for i in range(40)],
            "score": [0.2] * 10 + [0.3] * 10 + [0.7] * 10 + [0.8] * 10,
            "score.op_ref": ["judge:v1"] * 20 + ["judge:v2"] * 20,
        }
    )
    result = compare_op_refs(samples, "score", "judge:v1", "judge:v2")
    row = result.frame.set_index("group").loc["all"]
    assert (row["n_a"], row["n_b"]) == (20, 20)
    assert row["mean_a"] == pytest.approx(0.25) and row["mean_b"] == pytest.approx(0.75)
    with pytest.raises(QueryError, match=r"refs seen: \['judge:v1', 'judge:v2'\]"):
        compare_op_refs(samples, "score", "judge:v1", "judge:v3")
