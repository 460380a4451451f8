"""One embedding model per host: a small service owning the device, shared over a Unix socket.

A streaming worker runs one topology process per topology; each used to load its
own copy of the model (~440 MB, and a GPU context each). With the service, the
worker starts ``weave-stream model-service`` once; topology processes send it their
texts (:class:`ServiceClient`) and it embeds them on one
:class:`~weave_stream.ops.embed_engine.EmbeddingEngine`, batching requests from all
of them together. Clients block a thread, never an event loop (the op awaits the
client in a worker thread).

Frames are a 4-byte big-endian length and a payload. A request is JSON:
``{"texts": [...], "budget": null}`` or ``{"hello": "client name"}``; the answer
starts with one byte: ``V`` then n x 384 float32 (little-endian, row-major), ``E``
then an error message, ``S`` then JSON (the engine's stats, the clients seen).

A worker starts its service on demand: a client that finds no socket creates the
file :func:`demand_path` beside it, and the worker starts the service at its next
poll. A worker whose topologies embed nothing never starts one (nor imports torch).
"""

from __future__ import annotations

import logging
import os
import queue
import socket
import socketserver
import struct
import threading
import time
from collections import Counter
from collections.abc import Sequence
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import asdict
from pathlib import Path
from typing import Any

import numpy as np
import numpy.typing as npt
import orjson

from weave_stream.config import Settings
from weave_stream.errors import OpError
from weave_stream.ops.embed_device import plan_for
from weave_stream.ops.embed_engine import EmbeddingEngine
from weave_stream.ops.embed_model import DIMENSIONS

__all__ = ["ModelService", "ServiceClient", "demand_path"]

log = logging.getLogger(__name__)

_LENGTH = struct.Struct(">I")
_CONNECT_WAIT_SECONDS = 30.0  # a worker's service may still be starting with its children
_REQUEST_TIMEOUT_SECONDS = 600.0  # the op's own timeout (300 s) fires first


def demand_path(socket_path: str) -> Path:
    """The file a client creates to ask its worker to start the service at ``socket_path``."""
    return Path(f"{socket_path}.wanted")


def _send(sock: socket.socket, payload: bytes) -> None:
    sock.sendall(_LENGTH.pack(len(payload)) + payload)


def _receive(sock: socket.socket) -> bytes | None:
    header = _read_exactly(sock, _LENGTH.size)
    if header is None:
        return None
    body = _read_exactly(sock, _LENGTH.unpack(header)[0])
    if body is None:
        raise ConnectionError("the connection closed in the middle of a frame")
    return body


def _read_exactly(sock: socket.socket, size: int) -> bytes | None:
    buffer = bytearray(size)
    view, got = memoryview(buffer), 0
    while got < size:
        count = sock.recv_into(view[got:])
        if count == 0:
            return None
        got += count
    return bytes(buffer)


class ModelService:
    """Serve one engine (built from ``settings`` on the first request) on a Unix socket."""

    def __init__(self, settings: Settings, path: str | Path) -> None:
        self.settings = settings
        self.path = str(path)
        self.clients: Counter[str] = Counter()  # requests per client name
        self._engine: EmbeddingEngine | None = None
        self._lock = threading.Lock()
        self._server: socketserver.ThreadingUnixStreamServer | None = None

    def engine(self) -> EmbeddingEngine:
        """The engine, planned (device, precision) and started now if it is not yet."""
        with self._lock:
            if self._engine is None:
                self._engine = EmbeddingEngine(plan_for(self.settings))
            return self._engine

    def bind(self) -> None:
        """Create the socket (clients may connect from now on)."""
        Path(self.path).unlink(missing_ok=True)  # a stale socket from a killed service
        self._server = socketserver.ThreadingUnixStreamServer(self.path, self._handler())
        self._server.daemon_threads = True

    def serve_forever(self) -> None:
        """Answer clients until :meth:`shutdown` (from another thread)."""
        if self._server is None:
            self.bind()
        assert self._server is not None
        self._server.serve_forever(poll_interval=0.2)

    def shutdown(self) -> None:
        """Stop serving (from another thread than :meth:`serve_forever`'s), then :meth:`close`."""
        if self._server is not None:
            self._server.shutdown()
        self.close()

    def close(self) -> None:
        """Close the socket and remove its file, stop the engine (once serving has stopped)."""
        if self._server is not None:
            self._server.server_close()
        Path(self.path).unlink(missing_ok=True)
        if self._engine is not None:
            self._engine.close()

    def stats(self) -> dict[str, Any]:
        """The engine's counters and the requests per client."""
        engine = self._engine
        with self._lock:
            clients = dict(self.clients)
        stats = asdict(engine.stats()) if engine is not None else {"model_loads": 0}
        return {**stats, "clients": clients}

    def _handler(self) -> type[socketserver.BaseRequestHandler]:
        service = self

        class Handler(socketserver.BaseRequestHandler):
            def handle(self) -> None:
                sock: socket.socket = self.request
                client = "anonymous"
                while (frame := _receive(sock)) is not None:
                    try:
                        message = orjson.loads(frame)
                        if "hello" in message:
                            client = str(message["hello"])
                            engine = service.engine()
                            answer = b"S" + orjson.dumps({"device": engine.plan.device})
                        elif "texts" in message:
                            with service._lock:
                                service.clients[client] += 1
                            vectors = service.engine().embed(
                                message["texts"], message.get("budget"), caller=client
                            )
                            answer = b"V" + vectors.astype("<f4", copy=False).tobytes()
                        else:
                            answer = b"S" + orjson.dumps(service.stats())
                    except Exception as exc:  # the client hears why; the service carries on
                        answer = b"E" + f"{type(exc).__name__}: {exc}".encode()
                    _send(sock, answer)

        return Handler


class ServiceClient:
    """Embed through a :class:`ModelService`; thread-safe (a pool of connections).

    ``name`` identifies this client in the service's stats (e.g. the topology). A
    service that is starting is waited for up to ``connect_wait_seconds``.
    """

    def __init__(
        self,
        path: str,
        name: str | None = None,
        connections: int = 8,
        connect_wait_seconds: float = _CONNECT_WAIT_SECONDS,
    ) -> None:
        self.path = path
        self.connect_wait_seconds = connect_wait_seconds
        self.name = name or f"pid-{os.getpid()}"
        self.device: str | None = None  # the service's, known after the first connection
        self._asked = False  # the demand file is created once
        self._idle: queue.LifoQueue[socket.socket] = queue.LifoQueue()
        self._callers = ThreadPoolExecutor(
            connections, thread_name_prefix="weave-stream-embed-client"
        )

    @property
    def kind(self) -> str | None:
        """``cpu``, ``cuda`` or ``mps`` once connected; None before."""
        return self.device.split(":")[0] if self.device else None

    def describe(self) -> str:
        """Where the model runs, for the start-up log."""
        return f"the model service at unix:{self.path} ({self.device or 'not connected yet'})"

    def submit(
        self, texts: Sequence[str], token_budget: int | None = None
    ) -> Future[npt.NDArray[np.float32]]:
        """A future of :meth:`embed` (run on one of the client's threads)."""
        return self._callers.submit(self.embed, list(texts), token_budget)

    def embed(
        self, texts: Sequence[str], token_budget: int | None = None
    ) -> npt.NDArray[np.float32]:
        """The (n, 384) float32 unit vectors of ``texts``, from the service (blocks)."""
        if not texts:
            return np.zeros((0, DIMENSIONS), dtype=np.float32)
        answer = self._exchange({"texts": list(texts), "budget": token_budget})
        if answer[:1] != b"V":
            raise OpError(f"the model service at unix:{self.path} failed: {answer[1:].decode()}")
        return np.frombuffer(answer, dtype="<f4", offset=1).reshape(len(texts), DIMENSIONS).copy()

    def stats(self) -> dict[str, Any]:
        """The service's stats (its engine's counters, requests per client)."""
        answer: dict[str, Any] = orjson.loads(self._exchange({"stats": True})[1:])
        return answer

    def close(self) -> None:
        """Close idle connections and the client's threads."""
        self._callers.shutdown(wait=False)
        while not self._idle.empty():
            self._idle.get_nowait().close()

    def _exchange(self, message: dict[str, Any]) -> bytes:
        payload = orjson.dumps(message)
        for attempt in (1, 2):  # a connection the service closed (restarted) is retried once
            sock = self._connection()
            try:
                _send(sock, payload)
                answer = _receive(sock)
                if answer is None:
                    raise ConnectionError("the service closed the connection")
            except OSError as exc:
                sock.close()
                if attempt == 2:
                    raise self._unreachable(exc) from None
                continue
            self._idle.put(sock)
            return answer
        raise AssertionError("unreachable")

    def _connection(self) -> socket.socket:
        try:
            return self._idle.get_nowait()
        except queue.Empty:
            pass
        deadline = time.monotonic() + self.connect_wait_seconds
        while True:
            sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
            sock.settimeout(_REQUEST_TIMEOUT_SECONDS)
            try:
                sock.connect(self.path)
                _send(sock, orjson.dumps({"hello": self.name}))
                answer = _receive(sock) or b"Eclosed the connection"
                if answer[:1] != b"S":
                    sock.close()
                    raise OpError(f"the model service at unix:{self.path}: {answer[1:].decode()}")
                self.device = orjson.loads(answer[1:])["device"]
                return sock
            except OSError as exc:  # not there yet (starting), or not a socket at all
                sock.close()
                self._ask_for_service()
                if time.monotonic() > deadline:
                    raise self._unreachable(exc) from None
                time.sleep(0.2)  # the service is starting: its socket appears shortly

    def _ask_for_service(self) -> None:
        """Ask the worker to start its service (it starts one only when asked)."""
        if not self._asked:
            self._asked = True
            try:
                demand_path(self.path).touch(exist_ok=True)
            except OSError:  # not a worker's socket folder: a service run by hand
                log.debug("cannot ask for the model service at %s", self.path)

    def _unreachable(self, exc: BaseException) -> OpError:
        return OpError(
            f"the model service at unix:{self.path} is not answering ({exc!r}); the worker "
            "restarts it if it died. To run without it, set embed_service=process (each "
            "topology process then loads its own model)"
        )
