"""The alerting rules in alerts/: promtool accepts them, their unit tests pass, and they
name only metrics a worker exports.

promtool comes from Debian's ``prometheus`` package (``make test`` installs it); a
missing promtool fails these tests.
"""

from __future__ import annotations

import subprocess
from pathlib import Path
from typing import Any

import pytest
import yaml

from tests.support.promql import exported_series, metric_names, promtool

ROOT = Path(__file__).resolve().parents[2]
ALERTS = ROOT / "alerts"
RULE_FILES = sorted(ALERTS.glob("*.yml"))
TEST_FILES = sorted((ALERTS / "tests").glob("*.yml"))
SEVERITIES = {"warning", "critical"}
# What the issue asks the rules to watch, each by the metric that carries it.
REQUIRED = {
    "dead-letter rate": "weave_stream_dead_letters_total",
    "judge error rate": "weave_stream_column_info",
    "a class's mean score against its baseline": "weave_stream:aggregate_window_mean:weighted",
    "drift alert rate": "weave_stream_alerts_raised_total",
    "consumer lag": "weave_stream_consumer_lag",
    "notifier delivery failures": "weave_stream_alert_delivery_failures_total",
    "no data from a topology": "weave_stream_derived_values_written_total",
}


def rules() -> list[dict[str, Any]]:
    return [
        rule
        for path in RULE_FILES
        for group in yaml.safe_load(path.read_text())["groups"]
        for rule in group["rules"]
    ]


def alerting_rules() -> list[dict[str, Any]]:
    return [rule for rule in rules() if "alert" in rule]


def test_there_are_rule_files_and_promtool_unit_tests_for_them() -> None:
    assert RULE_FILES and TEST_FILES
    for path in TEST_FILES:
        listed = yaml.safe_load(path.read_text())["rule_files"]
        assert all((path.parent / rule_file).resolve() in RULE_FILES for rule_file in listed)


def test_promtool_check_rules_accepts_every_rule_file() -> None:
    result = subprocess.run(
        [promtool(), "check", "rules", *map(str, RULE_FILES)],
        capture_output=True,
        text=True,
        check=False,
    )
    assert result.returncode == 0, result.stdout + result.stderr


def test_promtool_unit_tests_of_the_rules_pass() -> None:
    result = subprocess.run(
        [promtool(), "test", "rules", *map(str, TEST_FILES)],
        capture_output=True,
        text=True,
        check=False,
        cwd=ROOT,
    )
    assert result.returncode == 0, result.stdout + result.stderr


def test_every_alert_has_a_severity_a_summary_and_a_description() -> None:
    for rule in alerting_rules():
        assert rule.get("labels", {}).get("severity") in SEVERITIES, rule["alert"]
        annotations = rule.get("annotations", {})
        assert annotations.get("summary") and annotations.get("description"), rule["alert"]


def test_every_alert_is_shown_firing_at_each_severity_by_a_promtool_unit_test() -> None:
    fired = set()
    for path in TEST_FILES:
        for case in yaml.safe_load(path.read_text())["tests"]:
            for check in case.get("alert_rule_test", []):
                for alert in check.get("exp_alerts") or []:
                    fired.add((check["alertname"], alert["exp_labels"]["severity"]))
    declared = {(rule["alert"], rule["labels"]["severity"]) for rule in alerting_rules()}
    assert declared - fired == set()


def test_an_alert_with_two_degrees_has_one_name_and_the_same_labels() -> None:
    # Alertmanager's inhibit rule pairs a critical alert with its warning by name.
    by_name: dict[str, list[dict[str, Any]]] = {}
    for rule in alerting_rules():
        by_name.setdefault(rule["alert"], []).append(rule)
    for name, degrees in by_name.items():
        severities = [rule["labels"]["severity"] for rule in degrees]
        assert len(severities) == len(set(severities)), name


def test_the_rules_name_only_metrics_a_worker_exports_or_rules_record() -> None:
    recorded = {rule["record"] for rule in rules() if "record" in rule}
    known = exported_series() | recorded | {"up"}
    unknown = {
        rule.get("alert") or rule.get("record"): sorted(metric_names(rule["expr"]) - known)
        for rule in rules()
    }
    assert {name: names for name, names in unknown.items() if names} == {}


@pytest.mark.parametrize("concern", sorted(REQUIRED))
def test_each_concern_of_the_issue_has_warning_and_critical_alerts(concern: str) -> None:
    metric = REQUIRED[concern]
    severities = {
        rule["labels"]["severity"]
        for rule in alerting_rules()
        if metric in metric_names(rule["expr"])
    }
    # "No data" has no degree: a topology writes nothing. Every other concern has both.
    expected = {"warning"} if concern == "no data from a topology" else SEVERITIES
    assert expected <= severities, (concern, severities)
