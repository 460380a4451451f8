"""Generic webhook requests: the alert as JSON, signed, with an idempotency key.

Headers:

``X-Weave-Stream-Timestamp``   Unix seconds when the request was signed.
``X-Weave-Stream-Signature``   ``sha256=`` + hex HMAC-SHA256, keyed with the target's
                               shared secret, over ``<timestamp>.<body>`` (the
                               timestamp's ASCII digits, a dot, the raw body bytes).
``Idempotency-Key``            The alert id: a retried or re-sent alert carries the
                               same key, so the receiver can drop repeats.

A receiver recomputes the HMAC over the raw body (before any JSON parsing),
compares in constant time, and refuses timestamps far from its clock (replays):
:func:`verify_signature` does exactly that.

>>> alert = Alert.create(topology="extract", monitor="doc_drift", kind="novel_example",
...                      score=0.93, threshold=0.71, call_ids=["c9"], time=1795662000)
>>> body, headers = webhook_request(alert, "0123456789abcdef", now=1795662000.0)
>>> headers["X-Weave-Stream-Timestamp"], headers["Idempotency-Key"] == alert.id
('1795662000', True)
>>> verify_signature("0123456789abcdef", headers["X-Weave-Stream-Timestamp"], body,
...                  headers["X-Weave-Stream-Signature"], now=1795662010.0)
True
>>> verify_signature("another-secret-value", headers["X-Weave-Stream-Timestamp"], body,
...                  headers["X-Weave-Stream-Signature"], now=1795662010.0)
False
"""

from __future__ import annotations

import hashlib
import hmac

from weave_stream.notify.alerts import Alert

__all__ = [
    "IDEMPOTENCY_HEADER",
    "SIGNATURE_HEADER",
    "TIMESTAMP_HEADER",
    "sign",
    "verify_signature",
    "webhook_request",
]

TIMESTAMP_HEADER = "X-Weave-Stream-Timestamp"
SIGNATURE_HEADER = "X-Weave-Stream-Signature"
IDEMPOTENCY_HEADER = "Idempotency-Key"
SIGNATURE_PREFIX = "sha256="


def sign(secret: str, timestamp: str, body: bytes) -> str:
    """``sha256=`` + the hex HMAC-SHA256 of ``<timestamp>.<body>`` keyed with ``secret``."""
    message = timestamp.encode("ascii") + b"." + body
    return SIGNATURE_PREFIX + hmac.new(secret.encode(), message, hashlib.sha256).hexdigest()


def webhook_request(alert: Alert, secret: str, *, now: float) -> tuple[bytes, dict[str, str]]:
    """The body and headers of the webhook request for ``alert``, signed at time ``now``."""
    body = alert.to_json()
    timestamp = str(int(now))
    headers = {
        "Content-Type": "application/json",
        TIMESTAMP_HEADER: timestamp,
        SIGNATURE_HEADER: sign(secret, timestamp, body),
        IDEMPOTENCY_HEADER: alert.id,
    }
    return body, headers


def verify_signature(
    secret: str,
    timestamp: str,
    body: bytes,
    signature: str,
    *,
    now: float,
    tolerance_seconds: float = 300.0,
) -> bool:
    """True when ``signature`` is ours over ``timestamp`` and ``body`` and the time is recent."""
    if not timestamp.isdigit() or abs(now - int(timestamp)) > tolerance_seconds:
        return False
    return hmac.compare_digest(sign(secret, timestamp, body), signature)
