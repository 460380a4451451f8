"""Drift monitors on the real broker: reference, novelty column, alerts delivered, ack."""

from __future__ import annotations

import asyncio
import hashlib
import hmac
import json
import random
from collections.abc import Callable
from pathlib import Path

from tests.support.cli import weave_stream
from tests.support.records import produce_calls
from tests.support.servers.webhooks import Receiver
from tests.support.topologies import ASSETS, covers, register_file, wait_for_values
from tests.support.waiting import wait_until
from weave_stream.cli.alerts_cmds import read_alerts
from weave_stream.config import Settings
from weave_stream.demo.samples import corpus_documents, sample_calls
from weave_stream.runners.workers import WorkerProcess

SECRET = "a-shared-secret-of-the-test"


def test_novel_documents_raise_alerts_delivered_signed_to_a_webhook(
    tmp_path: Path,
    make_settings: Callable[..., Settings],
    start_worker: Callable[..., WorkerProcess],
) -> None:
    english = corpus_documents("english")
    random.Random(3).shuffle(english)
    japanese = corpus_documents("japanese")
    with Receiver() as hook:
        targets = tmp_path / "targets.yaml"
        targets.write_text(
            json.dumps(
                {
                    "targets": [
                        {"kind": "webhook", "name": "hook", "url": hook.url, "secret": SECRET}
                    ]
                }
            )
        )
        settings = make_settings(alert_targets_file=targets)
        start_worker(settings)
        register_file(settings, ASSETS / "drifty.yaml")
        reference = sample_calls(english[:200], seed="reference")
        familiar = sample_calls(english[200:240], seed="familiar")
        foreign = sample_calls(japanese[:30], seed="foreign")
        produce_calls(settings, reference)
        wait_for_values(settings, "drifty", ["doc_drift"], covers(reference, ["doc_drift"]))
        produce_calls(settings, familiar + foreign)
        values = wait_for_values(
            settings,
            "drifty",
            ["doc_drift"],
            covers(familiar + foreign, ["doc_drift"]),
            timeout=180,
        )
        novelty = {v.call_id: v.value for v in values}
        assert all(novelty[c["id"]] == {"reference": True} for c in reference)
        foreign_novel = [c for c in foreign if novelty[c["id"]]["novel"]]
        familiar_novel = [c for c in familiar if novelty[c["id"]]["novel"]]
        # Measured with this model and corpus: 80 % of Japanese documents lie farther from
        # 200 mixed English ones than the 0.95 quantile of the reference's own
        # leave-one-out distances, and 7 % of held-out English ones (5 % expected).
        assert len(foreign_novel) >= 0.6 * len(foreign)
        assert len(familiar_novel) <= 0.2 * len(familiar)
        nearest = novelty[foreign[0]["id"]]["nearest_known_call"]
        assert nearest in {c["id"] for c in reference}

        # Alerts: every novel example counted once (a storm in one batch is grouped into
        # one alert carrying its count and sample calls), delivered, correctly signed.
        novel = len(foreign_novel) + len(familiar_novel)

        def counted() -> int:
            bodies = [json.loads(r.body) for r in hook.accepted()]
            return sum(b["count"] for b in bodies if b["kind"] == "novel_example")

        wait_until(counted, 60, f"{novel} novel examples alerted", until=lambda n: n >= novel)
        assert counted() == novel
        delivered = hook.accepted()
        for request in delivered:  # HMAC-SHA256 over "<timestamp>.<body>", checked here
            stamp = request.headers["X-Weave-Stream-Timestamp"]
            mac = hmac.new(SECRET.encode(), stamp.encode() + b"." + request.body, hashlib.sha256)
            assert request.headers["X-Weave-Stream-Signature"] == "sha256=" + mac.hexdigest()
            assert request.headers["Idempotency-Key"] == json.loads(request.body)["id"]
        bodies = [json.loads(r.body) for r in delivered]
        assert {b["kind"] for b in bodies} <= {"novel_example", "distribution_shift"}
        assert len({b["id"] for b in bodies}) == len(bodies)  # none delivered twice
        alerted = {call for b in bodies if b["kind"] == "novel_example" for call in b["call_ids"]}
        assert alerted <= {c["id"] for c in foreign_novel + familiar_novel}

        # The alerts command shows them with their delivery status.
        listed = wait_until(
            lambda: asyncio.run(read_alerts(settings)),
            30,
            "every alert listed as delivered to the hook",
            until=lambda alerts: (
                bool(alerts)
                and all(s.get("hook", {}).get("state") == "delivered" for _, s in alerts)
            ),
            interval=0.5,
            describe=lambda alerts: [s.get("hook", {}).get("state") for _, s in alerts],
        )
        assert all(s["hook"]["state"] == "delivered" for _, s in listed)
        flags = ["--broker", settings.broker or "", "--prefix", settings.topic_prefix]
        shown = weave_stream("alerts", "--format", "json", "--limit", "500", *flags)
        assert shown.returncode == 0, shown.stderr
        assert {row["id"] for row in json.loads(shown.stdout)} == {a.id for a, _ in listed}
