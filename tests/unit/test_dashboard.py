"""The Grafana dashboard of a topology: its structure, and queries that name real metrics.

Every PromQL expression of a generated dashboard is checked three ways: its metric
names are series a worker exports (weave_stream.metrics.REGISTRY), promtool parses
it, and the panels the issue asks for are there.
"""

from __future__ import annotations

import json
import re
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
import yaml

from tests.support.promql import exported_series, metric_names, promtool
from weave_stream.dashboard.build import build_dashboard
from weave_stream.topology.loader import load_topology, topology_from_dict
from weave_stream.topology.spec import Topology

ROOT = Path(__file__).resolve().parents[2]
PROVISIONED = ROOT / "docker" / "grafana" / "dashboards"

SPEC: dict[str, Any] = {
    "name": "support",
    "description": "Classify, judge and embed support conversations.",
    "source": {"op_name": "text-extract"},
    "columns": [
        {
            "name": "doc_class",
            "op": "classify",
            "params": {"labels": ["money", "food", "science"]},
            "args": {"text": "inputs.document"},
        },
        {"name": "doc_embedding", "op": "embed", "args": {"text": "inputs.document"}},
    ],
    "aggregates": [
        {
            "name": "quality",
            "window": {"size": "1h", "step": "15m"},
            "group_by": ["doc_class"],
            "metrics": {"doc_class.confidence": ["count", "mean", "p90"], "doc_class": ["counts"]},
        },
        {"name": "volume", "window": "5m", "metrics": {"duration_seconds": ["mean"]}},
    ],
    "monitors": [
        {"name": "doc_drift", "column": "doc_embedding", "reference": {"first_n": 500}},
    ],
    "topics": [{"column": "doc_embedding", "refit": "1d"}],
}


@pytest.fixture(scope="module")
def topology() -> Topology:
    return topology_from_dict(SPEC)


@pytest.fixture(scope="module")
def board(topology: Topology) -> dict[str, Any]:
    return build_dashboard(topology, default_prefix="prod")


def panels(board: dict[str, Any]) -> list[dict[str, Any]]:
    return [panel for panel in board["panels"] if panel["type"] != "row"]


def expressions(board: dict[str, Any]) -> list[str]:
    found = [target["expr"] for panel in panels(board) for target in panel["targets"]]
    for variable in board["templating"]["list"]:
        if variable["type"] == "query":
            match = re.fullmatch(r"label_values\((.*), \w+\)", variable["definition"])
            assert match, variable["definition"]
            found.append(match.group(1))
    return found


def titled(board: dict[str, Any], words: str) -> list[dict[str, Any]]:
    return [panel for panel in panels(board) if words in panel["title"]]


def test_the_dashboard_is_a_grafana_dashboard_with_a_stable_uid(board: dict[str, Any]) -> None:
    assert board["uid"] == "weave-stream-support"
    assert board["title"] == "weave-stream: support"
    assert isinstance(board["schemaVersion"], int) and board["schemaVersion"] >= 36
    assert "weave-stream" in board["tags"]
    assert json.loads(json.dumps(board)) == board  # plain JSON, nothing Python-only


def test_panels_have_unique_ids_and_do_not_overlap_on_the_grid(board: dict[str, Any]) -> None:
    ids = [panel["id"] for panel in board["panels"]]
    assert len(ids) == len(set(ids))
    cells: set[tuple[int, int]] = set()
    for panel in board["panels"]:
        position = panel["gridPos"]
        assert position["x"] >= 0 and position["x"] + position["w"] <= 24, panel["title"]
        covered = {
            (x, y)
            for x in range(position["x"], position["x"] + position["w"])
            for y in range(position["y"], position["y"] + position["h"])
        }
        assert not covered & cells, f"{panel['title']} overlaps another panel"
        cells |= covered


def test_every_target_has_a_query_a_unique_ref_and_the_datasource_variable(
    board: dict[str, Any],
) -> None:
    for panel in panels(board):
        refs = [target["refId"] for target in panel["targets"]]
        assert refs and len(refs) == len(set(refs)), panel["title"]
        assert panel["datasource"]["uid"] == "${datasource}"
        for target in panel["targets"]:
            assert target["expr"].strip() and target["datasource"]["uid"] == "${datasource}"


def test_every_query_names_only_series_a_worker_exports(board: dict[str, Any]) -> None:
    exported = exported_series()
    unknown = {
        expr: sorted(metric_names(expr) - exported)
        for expr in expressions(board)
        if metric_names(expr) - exported
    }
    assert unknown == {}
    assert all(metric_names(expr) for expr in expressions(board))


def test_promtool_parses_every_query(board: dict[str, Any], tmp_path: Path) -> None:
    # Grafana fills its variables in before Prometheus sees a query: do the same.
    values = {"$__rate_interval": "1m", "$prefix": "prod", "$group_quality": ".*"}

    def concrete(expr: str) -> str:
        for variable, value in values.items():
            expr = expr.replace(variable, value)
        assert "$" not in expr, expr
        return expr

    rules = [
        {"record": f"dashboard:query{index}", "expr": concrete(expr)}
        for index, expr in enumerate(expressions(board))
    ]
    path = tmp_path / "queries.yml"
    path.write_text(yaml.safe_dump({"groups": [{"name": "dashboard", "rules": rules}]}))
    result = subprocess.run(
        [promtool(), "check", "rules", str(path)], capture_output=True, text=True, check=False
    )
    assert result.returncode == 0, result.stdout + result.stderr


def test_per_class_means_come_with_bands_one_panel_per_class(board: dict[str, Any]) -> None:
    (means,) = titled(board, "doc_class.confidence: mean per class")
    assert "weave_stream_aggregate_window_mean" in means["targets"][0]["expr"]
    assert 'aggregate="quality"' in means["targets"][0]["expr"]
    (band,) = titled(board, "doc_class.confidence of $group_quality")
    assert band["repeat"] == "group_quality"
    assert [t["legendFormat"] for t in band["targets"]] == ["mean", "upper", "lower"]
    fill = {
        override["matcher"]["options"]: {p["id"]: p["value"] for p in override["properties"]}
        for override in band["fieldConfig"]["overrides"]
    }
    assert fill["upper"]["custom.fillBelowTo"] == "lower"
    variables = {v["name"]: v for v in board["templating"]["list"]}
    assert variables["group_quality"]["includeAll"] and variables["group_quality"]["multi"]
    assert variables["prefix"]["current"]["value"] == "prod"
    # An aggregate without group_by has no classes to draw.
    assert not any("volume" in panel["title"] for panel in board["panels"])


@pytest.mark.parametrize(
    ("what", "metric"),
    [
        ("counts per class", "weave_stream_aggregate_window_rows"),
        ("novelty", "weave_stream_novelty_distance_bucket"),
        ("alerts", "weave_stream_alerts_raised_total"),
        ("alert delivery", "weave_stream_alert_delivery_failures_total"),
        ("lag", "weave_stream_consumer_lag"),
        ("errors", "weave_stream_derived_values_total"),
        ("cost", "weave_stream_derived_cost_usd_total"),
        ("op latency", "weave_stream_op_batch_seconds_bucket"),
        ("topic mix", "weave_stream_topic_calls_total"),
        ("topic refits", "weave_stream_topic_refits_total"),
    ],
)
def test_the_panels_the_issue_asks_for_are_there(
    board: dict[str, Any], what: str, metric: str
) -> None:
    assert any(metric in metric_names(expr) for expr in expressions(board)), what


def test_queries_are_scoped_to_the_topology(board: dict[str, Any]) -> None:
    scoped = [expr for expr in expressions(board) if 'topology="support"' in expr]
    global_metrics = {
        "weave_stream_dead_letters_total",  # ingest is shared by every topology
        "weave_stream_alerts_delivered_total",  # targets are shared too
        "weave_stream_alert_delivery_failures_total",
        "weave_stream_alerts_pending",
        "weave_stream_op_batch_seconds_bucket",  # by op name
        "weave_stream_consumer_lag",  # by the topology's consumer group
        "weave_stream_worker_info",
    }
    for expr in set(expressions(board)) - set(scoped):
        assert metric_names(expr) <= global_metrics, expr


def test_the_cli_writes_the_dashboard_of_a_topology_file(tmp_path: Path) -> None:
    spec = tmp_path / "support.yaml"
    spec.write_text(yaml.safe_dump(SPEC))
    out = tmp_path / "boards" / "support.json"
    result = subprocess.run(
        [sys.executable, "-m", "weave_stream", "dashboard", str(spec), "--out", str(out)],
        capture_output=True,
        text=True,
        check=False,
        env={"PATH": "/usr/bin:/bin", "HOME": str(tmp_path)},
    )
    assert result.returncode == 0, result.stderr
    assert "weave-stream-support" in result.stderr
    assert json.loads(out.read_text()) == build_dashboard(topology_from_dict(SPEC))


def test_the_cli_names_a_bad_topology_and_fails(tmp_path: Path) -> None:
    spec = tmp_path / "bad.yaml"
    spec.write_text(yaml.safe_dump({**SPEC, "aggregates": [{"name": "q", "window": "5x"}]}))
    result = subprocess.run(
        [sys.executable, "-m", "weave_stream", "dashboard", str(spec)],
        capture_output=True,
        text=True,
        check=False,
    )
    assert result.returncode == 1
    assert "5x" in result.stderr and "duration" in result.stderr


def test_the_provisioned_dashboard_is_the_generated_one_for_text_extract() -> None:
    provisioned = json.loads((PROVISIONED / "text_extract.json").read_text())
    generated = build_dashboard(load_topology(ROOT / "topologies" / "text_extract.yaml"))
    assert provisioned == generated, (
        "docker/grafana/dashboards/text_extract.json is stale; regenerate it with "
        "`weave-stream dashboard text_extract --out docker/grafana/dashboards/text_extract.json`"
    )


def test_the_class_mean_weights_each_workers_mean_by_its_rows(
    board: dict[str, Any], tmp_path: Path
) -> None:
    # Two workers hold parts of the latest window of class "money": 30 rows at 0.5 and
    # 10 rows at 0.9 make 0.6 together; "food" is on one worker only.
    (panel,) = titled(board, "doc_class.confidence: mean per class")
    expr = panel["targets"][0]["expr"]
    where = 'topology="support", aggregate="quality", '
    mean = "weave_stream_aggregate_window_mean{" + where + 'column="doc_class.confidence", '
    rows = "weave_stream_aggregate_window_rows{" + where
    series = [
        (mean + 'group="money", instance="w1"}', "0.5x5"),
        (rows + 'group="money", instance="w1"}', "30x5"),
        (mean + 'group="money", instance="w2"}', "0.9x5"),
        (rows + 'group="money", instance="w2"}', "10x5"),
        (mean + 'group="food", instance="w2"}', "0.7x5"),
        (rows + 'group="food", instance="w2"}', "4x5"),
    ]
    expect_promql(
        tmp_path,
        series,
        expr,
        "3m",
        [({"group": "money"}, 0.6), ({"group": "food"}, 0.7)],
    )


def test_the_topic_mix_is_each_topics_share_over_every_worker(
    board: dict[str, Any], tmp_path: Path
) -> None:
    # Two workers assign calls: "refunds" 3/min + 1/min, "recipes" 4/min on one worker,
    # outliers 2/min: shares 0.4, 0.4 and 0.2 of the 10 calls a minute.
    (panel,) = titled(board, "topic mix: topic")
    # rounded: Prometheus sums series in no fixed order, so the last bit varies
    expr = "round(" + panel["targets"][0]["expr"].replace("$__rate_interval", "2m") + ", 0.001)"
    counter = 'weave_stream_topic_calls_total{topology="support", column="topic", '
    series = [
        (counter + 'topic="refunds", instance="w1"}', "0+3x10"),
        (counter + 'topic="refunds", instance="w2"}', "0+1x10"),
        (counter + 'topic="recipes", instance="w2"}', "0+4x10"),
        (counter + 'topic="outlier", instance="w1"}', "0+2x10"),
        ('weave_stream_topic_calls_total{topology="other", column="topic", topic="x"}', "0+50x10"),
    ]
    expect_promql(
        tmp_path,
        series,
        expr,
        "5m",
        [({"topic": "refunds"}, 0.4), ({"topic": "recipes"}, 0.4), ({"topic": "outlier"}, 0.2)],
    )


def expect_promql(
    tmp_path: Path,
    series: list[tuple[str, str]],
    expr: str,
    eval_time: str,
    samples: list[tuple[dict[str, str], float]],
) -> None:
    """``promtool test rules``: over ``series`` (one sample a minute), ``expr`` at
    ``eval_time`` gives exactly ``samples`` (labels, value)."""
    (tmp_path / "none.yml").write_text("groups: []\n")
    expected = [
        {"labels": "{" + ", ".join(f'{k}="{v}"' for k, v in labels.items()) + "}", "value": value}
        for labels, value in samples
    ]
    test = {
        "rule_files": ["none.yml"],
        "evaluation_interval": "1m",
        "tests": [
            {
                "interval": "1m",
                "input_series": [{"series": s, "values": v} for s, v in series],
                "promql_expr_test": [
                    {"expr": expr, "eval_time": eval_time, "exp_samples": expected}
                ],
            }
        ],
    }
    path = tmp_path / "test.yml"
    path.write_text(yaml.safe_dump(test))
    result = subprocess.run(
        [promtool(), "test", "rules", str(path)], capture_output=True, text=True, check=False
    )
    assert result.returncode == 0, result.stdout + result.stderr
