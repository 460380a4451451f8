"""HTTP receivers on loopback standing in for a Slack incoming webhook and a generic webhook.

A :class:`Receiver` records every request (path, headers, raw body, time) and
answers 200 ``ok`` (as Slack does), unless told otherwise:

* ``receiver.enqueue(500, 500)``: the next requests get these statuses, in order;
* ``receiver.enqueue(429, retry_after=2)``: 429 with a ``Retry-After`` header;
* ``receiver.stall(seconds)``: hold every request that long before answering (a slow
  target, or one a notifier can be killed in the middle of);
* ``receiver.down()`` / ``receiver.up()``: stop listening (connections refused) and
  listen again on the same port.

Only requests answered 2xx are *accepted* (:meth:`Receiver.accepted`): that is what
a target actually took.

Run alone: ``python -m tests.support.servers.webhooks`` (prints the URL it serves).
"""

from __future__ import annotations

import argparse
import socket
import threading
import time
from collections import deque
from dataclasses import dataclass
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

__all__ = ["Received", "Receiver"]


@dataclass(frozen=True)
class Received:
    """One request as the receiver got it, and what it answered."""

    path: str
    headers: dict[str, str]
    body: bytes
    time: float
    status: int


class Receiver:
    """A loopback HTTP server that records requests and fails on demand."""

    def __init__(self, path: str = "/hook") -> None:
        self.path = path
        self.received: list[Received] = []
        self._lock = threading.Lock()
        self._script: deque[tuple[int, float | None]] = deque()
        self._stall = 0.0
        self._server: ThreadingHTTPServer | None = None
        self._thread: threading.Thread | None = None
        self.port = _free_port()

    @property
    def url(self) -> str:
        """The URL to post to."""
        return f"http://127.0.0.1:{self.port}{self.path}"

    def up(self) -> Receiver:
        """Listen (again) on the receiver's port."""
        if self._server is not None:
            return self
        server = ThreadingHTTPServer(("127.0.0.1", self.port), self._handler())
        server.daemon_threads = True
        self._server = server
        self._thread = threading.Thread(target=server.serve_forever, daemon=True)
        self._thread.start()
        return self

    def down(self) -> None:
        """Stop listening: connections are refused until :meth:`up`."""
        server, self._server = self._server, None
        if server is not None:
            server.shutdown()
            server.server_close()
        if self._thread is not None:
            self._thread.join(timeout=5)

    def __enter__(self) -> Receiver:
        return self.up()

    def __exit__(self, *exc: object) -> None:
        self.down()

    def enqueue(self, *statuses: int, retry_after: float | None = None) -> None:
        """Answer the next requests with these statuses (429/503 get ``Retry-After``)."""
        with self._lock:
            self._script.extend((status, retry_after) for status in statuses)

    def stall(self, seconds: float) -> None:
        """Hold each request ``seconds`` before answering (0: answer at once)."""
        self._stall = seconds

    def accepted(self) -> list[Received]:
        """The requests answered 2xx."""
        with self._lock:
            return [r for r in self.received if 200 <= r.status < 300]

    def _next_answer(self) -> tuple[int, float | None]:
        with self._lock:
            return self._script.popleft() if self._script else (200, None)

    def _handler(self) -> type[BaseHTTPRequestHandler]:
        receiver = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:
                length = int(self.headers.get("Content-Length", "0"))
                body = self.rfile.read(length)
                if receiver._stall:
                    time.sleep(receiver._stall)
                status, retry_after = receiver._next_answer()
                record = Received(self.path, dict(self.headers.items()), body, time.time(), status)
                with receiver._lock:
                    receiver.received.append(record)
                answer = b"ok" if status < 300 else b"error"
                self.send_response(status)
                if retry_after is not None:
                    self.send_header("Retry-After", str(int(retry_after)))
                self.send_header("Content-Type", "text/plain")
                self.send_header("Content-Length", str(len(answer)))
                self.end_headers()
                self.wfile.write(answer)

            def log_message(self, format: str, *args: object) -> None:
                """Quiet: the test reads ``received``."""

        return Handler


def _free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


def main() -> None:
    """Serve until interrupted, printing each request."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--path", default="/hook")
    args = parser.parse_args()
    with Receiver(args.path) as receiver:
        print(receiver.url, flush=True)
        seen = 0
        while True:
            time.sleep(0.5)
            for record in receiver.received[seen:]:
                print(record.status, record.path, record.body[:200], flush=True)
            seen = len(receiver.received)


if __name__ == "__main__":
    main()
