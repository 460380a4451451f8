"""An OpenAI-compatible chat-completions server on loopback, answering or failing on demand.

It answers ``POST /v1/chat/completions`` the way OpenAI does (``choices``, ``usage``)
with ``{"score": s, "reason": r}`` from a deterministic scorer of the prompt. Faults
are injected two ways:

* ``server.enqueue(fault, ...)``: the next requests, in order, get these faults;
* ``server.on("text", fault, times=n)``: requests whose prompt contains ``text``
  get the fault (the first ``n`` of them, or all) — stable under concurrency.

Faults: :func:`answer` (a given content), :func:`status` (HTTP 500 or any code),
:func:`rate_limited` (429 with ``Retry-After``), :func:`stall` (hold the request),
:func:`malformed` (an answer that is not the JSON asked for).

Every request is recorded (time, body, headers), and the peak number of requests
in flight is kept, so tests can check retries, waits and the concurrency limit.

Run alone: ``python -m tests.support.servers.openai`` (prints the base URL it serves).
"""

from __future__ import annotations

import argparse
import hashlib
import json
import threading
import time
from collections import deque
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

from weave_stream.demo.judge_standin import chat_completion

__all__ = [
    "FakeOpenAI",
    "Fault",
    "Request",
    "answer",
    "malformed",
    "rate_limited",
    "stall",
    "status",
]


@dataclass(frozen=True)
class Fault:
    """What to do with one request instead of answering normally."""

    kind: str  # answer | status | stall
    content: str | None = None
    code: int = 500
    headers: tuple[tuple[str, str], ...] = ()
    seconds: float = 0.0


def answer(content: str) -> Fault:
    """Answer 200 with exactly this message content."""
    return Fault("answer", content=content)


def malformed(content: str = "Sure! The score is high, because the output is good.") -> Fault:
    """Answer 200 with content that is not the JSON object asked for."""
    return Fault("answer", content=content)


def status(code: int = 500, body: str = '{"error": {"message": "internal error"}}') -> Fault:
    """Fail with HTTP ``code``."""
    return Fault("status", content=body, code=code)


def rate_limited(retry_after: float | str = 1) -> Fault:
    """Fail with HTTP 429 and a ``Retry-After`` header."""
    body = '{"error": {"message": "Rate limit reached", "type": "requests"}}'
    return Fault("status", content=body, code=429, headers=(("Retry-After", str(retry_after)),))


def stall(seconds: float) -> Fault:
    """Hold the request ``seconds`` before answering (a client with a shorter timeout gives up)."""
    return Fault("stall", seconds=seconds)


@dataclass(frozen=True)
class Request:
    """A request the server received."""

    at: float  # time.monotonic()
    path: str
    body: dict[str, Any]
    headers: dict[str, str]

    @property
    def prompt(self) -> str:
        """The user message."""
        messages = self.body.get("messages") or []
        return "\n".join(m.get("content", "") for m in messages if m.get("role") == "user")


def default_score(prompt: str) -> tuple[float, str]:
    """A deterministic judgement of a prompt: a score in [0, 1] from its digest."""
    digest = int(hashlib.sha256(prompt.encode()).hexdigest()[:4], 16)
    return round(digest / 0xFFFF, 2), f"test-server verdict {digest % 97}"


@dataclass
class _State:
    queue: deque[Fault] = field(default_factory=deque)
    rules: list[list[Any]] = field(default_factory=list)  # [substring, fault, times left or None]
    requests: list[Request] = field(default_factory=list)
    in_flight: int = 0
    max_in_flight: int = 0


class FakeOpenAI:
    """The server; use as a context manager, or ``start()`` / ``stop()``."""

    def __init__(self, api_key: str | None = None, scorer: Any = default_score) -> None:
        self.api_key = api_key
        self.scorer = scorer
        self._state = _State()
        self._lock = threading.Lock()
        self._stopping = threading.Event()
        self._server = ThreadingHTTPServer(("127.0.0.1", 0), _handler_for(self))
        self._server.daemon_threads = True
        self._thread = threading.Thread(
            target=self._server.serve_forever, args=(0.05,), daemon=True
        )

    @property
    def base_url(self) -> str:
        """``http://127.0.0.1:<port>/v1``, as OpenAI clients take it."""
        return f"http://127.0.0.1:{self._server.server_address[1]}/v1"

    @property
    def requests(self) -> list[Request]:
        """Every request so far, in arrival order."""
        with self._lock:
            return list(self._state.requests)

    @property
    def max_in_flight(self) -> int:
        """The most requests the server was handling at once."""
        with self._lock:
            return self._state.max_in_flight

    def enqueue(self, *faults: Fault) -> None:
        """The next requests get these faults, in order."""
        with self._lock:
            self._state.queue.extend(faults)

    def on(self, text: str, fault: Fault, times: int | None = None) -> None:
        """Requests whose prompt contains ``text`` get ``fault`` (``times`` times, or always)."""
        with self._lock:
            self._state.rules.append([text, fault, times])

    def start(self) -> FakeOpenAI:
        """Serve in a background thread."""
        self._thread.start()
        return self

    def stop(self) -> None:
        """Stop serving; stalled requests are released."""
        self._stopping.set()
        self._server.shutdown()
        self._server.server_close()
        self._thread.join(timeout=5)

    def __enter__(self) -> FakeOpenAI:
        return self.start()

    def __exit__(self, *exc_info: object) -> None:
        self.stop()

    def _begin(self, request: Request) -> Fault | None:
        with self._lock:
            state = self._state
            state.requests.append(request)
            state.in_flight += 1
            state.max_in_flight = max(state.max_in_flight, state.in_flight)
            for rule in state.rules:
                text, fault, left = rule
                if text in request.prompt and (left is None or left > 0):
                    if left is not None:
                        rule[2] = left - 1
                    return fault
            return state.queue.popleft() if state.queue else None

    def _end(self) -> None:
        with self._lock:
            self._state.in_flight -= 1


def _handler_for(server: FakeOpenAI) -> type[BaseHTTPRequestHandler]:
    class Handler(BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.1"

        def log_message(self, format: str, *args: Any) -> None:  # quiet
            return

        def do_POST(self) -> None:
            length = int(self.headers.get("Content-Length") or 0)
            raw = self.rfile.read(length)
            try:
                body = json.loads(raw or b"{}")
            except ValueError:
                self._send(400, {"error": {"message": "body is not JSON"}})
                return
            if self.path.rstrip("/") not in ("/v1/chat/completions", "/chat/completions"):
                self._send(404, {"error": {"message": f"no route {self.path}"}})
                return
            expected = f"Bearer {server.api_key}"
            if server.api_key is not None and self.headers.get("Authorization") != expected:
                self._send(401, {"error": {"message": "Incorrect API key provided."}})
                return
            request = Request(time.monotonic(), self.path, body, dict(self.headers.items()))
            fault = server._begin(request)
            try:
                self._respond(request, fault)
            finally:
                server._end()

        def _respond(self, request: Request, fault: Fault | None) -> None:
            if fault is not None and fault.kind == "stall":
                server._stopping.wait(fault.seconds)
                fault = None
            if fault is not None and fault.kind == "status":
                self._send(fault.code, fault.content or "", fault.headers)
                return
            if fault is not None and fault.kind == "answer":
                content = fault.content or ""
            else:
                score, reason = server.scorer(request.prompt)
                content = json.dumps({"score": score, "reason": reason})
            prompt_chars = sum(len(m.get("content", "")) for m in request.body.get("messages", []))
            model = request.body.get("model", "unknown")
            self._send(200, chat_completion(model, content, prompt_chars))

        def _send(self, code: int, payload: Any, headers: tuple[tuple[str, str], ...] = ()) -> None:
            data = payload.encode() if isinstance(payload, str) else json.dumps(payload).encode()
            try:
                self.send_response(code)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(data)))
                for name, value in headers:
                    self.send_header(name, value)
                self.end_headers()
                self.wfile.write(data)
            except (BrokenPipeError, ConnectionResetError):
                pass  # the client gave up (it timed out on a stall): nothing to answer

    return Handler


def main() -> None:
    """Serve until interrupted."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    parser.add_argument("--api-key", default=None)
    args = parser.parse_args()
    with FakeOpenAI(api_key=args.api_key) as server:
        print(f"serving on {server.base_url}", flush=True)
        threading.Event().wait()


if __name__ == "__main__":
    main()
