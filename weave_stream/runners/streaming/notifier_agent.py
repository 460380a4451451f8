"""The notifier agent: alerts from ``<prefix>.alerts`` delivered to Slack and webhooks.

Each worker's agent takes its share of the alerts topic's partitions and hands every
alert to a :class:`~weave_stream.notify.Notifier`, whose durable store (SQLite in
the worker's data dir) records it *before* the record is acknowledged: a restart
neither loses an alert nor re-sends a delivered one. Delivery status per target is
published to the compacted ``<prefix>.alerts.status`` (key: alert id), which
``weave-stream alerts`` reads.

Targets come from ``alert_targets_file`` (see :mod:`weave_stream.notify.targets`);
with none configured, alerts are recorded and listed but sent nowhere.
"""

from __future__ import annotations

import logging
import time
from collections.abc import AsyncIterator
from dataclasses import asdict
from typing import Any

import faust
import orjson

from weave_stream.config import Settings
from weave_stream.errors import DeliveryError
from weave_stream.metrics import UNREADABLE_RECORDS
from weave_stream.notify import (
    Alert,
    Notifier,
    SqliteDeliveryStore,
    TargetsConfig,
    load_targets,
)
from weave_stream.runners.streaming.health import HEALTH, watched_agent
from weave_stream.runners.streaming.sink import OutgoingRecord, attach_sink

__all__ = ["NOTIFIER_COMPONENT", "register_notifier"]

NOTIFIER_COMPONENT = "notifier"

log = logging.getLogger(__name__)


def register_notifier(app: faust.App, settings: Settings) -> Notifier:
    """Declare the notifier agent and its status timer on ``app``."""
    config = (
        load_targets(settings.alert_targets_file)
        if settings.alert_targets_file
        else TargetsConfig()
    )
    store_path = settings.data_dir / "alerts" / f"{settings.worker_id}.sqlite"
    store_path.parent.mkdir(parents=True, exist_ok=True)
    store = SqliteDeliveryStore(store_path)
    notifier = Notifier(config, store)
    sink = attach_sink(app, settings)
    alerts = app.topic(
        settings.topics.alerts,
        key_serializer="raw",
        value_serializer="raw",
        partitions=settings.partitions,
    )
    published: dict[str, Any] = {}

    @app.agent(alerts, name=watched_agent(settings.topics.notifier_agent, NOTIFIER_COMPONENT))
    async def notify(stream: faust.StreamT[bytes]) -> AsyncIterator[None]:
        await notifier.start()
        HEALTH.running(NOTIFIER_COMPONENT)
        async for raw in stream:
            try:
                alert = Alert.from_json(raw)
            except DeliveryError as exc:
                log.error("alerts topic: a record that is not an alert (%s): %r", exc, raw[:200])
                UNREADABLE_RECORDS.labels("alerts").inc()
            else:
                notifier.submit(alert)  # durable before this record is acknowledged
            HEALTH.ok(NOTIFIER_COMPONENT)
            yield None

    @app.timer(interval=1.0)
    async def publish_status() -> None:
        records = []
        for alert, statuses in notifier.store.recent(200):
            state = {name: asdict(status) for name, status in statuses.items()}
            if published.get(alert.id) != state:
                published[alert.id] = state
                body = {"alert_id": alert.id, "worker": settings.worker_id, "targets": state}
                records.append(OutgoingRecord(alert.id.encode(), orjson.dumps(body)))
        if records:
            await sink.write(settings.topics.alerts_status, records)
        if len(published) > 1000:  # only the recent ones can still change
            for alert_id in list(published)[:-500]:
                del published[alert_id]

    @app.timer(interval=3600.0)
    async def forget_settled_alerts() -> None:
        """Keep the store bounded: settled alerts older than a week are forgotten."""
        pruned = store.prune(received_before=time.time() - 7 * 86400)
        if pruned:
            log.info("forgot %d settled alerts older than a week", pruned)

    app.on_before_shutdown.connect(lambda *args, **kwargs: notifier.stop())
    return notifier
