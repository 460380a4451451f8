"""The notifier against real HTTP receivers on loopback (tests/support/servers/webhooks.py).

Every wait polls for a condition with a deadline; retry delays are shortened by
the retry policy (tens of milliseconds), except where Retry-After is the point.
"""

from __future__ import annotations

import asyncio
import hashlib
import hmac
import json
import logging
import os
import re
import signal
import subprocess
import sys
import time
from collections import Counter
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path

import pytest

from tests.support.servers.webhooks import Receiver
from tests.support.waiting import wait_until_async
from weave_stream.metrics import ALERT_DELIVERY_FAILURES
from weave_stream.notify.alerts import Alert
from weave_stream.notify.delivery import Notifier
from weave_stream.notify.store import SqliteDeliveryStore
from weave_stream.notify.targets import RetryPolicy, SlackTarget, TargetsConfig, WebhookTarget

SECRET = "whsec-test-0123456789abcdef"
SLACK_TOKEN = "XXSLACKTOKEN42XX"
RETRY = RetryPolicy(initial_seconds=0.05, max_seconds=0.4, jitter=0.5, timeout_seconds=5)
TEMPLATE = "https://wandb.ai/{project_id}/weave/calls/{call_id}"


@pytest.fixture
def slack() -> Iterator[Receiver]:
    receiver = Receiver(f"/services/T000/B000/{SLACK_TOKEN}")
    yield receiver.up()
    receiver.down()


@pytest.fixture
def webhook() -> Iterator[Receiver]:
    receiver = Receiver("/weave/alerts")
    yield receiver  # not listening until the test says up()
    receiver.down()


def targets(slack: Receiver | None = None, webhook: Receiver | None = None) -> TargetsConfig:
    chosen: list[SlackTarget | WebhookTarget] = []
    if slack is not None:
        chosen.append(SlackTarget(name="ml-alerts", url=slack.url))  # type: ignore[arg-type]
    if webhook is not None:
        chosen.append(WebhookTarget(name="pager", url=webhook.url, secret=SECRET))  # type: ignore[arg-type]
    return TargetsConfig(targets=tuple(chosen), retry=RETRY, call_url_template=TEMPLATE)


def make_alerts(count: int, start: int = 0) -> list[Alert]:
    return [
        Alert.create(
            topology="extract",
            monitor="doc_drift",
            kind="novel_example",
            score=0.9 + i / 1000,
            threshold=0.7,
            call_ids=[f"call-{i}"],
            nearest_known_call=f"known-{i}",
            time=datetime(2026, 11, 26, tzinfo=UTC),
            excerpt=f"document {i}",
            project_id="acme/extract",
        )
        for i in range(start, start + count)
    ]


def webhook_ids(receiver: Receiver) -> list[str]:
    return [r.headers["Idempotency-Key"] for r in receiver.accepted()]


def slack_ids(receiver: Receiver) -> list[str]:
    ids = []
    for record in receiver.accepted():
        text = json.dumps(json.loads(record.body))
        ids += re.findall(r"alert `(al_[0-9a-f]{24})`", text)
    return ids


def delivered(store: SqliteDeliveryStore, alerts: list[Alert], target: str) -> list[str]:
    states = [store.statuses(a.id).get(target) for a in alerts]
    return [a.id for a, s in zip(alerts, states, strict=True) if s and s.state == "delivered"]


def failures(target: str, reason: str) -> float:
    return ALERT_DELIVERY_FAILURES.labels(target, reason)._value.get()


def test_slack_and_webhook_receive_well_formed_correctly_signed_payloads(
    tmp_path: Path, slack: Receiver, webhook: Receiver
) -> None:
    webhook.up()
    alerts = make_alerts(3)
    store = SqliteDeliveryStore(tmp_path / "delivery.sqlite3")

    async def scenario() -> None:
        async with Notifier(targets(slack, webhook), store) as notifier:
            assert [notifier.submit(a) for a in alerts] == [["ml-alerts", "pager"]] * 3
            await wait_until_async(
                lambda: (len(webhook.accepted()), len(slack.accepted())),
                30,
                "deliveries (webhook, Slack)",
                until=lambda counts: counts == (3, 3),
            )
            await wait_until_async(
                notifier.pending,
                30,
                "settled state",
                until=lambda pending: pending == {"ml-alerts": 0, "pager": 0},
            )

    asyncio.run(scenario())

    for record, alert in zip(webhook.accepted(), alerts, strict=True):
        timestamp = record.headers["X-Weave-Stream-Timestamp"]
        mac = hmac.new(SECRET.encode(), timestamp.encode() + b"." + record.body, hashlib.sha256)
        assert record.headers["X-Weave-Stream-Signature"] == "sha256=" + mac.hexdigest()
        assert abs(int(timestamp) - time.time()) < 60
        assert record.headers["Idempotency-Key"] == alert.id
        assert record.headers["Content-Type"] == "application/json"
        assert Alert.from_json(record.body) == alert
    for record, alert in zip(slack.accepted(), alerts, strict=True):
        message = json.loads(record.body)
        assert record.path == f"/services/T000/B000/{SLACK_TOKEN}"
        assert message["blocks"][0]["type"] == "header" and "extract" in message["text"]
        assert (
            f"https://wandb.ai/acme/extract/weave/calls/{alert.first_call}" in record.body.decode()
        )
    assert slack_ids(slack) == [a.id for a in alerts]
    assert all(set(store.statuses(a.id)) == {"ml-alerts", "pager"} for a in alerts)


def test_a_target_down_for_a_while_gets_every_alert_once_back_and_never_holds_up_another(
    tmp_path: Path, slack: Receiver, webhook: Receiver
) -> None:
    alerts = make_alerts(5)
    store = SqliteDeliveryStore(tmp_path / "delivery.sqlite3")
    connect_failures = failures("pager", "connect")

    async def scenario() -> None:
        async with Notifier(targets(slack, webhook), store) as notifier:
            for alert in alerts:
                notifier.submit(alert)
            await wait_until_async(
                lambda: len(slack.accepted()),
                30,
                "Slack, while the webhook is down",
                until=lambda count: count == 5,
            )
            await wait_until_async(
                lambda: store.statuses(alerts[0].id)["pager"].attempts,
                30,
                "retries",
                until=lambda attempts: attempts >= 3,
            )
            assert webhook.accepted() == [] and notifier.pending()["pager"] == 5
            webhook.up()
            await wait_until_async(
                notifier.pending,
                30,
                "the webhook, once back",
                until=lambda pending: pending["pager"] == 0,
            )

    asyncio.run(scenario())

    assert webhook_ids(webhook) == [a.id for a in alerts]  # each once, in order
    assert slack_ids(slack) == [a.id for a in alerts]
    assert failures("pager", "connect") >= connect_failures + 3
    assert store.statuses(alerts[0].id)["pager"].last_error is None


def test_server_errors_and_429_are_retried_honouring_retry_after(
    tmp_path: Path, webhook: Receiver
) -> None:
    webhook.up()
    webhook.enqueue(500, 503)
    webhook.enqueue(429, retry_after=1)
    (alert,) = make_alerts(1)
    store = SqliteDeliveryStore(tmp_path / "delivery.sqlite3")
    server_errors, throttled = failures("pager", "http_5xx"), failures("pager", "http_429")

    async def scenario() -> None:
        async with Notifier(targets(webhook=webhook), store) as notifier:
            notifier.submit(alert)
            await wait_until_async(
                notifier.pending, 30, "delivery", until=lambda pending: pending["pager"] == 0
            )

    asyncio.run(scenario())

    assert [r.status for r in webhook.received] == [500, 503, 429, 200]
    assert webhook.received[3].time - webhook.received[2].time >= 0.95  # Retry-After: 1
    assert webhook_ids(webhook) == [alert.id]
    assert store.statuses(alert.id)["pager"].attempts == 4
    assert failures("pager", "http_5xx") == server_errors + 2
    assert failures("pager", "http_429") == throttled + 1


def test_a_refusal_is_not_retried_until_requeued(tmp_path: Path, webhook: Receiver) -> None:
    webhook.up()
    webhook.enqueue(400)
    refused, barrier = make_alerts(2)
    store = SqliteDeliveryStore(tmp_path / "delivery.sqlite3")

    async def scenario() -> None:
        async with Notifier(targets(webhook=webhook), store) as notifier:
            notifier.submit(refused)
            await wait_until_async(
                lambda: store.statuses(refused.id)["pager"].state,
                30,
                "rejection",
                until=lambda state: state == "rejected",
            )
            notifier.submit(barrier)  # delivered after the refused one would have been retried
            await wait_until_async(
                lambda: webhook_ids(webhook),
                30,
                "the next alert",
                until=lambda ids: barrier.id in ids,
            )
            assert [r.headers["Idempotency-Key"] for r in webhook.received] == [
                refused.id,
                barrier.id,
            ]
            assert store.requeue("pager", now=time.time()) == 1
            notifier.submit(make_alerts(1, start=9)[0])  # wakes the target's task
            await wait_until_async(
                lambda: webhook_ids(webhook),
                30,
                "the requeued alert",
                until=lambda ids: refused.id in ids,
            )

    asyncio.run(scenario())

    status = store.statuses(refused.id)["pager"]
    assert status.state == "delivered" and status.attempts == 2


def test_a_delivered_alert_submitted_again_is_not_sent_again(
    tmp_path: Path, webhook: Receiver
) -> None:
    webhook.up()
    first, barrier = make_alerts(2)
    store = SqliteDeliveryStore(tmp_path / "delivery.sqlite3")

    async def scenario() -> None:
        async with Notifier(targets(webhook=webhook), store) as notifier:
            notifier.submit(first)
            await wait_until_async(
                notifier.pending, 30, "first delivery", until=lambda pending: pending["pager"] == 0
            )
        async with Notifier(targets(webhook=webhook), SqliteDeliveryStore(store.path)) as restarted:
            assert restarted.submit(first) == []  # re-read from the alerts topic after a restart
            restarted.submit(barrier)
            await wait_until_async(
                lambda: webhook_ids(webhook),
                30,
                "the barrier alert",
                until=lambda ids: barrier.id in ids,
            )

    asyncio.run(scenario())

    assert webhook_ids(webhook) == [first.id, barrier.id]


def test_a_notifier_stopped_mid_delivery_loses_none_and_resends_none_acknowledged(
    tmp_path: Path, webhook: Receiver
) -> None:
    webhook.up()
    webhook.stall(0.3)
    alerts = make_alerts(8)
    path = tmp_path / "delivery.sqlite3"
    acknowledged: list[str] = []

    async def crash_then_restart() -> None:
        store = SqliteDeliveryStore(path)
        notifier = Notifier(targets(webhook=webhook), store)
        await notifier.start()
        for alert in alerts:
            notifier.submit(alert)
        await wait_until_async(
            lambda: len(delivered(store, alerts, "pager")),
            30,
            "some deliveries",
            until=lambda count: count >= 3,
        )
        await notifier.stop()  # the crash: the request in flight is abandoned
        acknowledged.extend(delivered(store, alerts, "pager"))
        store.close()
        webhook.stall(0)
        async with Notifier(targets(webhook=webhook), SqliteDeliveryStore(path)) as restarted:
            for alert in alerts:  # the alerts topic is read again from its committed offset
                restarted.submit(alert)
            await wait_until_async(
                restarted.pending,
                30,
                "the rest, after restart",
                until=lambda pending: pending["pager"] == 0,
            )

    asyncio.run(crash_then_restart())

    counts = Counter(webhook_ids(webhook))
    assert set(counts) == {a.id for a in alerts}  # none lost
    assert all(counts[i] == 1 for i in acknowledged) and len(acknowledged) < 8  # none re-sent
    assert sum(counts.values()) <= len(alerts) + 1  # at most the one in flight, same key


CHILD = """
import asyncio, json, sys
from pathlib import Path
from weave_stream.notify import Alert, Notifier, SqliteDeliveryStore, TargetsConfig

async def main() -> None:
    config = TargetsConfig.model_validate_json(Path(sys.argv[1]).read_text())
    notifier = Notifier(config, SqliteDeliveryStore(Path(sys.argv[2])))
    await notifier.start()
    for line in Path(sys.argv[3]).read_text().splitlines():
        notifier.submit(Alert.from_json(line))
    await asyncio.Event().wait()  # deliver until killed

asyncio.run(main())
"""


def test_a_notifier_process_killed_mid_delivery_loses_none(
    tmp_path: Path, webhook: Receiver
) -> None:
    webhook.up()
    webhook.stall(0.3)
    alerts = make_alerts(8)
    config = targets(webhook=webhook)
    raw = config.model_dump(mode="json")
    raw["targets"][0].update(url=webhook.url, secret=SECRET)  # SecretStr dumps masked
    (tmp_path / "targets.json").write_text(json.dumps(raw))
    (tmp_path / "alerts.jsonl").write_text("\n".join(a.to_json().decode() for a in alerts))
    path = tmp_path / "delivery.sqlite3"
    argv = [
        sys.executable,
        "-c",
        CHILD,
        str(tmp_path / "targets.json"),
        str(path),
        str(tmp_path / "alerts.jsonl"),
    ]
    env = {**os.environ, "PYTHONPATH": str(Path(__file__).resolve().parents[2])}

    async def kill_then_restart() -> list[str]:
        child = subprocess.Popen(argv, env=env)
        try:
            await wait_until_async(path.exists, 30, "the child's store")
            store = SqliteDeliveryStore(path)
            await wait_until_async(
                lambda: len(delivered(store, alerts, "pager")),
                30,
                "some deliveries",
                until=lambda count: count >= 3,
            )
            child.send_signal(signal.SIGKILL)
            child.wait(timeout=10)
            acknowledged = delivered(store, alerts, "pager")
            webhook.stall(0)
            child = subprocess.Popen(argv, env=env)
            await wait_until_async(
                lambda: store.pending_count("pager"),
                30,
                "the rest, after restart",
                until=lambda count: count == 0,
            )
            return acknowledged
        finally:
            child.kill()
            child.wait(timeout=10)

    acknowledged = asyncio.run(kill_then_restart())

    counts = Counter(webhook_ids(webhook))
    assert set(counts) == {a.id for a in alerts}
    assert all(counts[i] == 1 for i in acknowledged) and len(acknowledged) < 8
    assert sum(counts.values()) <= len(alerts) + 1


def test_secrets_never_appear_in_logs_or_stored_errors(
    tmp_path: Path, slack: Receiver, webhook: Receiver, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.DEBUG)
    slack.enqueue(500)
    alerts = make_alerts(2)
    store = SqliteDeliveryStore(tmp_path / "delivery.sqlite3")

    async def scenario() -> None:
        async with Notifier(targets(slack, webhook), store) as notifier:
            for alert in alerts:
                notifier.submit(alert)
            await wait_until_async(
                lambda: store.statuses(alerts[0].id)["pager"].attempts,
                30,
                "failures",
                until=lambda attempts: attempts >= 2,
            )
            webhook.up()
            await wait_until_async(
                notifier.pending,
                30,
                "deliveries",
                until=lambda pending: pending == {"ml-alerts": 0, "pager": 0},
            )

    asyncio.run(scenario())

    logged = caplog.text
    assert "HTTP Request: POST" in logged and "[redacted]" in logged  # httpx did log the requests
    assert "retrying in" in logged and "target 'pager' (127.0.0.1)" in logged
    assert SLACK_TOKEN not in logged and SECRET not in logged
    errors = [s.last_error or "" for a in alerts for s in store.statuses(a.id).values()]
    assert not any(SLACK_TOKEN in e or SECRET in e for e in errors)
