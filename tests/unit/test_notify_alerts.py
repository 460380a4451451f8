"""Alert records: deterministic ids, JSON round trip, built from findings."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest

from weave_stream.drift.findings import Finding, group_key
from weave_stream.errors import DeliveryError
from weave_stream.notify.alerts import Alert

T0 = datetime(2026, 11, 26, 3, tzinfo=UTC)


def alert(**overrides: object) -> Alert:
    fields: dict[str, object] = {
        "topology": "extract",
        "monitor": "doc_drift",
        "kind": "novel_example",
        "score": 0.93,
        "threshold": 0.71,
        "call_ids": ["c9"],
        "nearest_known_call": "c2",
        "time": T0,
        "group": {"attributes.env": "prod"},
        "excerpt": "Factura 7",
        "detector": "nearest_neighbours",
        **overrides,
    }
    return Alert.create(**fields)


def test_the_same_alert_raised_again_later_has_the_same_id() -> None:
    first = alert()
    again = alert(time=T0 + timedelta(minutes=5), score=0.95)

    assert first.id == again.id and first.id.startswith("al_")


@pytest.mark.parametrize(
    "change",
    [
        {"topology": "other"},
        {"monitor": "other"},
        {"kind": "distribution_shift"},
        {"call_ids": ["c10"]},
        {"group": {"attributes.env": "staging"}},
        {"count": 2},
        {"detector": "sliding_mean"},
    ],
)
def test_a_different_alert_has_a_different_id(change: dict[str, object]) -> None:
    assert alert(**change).id != alert().id


def test_json_round_trip_keeps_every_field() -> None:
    original = alert(stats={"p_value": 0.001, "window_size": 200, "note": None}, count=3)

    copy = Alert.from_json(original.to_json())

    assert copy == original and copy.time == T0


def test_an_invalid_record_raises_delivery_error_naming_the_field() -> None:
    broken = alert().to_json().replace(b'"novel_example"', b'"weird_kind"')

    with pytest.raises(DeliveryError, match="kind"):
        Alert.from_json(broken)


def test_an_alert_from_a_finding_carries_what_a_user_drills_into() -> None:
    finding = Finding(
        kind="distribution_shift",
        monitor="doc_drift",
        detector="sliding_whitened_mean",
        score=0.06,
        threshold=0.004,
        call_ids=("c1", "c5", "c9"),
        time=T0,
        group=group_key({"op_name": "extract"}),
        count=3,
        stats={"p_value": 0.001},
    )

    made = Alert.from_finding("extract", finding, project_id="acme/extract")

    assert made.kind == "distribution_shift" and made.detector == "sliding_whitened_mean"
    assert made.call_ids == ("c1", "c5", "c9") and made.first_call == "c1"
    assert made.group == {"op_name": "extract"} and made.count == 3
    assert made.stats == {"p_value": 0.001} and made.project_id == "acme/extract"
    assert made.id == Alert.from_finding("extract", finding).id  # project is not identity
