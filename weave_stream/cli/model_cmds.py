"""``weave-stream model-service``: one embedding model serving every topology process of a host.

A worker starts one itself (``embed_service=auto``). Run it by hand to share one
model (one GPU) between several workers on a host: start it with ``--socket``, and
give each worker ``embed_service=unix:<that socket>``.
"""

from __future__ import annotations

import contextlib
import logging
import os
import signal
import sys
import threading
from pathlib import Path
from typing import Any

import click

from weave_stream.cli.options import fail, settings_options
from weave_stream.config import Settings
from weave_stream.errors import WeaveStreamError

__all__ = ["COMMANDS", "model_service"]


@click.command(name="model-service")
@click.option(
    "--socket",
    "socket_path",
    required=True,
    type=click.Path(dir_okay=False, path_type=Path),
    help="The Unix socket to serve on (at most ~100 characters).",
)
@click.option("--metrics-port", type=int, default=None, help="Serve /metrics on this port.")
@settings_options("device", "precision", "embed_token_budget", "embed_gather_seconds")
def model_service(socket_path: Path, metrics_port: int | None, settings: Settings) -> None:
    """Serve the embedding model (embed and classify ops) on a Unix socket.

    Clients' requests are batched together on one device (the setting ``device``:
    auto, cpu, cuda, cuda:N, mps). It says at start which device and precision it
    uses; the model loads on the first request. Stops on SIGTERM or Ctrl-C.
    """
    from prometheus_client import start_http_server

    from weave_stream.metrics import REGISTRY
    from weave_stream.ops.embed_service import ModelService

    logging.basicConfig(
        level=settings.log_level.upper(), format="%(asctime)s %(levelname)s %(name)s %(message)s"
    )
    try:
        service = ModelService(settings, socket_path)
        engine = service.engine()  # plans the device now: a missing GPU fails here, said plainly
    except (WeaveStreamError, OSError) as exc:
        fail(f"model service on unix:{socket_path}: {exc}")
        return
    if metrics_port:
        start_http_server(metrics_port, settings.web_host, registry=REGISTRY)
    click.echo(
        f"model service on unix:{socket_path}: {engine.describe()}; the model loads on the "
        "first request",
        err=True,
    )

    def stop(*_: Any) -> None:  # serve_forever returns once this thread has stopped it
        threading.Thread(target=service.shutdown, daemon=True).start()

    signal.signal(signal.SIGTERM, stop)
    with contextlib.suppress(KeyboardInterrupt):
        service.serve_forever()
    service.close()
    # The service holds no state to save: skip the interpreter's teardown of torch,
    # which took ~9 s here on a loaded machine (0.4 s this way) and held up the
    # worker's shutdown.
    logging.shutdown()
    sys.stderr.flush()
    os._exit(0)


COMMANDS = [model_service]
