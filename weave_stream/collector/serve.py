"""``weave-stream collector``: the collector's endpoints alone, on their own port.

It also serves ``/healthz`` and ``/metrics``. The worker's web port serves the same
write endpoints (``collector_on_workers``); this process is for a collector in front
of the workers, or with ``--upstream`` (the tee to a real trace server).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import signal
from collections.abc import Callable

from aiohttp import web

from weave_stream.collector.server import Collector
from weave_stream.config import Settings
from weave_stream.metrics import render

__all__ = ["collector_app", "serve"]

log = logging.getLogger(__name__)


def collector_app(collector: Collector) -> web.Application:
    """An aiohttp application with the collector's routes, ``/healthz`` and ``/metrics``."""
    app = web.Application()

    async def health(request: web.Request) -> web.Response:
        kafka = "ok" if collector.delivery.available else "refusing"
        return web.json_response({"status": "alive", "kafka": kafka})

    async def scrape(request: web.Request) -> web.Response:
        return web.Response(body=render(), content_type="text/plain")

    app.add_routes([web.get("/healthz", health), web.get("/metrics", scrape)])
    app.add_routes(collector.routes(catch_all=True))
    app.on_cleanup.append(lambda _: collector.close())
    return app


async def serve(
    settings: Settings,
    upstream: str | None = None,
    on_ready: Callable[[str], None] | None = None,
) -> None:
    """Serve until SIGTERM or SIGINT; ``on_ready`` gets the base URL once listening."""
    collector = Collector(settings, upstream)
    runner = web.AppRunner(collector_app(collector), access_log=None)
    await runner.setup()
    site = web.TCPSite(runner, settings.collector_host, settings.collector_port)
    await site.start()
    sockets = site._server.sockets if site._server is not None else []  # type: ignore[attr-defined]
    port = sockets[0].getsockname()[1] if sockets else settings.collector_port
    url = f"http://{settings.collector_host}:{port}"
    log.info("collector at %s: %s", url, collector.keys.describe())
    if on_ready is not None:
        on_ready(url)
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for signum in (signal.SIGTERM, signal.SIGINT):
        with contextlib.suppress(NotImplementedError):
            loop.add_signal_handler(signum, stop.set)
    try:
        await stop.wait()
    finally:
        await runner.cleanup()
