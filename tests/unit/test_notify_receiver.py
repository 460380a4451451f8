"""The demo's webhook receiver: checks signatures, takes each alert once."""

from __future__ import annotations

import time

import httpx

from weave_stream.notify import Alert, webhook_request
from weave_stream.notify.receiver import WebhookReceiver


def _alert() -> Alert:
    return Alert.create(
        topology="text_extract",
        monitor="doc_drift",
        kind="novel_example",
        score=1.4,
        threshold=1.2,
        call_ids=["c1"],
        time="2026-11-26T03:00:00Z",
    )


def test_signed_alerts_are_taken_once_and_forged_ones_refused() -> None:
    taken: list[Alert] = []
    with WebhookReceiver("s3cret-for-the-test", on_alert=taken.append) as receiver:
        alert = _alert()
        body, headers = webhook_request(alert, "s3cret-for-the-test", now=time.time())
        assert httpx.post(receiver.url, content=body, headers=headers).status_code == 200
        assert httpx.post(receiver.url, content=body, headers=headers).status_code == 200
        assert taken == [alert] and receiver.alerts == [alert]

        forged_body, forged = webhook_request(alert, "another-secret-value", now=time.time())
        assert httpx.post(receiver.url, content=forged_body, headers=forged).status_code == 401
        stale_body, stale = webhook_request(alert, "s3cret-for-the-test", now=time.time() - 3600)
        assert httpx.post(receiver.url, content=stale_body, headers=stale).status_code == 401
        assert receiver.rejected == 2 and len(taken) == 1
