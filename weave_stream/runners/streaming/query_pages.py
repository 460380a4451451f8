"""The aggregates query API of every worker (read-only, no token).

::

    GET /aggregates/{topology}?aggregate=A&since=6h&by=doc_class
        every window x group of each aggregate (or of A), merged over every partition
        and worker; ``by`` (repeatable or comma-separated) re-groups on some group
        keys, ``by=`` (empty) merges all groups; ``since`` keeps the windows ending in
        that duration before the newest event time
    GET /aggregates/{topology}/drill?window_start=T&group=doc_class=invoice&aggregate=A
        the sampled and the worst calls of one window, for the groups matching

The answers are the JSON of ``weave-stream aggregates --format json`` and ``weave-stream
drill --format json`` exactly: both read the topology's aggregate changelog to its end
and merge the partials of every source partition
(:mod:`weave_stream.aggregates.source` says why the changelog and not each worker).
So any worker answers for all of them, including a worker that holds no partition
of the topology. Errors: 404 (topology not registered), 400 (a bad parameter), with
``{"error": ..., "status": ...}``.
"""

from __future__ import annotations

import asyncio
import logging

import faust
from faust.web import Request, Response, View

from weave_stream.aggregates.queries import (
    drill,
    parse_by,
    parse_group,
    query_tables,
    tables_document,
)
from weave_stream.aggregates.source import read_snapshots
from weave_stream.config import Settings
from weave_stream.errors import WeaveStreamError
from weave_stream.topology.registrations import read_registry, topology_from_registration
from weave_stream.topology.spec import Topology

__all__ = ["register_query_pages"]

log = logging.getLogger(__name__)


def register_query_pages(app: faust.App, settings: Settings) -> None:
    """Add ``GET /aggregates/{topology}`` and ``GET /aggregates/{topology}/drill`` to ``app``."""
    loaded: dict[tuple[str, str], Topology] = {}

    async def topology_of(name: str) -> Topology | None:
        registration = (await read_registry(settings)).get(name)
        if registration is None:
            return None
        key = (name, registration.version)
        if key not in loaded:
            loaded.clear()  # one version per name is enough: registrations change rarely
            loaded[key] = await asyncio.to_thread(
                topology_from_registration, registration, settings
            )
        return loaded[key]

    @app.page("/aggregates/{topology}")
    class Aggregates(View):
        async def get(self, request: Request, topology: str) -> Response:
            query = request.rel_url.query
            spec = await topology_of(topology)
            if spec is None:
                return _error(self, 404, f"no registered topology {topology!r}")
            try:
                plans, snapshots = await read_snapshots(settings, spec)
                by = parse_by(query.getall("by")) if "by" in query else None
                tables = await asyncio.to_thread(
                    query_tables,
                    plans,
                    snapshots,
                    aggregate=query.get("aggregate"),
                    by=by,
                    since=query.get("since"),
                )
            except WeaveStreamError as exc:
                return _error(self, 400, str(exc))
            return self.json(tables_document(topology, tables))

    @app.page("/aggregates/{topology}/drill")
    class Drill(View):
        async def get(self, request: Request, topology: str) -> Response:
            query = request.rel_url.query
            start = query.get("window_start")
            if start is None:
                return _error(self, 400, "window_start is required (ISO-8601 or epoch seconds)")
            spec = await topology_of(topology)
            if spec is None:
                return _error(self, 404, f"no registered topology {topology!r}")
            try:
                plans, snapshots = await read_snapshots(settings, spec)
                found = drill(
                    plans,
                    snapshots,
                    window_start=start,
                    group=parse_group(query.getall("group", [])),
                    aggregate=query.get("aggregate"),
                )
            except WeaveStreamError as exc:
                return _error(self, 400, str(exc))
            return self.json(found.to_dict())


def _error(view: View, status: int, message: str) -> Response:
    return view.json({"error": message, "status": status}, status=status)
