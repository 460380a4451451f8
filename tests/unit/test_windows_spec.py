"""The ``aggregates:`` entries of a topology: shapes accepted, defaults, and errors that name
the topology, the aggregate, the field, the bad value and the fix."""

from __future__ import annotations

from datetime import timedelta

import pytest
import yaml

from weave_stream.durations import whole_seconds as parse_duration
from weave_stream.errors import TopologyError
from weave_stream.topology.aggregates import parse_aggregates, required_fields
from weave_stream.windows import WindowGeometry

TOPOLOGY_YAML = """
name: text_extract
aggregates:
  - name: quality_by_class
    window: {size: 1h, step: 5m}
    grace: 10m
    retention: 2d
    group_by: [doc_class, attributes.model]
    metrics:
      judge_score: [count, mean, std, ci95, p50, p90, p99, error_rate, cost_sum]
      doc_class: [counts]
    drill_down: {sample_size: 20, worst_k: 5, score: judge_score, worst: lowest}
  - name: volume
    window: 5m
    metrics:
      latency_ms: p99
"""


def test_yaml_topology_entries_parse() -> None:
    document = yaml.safe_load(TOPOLOGY_YAML)
    quality, volume = parse_aggregates(document["aggregates"], document["name"])
    assert (quality.window.size, quality.window.step, quality.window.kind) == (3600, 300, "hopping")
    assert (quality.grace, quality.retention) == (600, 172800)
    assert quality.group_by == ("doc_class", "attributes.model")
    assert quality.quantiles("judge_score") == (0.5, 0.9, 0.99)
    assert quality.numeric("judge_score") and not quality.numeric("doc_class")
    assert volume.window.kind == "tumbling" and volume.metrics == {"latency_ms": ("p99",)}
    assert volume.drill_down.score == "latency_ms"  # the first numeric column by default
    assert required_fields([quality, volume]) == {
        "doc_class",
        "attributes.model",
        "judge_score",
        "latency_ms",
    }
    assert WindowGeometry.of(quality).panes_per_window == 12


@pytest.mark.parametrize(
    "window",
    ["10m", 600, {"size": "10m"}, {"tumbling": "10m"}, {"size": 600, "step": 600}],
)
def test_tumbling_window_shorthands(window: object) -> None:
    spec = parse_aggregates([{"name": "a", "window": window}], "t")[0]
    assert (spec.window.size, spec.window.step) == (600, 600)


def test_hopping_shorthand() -> None:
    spec = parse_aggregates(
        [{"name": "a", "window": {"hopping": {"size": "1h", "step": "15m"}}}], "t"
    )[0]
    assert (spec.window.size, spec.window.step) == (3600, 900)


@pytest.mark.parametrize(
    ("entry", "field", "hint"),
    [
        ({"window": {"size": "1h", "step": "7m"}}, "window", "must divide the window size"),
        ({"window": "5m", "metrics": {"s": ["median"]}}, "metrics", "unknown metric 'median'"),
        ({"window": "5m", "grace": "1h", "retention": "10m"}, "entry", "retention 600s is shorter"),
        ({"window": "5m", "windoww": "1m"}, "windoww", "Extra inputs"),
        ({"window": "five minutes"}, "window", "not a duration"),
        (
            {"window": "5m", "drill_down": {"score": "nope"}, "metrics": {"s": ["mean"]}},
            "entry",
            "drill_down.score 'nope' is not a metric column",
        ),
        ({"window": "5m", "group_by": ["a", "a"]}, "entry", "group_by repeats a key"),
    ],
)
def test_errors_name_topology_aggregate_field_and_fix(entry: dict, field: str, hint: str) -> None:
    with pytest.raises(TopologyError) as caught:
        parse_aggregates([{"name": "bad_one", **entry}], "my_topology")
    message = str(caught.value)
    assert "topology 'my_topology', aggregate 'bad_one'" in message
    assert f"field {field}" in message and hint in message


def test_duplicate_names_are_refused() -> None:
    with pytest.raises(TopologyError, match="two aggregates are named 'a'"):
        parse_aggregates([{"name": "a", "window": "1m"}, {"name": "a", "window": "5m"}], "t")


@pytest.mark.parametrize(
    ("text", "seconds"),
    [
        ("90s", 90),
        ("5m", 300),
        ("1h30m", 5400),
        ("2d", 172800),
        ("1w", 604800),
        ("45", 45),
        (12, 12),
        (timedelta(hours=1), 3600),
    ],
)
def test_durations(text: object, seconds: int) -> None:
    assert parse_duration(text) == seconds


@pytest.mark.parametrize("bad", ["5 minutes", "1.5h", "-5m", -3, 1.5, True, "m5"])
def test_bad_durations_say_how_to_write_one(bad: object) -> None:
    with pytest.raises(ValueError, match=r"duration|seconds|boolean"):
        parse_duration(bad)
