"""Monitor specs: the shapes a topology's ``monitors:`` entry may take, and its errors."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest
import yaml

from weave_stream.errors import TopologyError
from weave_stream.topology.monitors import (
    FirstNReference,
    JsonlReference,
    Monitor,
    TimeRangeReference,
    parse_monitors,
)

MONITORS_YAML = """
monitors:
  - name: doc_drift
    column: doc_embedding
    text: inputs.document
    reference: {first_n: 500}
    index: {kind: hnsw, hnsw_ef_search: 128}
    calibration_quantile: 0.995
    learning: {learn_acknowledged: true, capacity: 1000, eviction: least_recently_matched}
    shift: {window: 100, statistic: centroid, calibration: held_out, detector: page_hinkley}
    cooldown_seconds: 600
    group_by: [attributes.env, op_name]
  - name: by_time
    column: doc_embedding
    reference: {time_range: {start: "2026-11-01T00:00:00Z", end: 1795662000}}
    threshold: 0.8
  - name: from_file
    column: doc_embedding
    reference: {kind: jsonl, path: known.jsonl}
"""


def test_yaml_entries_parse_into_specs_with_every_setting() -> None:
    entries = yaml.safe_load(MONITORS_YAML)["monitors"]

    first, by_time, from_file = parse_monitors("extract", entries)

    assert first.reference == FirstNReference(n=500)
    assert first.index.kind == "hnsw" and first.index.hnsw_ef_search == 128
    assert first.calibration_quantile == 0.995 and first.threshold is None
    assert first.learning.learn_acknowledged and first.learning.capacity == 1000
    assert first.learning.eviction == "least_recently_matched"
    assert first.shift.window == 100 and first.shift.statistic == "centroid"
    assert first.shift.calibration == "held_out" and first.shift.detector == "page_hinkley"
    assert first.cooldown == 600
    assert first.group_by == ("attributes.env", "op_name")
    assert isinstance(by_time.reference, TimeRangeReference)
    assert by_time.reference.start == datetime(2026, 11, 1, tzinfo=UTC)
    assert by_time.reference.end == datetime(2026, 11, 26, 3, tzinfo=UTC)
    assert by_time.threshold == 0.8
    assert isinstance(from_file.reference, JsonlReference)
    assert str(from_file.reference.path) == "known.jsonl"


def test_defaults_are_auto_index_99th_percentile_and_shift_detection_on() -> None:
    (spec,) = parse_monitors("t", [{"name": "m", "column": "e", "reference": {"first_n": 10}}])

    assert spec.index.kind == "auto" and spec.calibration_quantile == 0.99
    assert spec.shift.enabled and spec.shift.statistic == "mmd"
    assert spec.shift.detector == "adwin" and not spec.learning.learn_acknowledged


@pytest.mark.parametrize(
    ("entry", "field", "bad"),
    [
        ({"index": {"kind": "annoy"}}, "index.kind", "'annoy'"),
        ({"calibration_quantile": 1.5}, "calibration_quantile", "1.5"),
        ({"reference": {"first_n": 0}}, "reference.first_n.n", "0"),
        ({"learning": {"eviction": "random"}}, "learning.eviction", "'random'"),
        ({"group_by": ["inputz.env"]}, "group_by", "inputz"),
        ({"text": "columns."}, "text", "columns."),
        ({"colour": "blue"}, "colour", "'blue'"),
    ],
)
def test_a_bad_entry_names_topology_monitor_field_and_value(
    entry: dict[str, object], field: str, bad: str
) -> None:
    base: dict[str, object] = {"name": "doc_drift", "column": "e", "reference": {"first_n": 10}}

    with pytest.raises(TopologyError) as caught:
        parse_monitors("extract", [{**base, **entry}])

    message = str(caught.value)
    assert "topology 'extract'" in message and "monitor 'doc_drift'" in message
    assert f"field {field}" in message and bad in message
    assert "fix the monitors: entry" in message


def test_a_time_range_must_end_after_it_starts() -> None:
    entry = {
        "name": "m",
        "column": "e",
        "reference": {"time_range": {"start": "2026-11-02T00:00:00Z", "end": "2026-11-01"}},
    }

    with pytest.raises(TopologyError, match="is not after start"):
        parse_monitors("t", [entry])


def test_monitor_names_are_unique_within_a_topology() -> None:
    entry = {"name": "m", "column": "e", "reference": {"first_n": 10}}

    with pytest.raises(TopologyError, match="two monitors are named 'm'"):
        parse_monitors("t", [entry, entry])


def test_spec_round_trips_through_plain_data() -> None:
    spec = Monitor.model_validate(
        {"name": "m", "column": "e", "reference": {"first_n": 10}, "group_by": ["op_name"]}
    )

    assert Monitor.model_validate(spec.model_dump(mode="json")) == spec
