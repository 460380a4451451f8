"""What sharing the model costs: a Unix socket vs loopback TCP, and memory per topology process.

How the model service talks to topology processes was chosen with this:

* ``round_trip_ms``: one request of N texts (~500 characters each) and its answer of
  N x 384 float32, framed as the model service frames them, echoed by a server that
  does no work: Unix socket vs TCP on 127.0.0.1, median over many round trips;
* ``rss_mb``: resident memory of a process that embedded a few texts in-process (it
  loaded the model) vs one that asked the model service (it imports no torch).

Run: ``python bench/embed_transport.py [--texts 64] [--trips 300]``
"""

from __future__ import annotations

import argparse
import json
import os
import socket
import socketserver
import statistics
import subprocess
import sys
import tempfile
import threading
import time
import uuid
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

import orjson

from weave_stream.ops.embed_service import _receive, _send

REPO = Path(__file__).resolve().parent.parent
RSS_SCRIPT = """
import os, sys
from weave_stream.ops.embed import encode_sync
encode_sync(["a few texts", "to embed"])
print(next(int(l.split()[1]) for l in open("/proc/self/status") if l.startswith("VmRSS")) / 1024)
print("torch" in sys.modules)
"""


def echo_handler(answer_bytes: int) -> type[socketserver.BaseRequestHandler]:
    answer = b"V" + bytes(answer_bytes)

    class Echo(socketserver.BaseRequestHandler):
        def handle(self) -> None:
            while _receive(self.request) is not None:
                orjson.loads(b"[]")  # the service parses each request: keep a token of it
                _send(self.request, answer)

    return Echo


def round_trips(client: socket.socket, payload: bytes, trips: int) -> float:
    times = []
    for _ in range(trips):
        started = time.perf_counter()
        _send(client, payload)
        _receive(client)
        times.append(time.perf_counter() - started)
    return statistics.median(times) * 1000


def transport(texts: int, trips: int) -> dict[str, float]:
    payload = orjson.dumps({"texts": ["x" * 500] * texts, "budget": None})
    answer_bytes = texts * 384 * 4
    path = str(Path(tempfile.gettempdir()) / f"ws-echo-{uuid.uuid4().hex[:8]}.sock")
    unix = socketserver.ThreadingUnixStreamServer(path, echo_handler(answer_bytes))
    tcp = socketserver.ThreadingTCPServer(("127.0.0.1", 0), echo_handler(answer_bytes))
    for server in (unix, tcp):
        threading.Thread(target=server.serve_forever, daemon=True).start()
    unix_client = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    unix_client.connect(path)
    tcp_client = socket.create_connection(tcp.server_address[:2])  # type: ignore[arg-type]
    tcp_client.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
    result: dict[str, list[float]] = {"unix": [], "tcp": []}
    for _ in range(3):  # interleaved
        result["unix"].append(round_trips(unix_client, payload, trips))
        result["tcp"].append(round_trips(tcp_client, payload, trips))
    for server in (unix, tcp):
        server.shutdown()
    os.unlink(path)
    return {k: statistics.median(v) for k, v in result.items()}


def rss(embed_service: str) -> tuple[float, bool]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("WEAVE_STREAM_")}
    env.update(WEAVE_STREAM_EMBED_SERVICE=embed_service, PYTHONPATH=str(REPO), HF_HUB_OFFLINE="1")
    out = subprocess.run(
        [sys.executable, "-c", RSS_SCRIPT], env=env, capture_output=True, text=True, check=True
    ).stdout.split()
    return float(out[-2]), out[-1] == "True"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--texts", type=int, default=64)
    parser.add_argument("--trips", type=int, default=300)
    args = parser.parse_args()
    trip = transport(args.texts, args.trips)
    print(f"round trip of {args.texts} texts: unix {trip['unix']:.3f} ms, tcp {trip['tcp']:.3f} ms")

    socket_path = str(Path(tempfile.gettempdir()) / f"ws-rss-{uuid.uuid4().hex[:8]}.sock")
    service = subprocess.Popen(
        [sys.executable, "-m", "weave_stream", "model-service", "--socket", socket_path],
        cwd=REPO,
        stderr=subprocess.DEVNULL,
    )
    try:
        in_process, torch_in = rss("process")
        client, torch_client = rss(f"unix:{socket_path}")
    finally:
        service.terminate()
        service.wait(timeout=60)
    print(f"resident memory: in-process model {in_process:.0f} MB (torch {torch_in}), "
          f"service client {client:.0f} MB (torch {torch_client})")  # fmt: skip
    figures = [
        ("round_trip_ms", round(trip["unix"], 4), round(trip["tcp"], 4), "unix vs tcp, ms"),
        ("rss_mb", round(client), round(in_process), "service client vs in-process model, MB"),
    ]
    for bench, value, baseline, note in figures:
        ratio = round(value / baseline, 3)
        print(json.dumps({"bench": bench, "value": value, "baseline": baseline, "ratio": ratio,
                          "note": note, "texts": args.texts}))  # fmt: skip


if __name__ == "__main__":
    main()
