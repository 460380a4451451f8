"""A webhook receiver on loopback that checks each alert's signature: for the demo, and a
reference for writing your own.

Every ``POST`` is verified (HMAC-SHA256 over ``<timestamp>.<body>`` with the shared
secret, timestamp within five minutes), de-duplicated by its ``Idempotency-Key`` and
handed to ``on_alert``; a bad signature is answered 401 and counted.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable
from http.server import BaseHTTPRequestHandler
from typing import Any

from weave_stream.loopback import LoopbackServer
from weave_stream.notify.alerts import Alert
from weave_stream.notify.webhook import (
    IDEMPOTENCY_HEADER,
    SIGNATURE_HEADER,
    TIMESTAMP_HEADER,
    verify_signature,
)

__all__ = ["WebhookReceiver"]


class WebhookReceiver(LoopbackServer):
    """Receive signed alerts on ``http://127.0.0.1:<port>/alerts``; a context manager."""

    def __init__(self, secret: str, on_alert: Callable[[Alert], None] | None = None) -> None:
        self.secret = secret
        self.on_alert = on_alert
        self.alerts: list[Alert] = []
        self.rejected = 0
        self._seen: set[str] = set()
        self._lock = threading.Lock()
        super().__init__(self._handler())

    @property
    def url(self) -> str:
        """Where to post alerts."""
        return f"{self.origin}/alerts"

    def _accept(self, headers: Any, body: bytes) -> int:
        stamp = headers.get(TIMESTAMP_HEADER, "")
        signature = headers.get(SIGNATURE_HEADER, "")
        if not verify_signature(self.secret, stamp, body, signature, now=time.time()):
            with self._lock:
                self.rejected += 1
            return 401
        alert = Alert.from_json(body)
        with self._lock:
            if headers.get(IDEMPOTENCY_HEADER, alert.id) in self._seen:
                return 200  # a retry of one we already have: accept, do not repeat
            self._seen.add(alert.id)
            self.alerts.append(alert)
        if self.on_alert is not None:
            self.on_alert(alert)
        return 200

    def _handler(self) -> type[BaseHTTPRequestHandler]:
        receiver = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:
                body = self.rfile.read(int(self.headers.get("Content-Length") or 0))
                try:
                    status = receiver._accept(self.headers, body)
                except ValueError:
                    status = 400
                self.send_response(status)
                self.send_header("Content-Length", "0")
                self.end_headers()

            def log_message(self, format: str, *args: Any) -> None:
                return

        return Handler
