"""What targets receive: a well-formed Slack Block Kit message, a correctly signed webhook."""

from __future__ import annotations

import hashlib
import hmac
import json
from datetime import UTC, datetime
from typing import Any

import pytest

from weave_stream.notify.alerts import Alert
from weave_stream.notify.slack import call_link, slack_payload
from weave_stream.notify.webhook import sign, verify_signature, webhook_request

TEMPLATE = "https://wandb.ai/{project_id}/weave/calls/{call_id}"
SECRET = "s3cret-shared-with-the-receiver"
BLOCK_TYPES = {"header", "section", "context", "actions", "divider"}


def alert(**overrides: object) -> Alert:
    fields: dict[str, object] = {
        "topology": "extract",
        "monitor": "doc_drift",
        "kind": "novel_example",
        "score": 0.9321,
        "threshold": 0.7104,
        "call_ids": ["c9"],
        "nearest_known_call": "c2",
        "nearest_known_excerpt": "Invoice #2 from ACME",
        "time": datetime(2026, 11, 26, 3, tzinfo=UTC),
        "excerpt": "Factura <7> de ACME & Co",
        "project_id": "acme/extract",
        "detector": "nearest_neighbours",
        **overrides,
    }
    return Alert.create(**fields)


def texts(payload: dict[str, Any]) -> list[str]:
    found = []
    for block in payload["blocks"]:
        if "text" in block:
            found.append(block["text"]["text"])
        for element in block.get("fields", []) + block.get("elements", []):
            found.append(
                element.get("text")
                if isinstance(element.get("text"), str)
                else element["text"]["text"]
            )
    return found


def check_block_kit(payload: dict[str, Any]) -> None:
    """The limits and shapes Slack enforces on incoming-webhook messages."""
    assert isinstance(payload["text"], str) and payload["text"]
    assert 1 <= len(payload["blocks"]) <= 50
    for block in payload["blocks"]:
        assert block["type"] in BLOCK_TYPES
        if block["type"] == "header":
            assert block["text"]["type"] == "plain_text" and len(block["text"]["text"]) <= 150
        if block["type"] == "section":
            assert "text" in block or "fields" in block
            assert len(block.get("fields", [])) <= 10
            assert all(len(f["text"]) <= 2000 for f in block.get("fields", []))
            assert len(block.get("text", {}).get("text", "")) <= 3000
        if block["type"] == "actions":
            for element in block["elements"]:
                assert element["type"] == "button" and element["url"].startswith("https://")
    json.dumps(payload)  # serializable as is


def test_the_slack_message_shows_kind_score_excerpt_nearest_example_and_a_link() -> None:
    payload = slack_payload(alert(), TEMPLATE)

    check_block_kit(payload)
    shown = "\n".join(texts(payload))
    assert payload["blocks"][0]["text"]["text"] == "Novel example in extract / doc_drift"
    assert "*Topology*\nextract" in shown and "novel_example" in shown
    assert "0.9321, above the threshold 0.7104" in shown
    assert "Factura &lt;7&gt; de ACME &amp; Co" in shown  # escaped for mrkdwn
    assert "<https://wandb.ai/acme/extract/weave/calls/c2|c2>" in shown
    assert "Invoice #2 from ACME" in shown
    (button,) = payload["blocks"][-1]["elements"]
    assert button["url"] == "https://wandb.ai/acme/extract/weave/calls/c9"


def test_a_shift_alert_shows_its_window_statistics_and_group() -> None:
    shift = alert(
        kind="distribution_shift",
        detector="sliding_whitened_mean",
        score=0.061,
        threshold=0.0035,
        call_ids=["c1", "c2"],
        count=200,
        group={"attributes.env": "prod"},
        stats={"p_value": 0.001, "window_size": 200},
        excerpt=None,
        nearest_known_call=None,
    )

    payload = slack_payload(shift, TEMPLATE)

    check_block_kit(payload)
    shown = "\n".join(texts(payload))
    assert payload["blocks"][0]["text"]["text"] == "Distribution shift in extract / doc_drift"
    assert "p_value=0.001" in shown and "window_size=200" in shown
    assert "attributes.env=prod" in shown and "*Calls*\n200" in shown


def test_long_documents_are_cut_to_slack_limits() -> None:
    payload = slack_payload(alert(excerpt="word " * 2000, topology="t" * 100), TEMPLATE)

    check_block_kit(payload)


def test_no_link_is_made_when_the_template_needs_an_unknown_field() -> None:
    payload = slack_payload(alert(project_id=None), TEMPLATE)

    assert all(block["type"] != "actions" for block in payload["blocks"])
    assert call_link(alert(project_id=None), "https://weave.example/{topology}/{call_id}") == (
        "https://weave.example/extract/c9"
    )


def test_the_webhook_request_is_signed_over_timestamp_and_body() -> None:
    original = alert()

    body, headers = webhook_request(original, SECRET, now=1795662000.5)

    timestamp = headers["X-Weave-Stream-Timestamp"]
    expected = hmac.new(
        SECRET.encode(), f"{timestamp}.".encode() + body, hashlib.sha256
    ).hexdigest()
    assert timestamp == "1795662000"
    assert headers["X-Weave-Stream-Signature"] == f"sha256={expected}"
    assert headers["Idempotency-Key"] == original.id
    assert headers["Content-Type"] == "application/json"
    assert Alert.model_validate(json.loads(body)) == original


@pytest.mark.parametrize(
    ("secret", "timestamp", "body", "now", "valid"),
    [
        (SECRET, "1795662000", b'{"a":1}', 1795662000.0, True),
        ("another-secret-entirely", "1795662000", b'{"a":1}', 1795662000.0, False),
        (SECRET, "1795662000", b'{"a":2}', 1795662000.0, False),  # tampered body
        (SECRET, "1795662001", b'{"a":1}', 1795662000.0, False),  # tampered timestamp
        (SECRET, "1795662000", b'{"a":1}', 1795662000.0 + 301, False),  # replayed late
        (SECRET, "not-a-time", b'{"a":1}', 1795662000.0, False),
    ],
)
def test_verify_signature_accepts_only_fresh_untampered_requests(
    secret: str, timestamp: str, body: bytes, now: float, valid: bool
) -> None:
    signature = sign(SECRET, "1795662000", b'{"a":1}')

    assert verify_signature(secret, timestamp, body, signature, now=now) is valid
