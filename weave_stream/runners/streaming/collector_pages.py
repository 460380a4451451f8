"""The collector's write endpoints on a worker's web port (``collector_on_workers``).

A Weave application can then point ``WF_TRACE_SERVER_URL`` at any worker; the calls
go to ``<prefix>.calls`` like every other producer's. Only the collector's own paths
are added (no catch-all), so the worker's pages stay as they are; the tee to an
upstream trace server is ``weave-stream collector --upstream``'s.
"""

from __future__ import annotations

import logging

import faust

from weave_stream.collector.server import Collector
from weave_stream.config import Settings

__all__ = ["register_collector"]

log = logging.getLogger(__name__)


def register_collector(app: faust.App, settings: Settings) -> Collector | None:
    """Add the collector's routes to ``app``'s web server, unless switched off."""
    if not settings.collector_on_workers:
        return None
    collector = Collector(settings)
    router = app.web.web_app.router  # type: ignore[attr-defined]  # the aiohttp driver's app
    for route in collector.routes(catch_all=False):
        router.add_route(route.method, route.path, route.handler)
    app.on_before_shutdown.connect(lambda *args, **kwargs: collector.close())
    log.info("collector endpoints on the web port: %s", collector.keys.describe())
    return collector
