"""A socket guard for a client process: loopback only, every other attempt written down.

``install(log_path)`` patches name resolution and ``connect`` so that a host or an
address that is not on this machine is refused (as an unreachable network would),
and appends one JSON line per refused attempt to ``log_path``. The client tests
read that log to assert what the client tried to reach besides weave-stream.
"""

from __future__ import annotations

import ipaddress
import json
import socket
import threading
from pathlib import Path
from typing import Any

__all__ = ["install"]

_LOOPBACK_NAMES = {"localhost", "localhost.localdomain", "ip6-localhost"}


def _is_loopback(host: Any) -> bool:
    if isinstance(host, bytes):
        host = host.decode()
    if not isinstance(host, str):
        return False
    if host.lower() in _LOOPBACK_NAMES:
        return True
    try:
        return ipaddress.ip_address(host.split("%")[0]).is_loopback
    except ValueError:
        return False


def install(log_path: str) -> None:
    """Refuse every non-loopback name lookup and connection from now on, logging each."""
    log = Path(log_path)
    lock = threading.Lock()

    def refuse(kind: str, target: Any) -> None:
        with lock, log.open("a") as out:
            out.write(json.dumps({"kind": kind, "target": str(target)}) + "\n")

    real_getaddrinfo = socket.getaddrinfo
    real_connect = socket.socket.connect
    real_connect_ex = socket.socket.connect_ex

    def getaddrinfo(host: Any, *args: Any, **kwargs: Any) -> Any:
        if host is not None and not _is_loopback(host):
            refuse("resolve", host)
            raise socket.gaierror(socket.EAI_NONAME, f"blocked by the test: {host}")
        return real_getaddrinfo(host, *args, **kwargs)

    def connect(self: socket.socket, address: Any) -> Any:
        if self.family in (socket.AF_INET, socket.AF_INET6) and not _is_loopback(address[0]):
            refuse("connect", address[0])
            raise ConnectionRefusedError(f"blocked by the test: {address[0]}")
        return real_connect(self, address)

    def connect_ex(self: socket.socket, address: Any) -> Any:
        if self.family in (socket.AF_INET, socket.AF_INET6) and not _is_loopback(address[0]):
            refuse("connect", address[0])
            return 111  # ECONNREFUSED
        return real_connect_ex(self, address)

    socket.getaddrinfo = getaddrinfo  # type: ignore[assignment]
    socket.socket.connect = connect  # type: ignore[method-assign]
    socket.socket.connect_ex = connect_ex  # type: ignore[method-assign]
