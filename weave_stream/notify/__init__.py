"""Alerts and their delivery: durable, at least once, never twice once acknowledged.

::

    drift finding ─► Alert (deterministic id)                    alerts.py
        └─► Notifier.submit: recorded in the delivery store       delivery.py, store.py
              └─► one task per target, retries with backoff + jitter
                    ├─► Slack incoming webhook (Block Kit)         slack.py
                    └─► webhook (JSON, HMAC-SHA256 signature,      webhook.py
                                 alert id as idempotency key)

Targets, the retry policy and the link template are configured in a targets
file (targets.py). Nothing here touches Kafka: the streaming runner consumes the
alerts topic and calls :meth:`Notifier.submit`.
"""

from __future__ import annotations

from weave_stream.notify.alerts import Alert, alert_id
from weave_stream.notify.delivery import Notifier, backoff_seconds
from weave_stream.notify.slack import call_link, slack_payload
from weave_stream.notify.store import (
    DeliveryStateStore,
    DeliveryStatus,
    DueDelivery,
    SqliteDeliveryStore,
)
from weave_stream.notify.targets import (
    RetryPolicy,
    SlackTarget,
    TargetsConfig,
    WebhookTarget,
    load_targets,
)
from weave_stream.notify.webhook import sign, verify_signature, webhook_request

__all__ = [
    "Alert",
    "DeliveryStateStore",
    "DeliveryStatus",
    "DueDelivery",
    "Notifier",
    "RetryPolicy",
    "SlackTarget",
    "SqliteDeliveryStore",
    "TargetsConfig",
    "WebhookTarget",
    "alert_id",
    "backoff_seconds",
    "call_link",
    "load_targets",
    "sign",
    "slack_payload",
    "verify_signature",
    "webhook_request",
]
