"""The collector's HTTP endpoints: the Weave trace server's write API, and OTLP/HTTP traces.

* ``GET /server_info``: what ``weave.init`` asks first;
* ``POST /graphql``: the ``Project``, ``DefaultEntity`` and ``UpsertModel`` operations;
* ``POST /v2/{entity}/{project}/calls/complete``: complete calls (the client's default);
* ``POST [/v2/{entity}/{project}]/call/start`` and ``.../call/end``: an eager op's halves;
* ``POST [/v2/{entity}/{project}]/call/upsert_batch``: ``WEAVE_USE_CALLS_COMPLETE=false``;
* ``POST /obj/create``, ``/file/create``, ``/table/create``: op code, files, tables;
* ``POST /v1/traces``: OTLP/HTTP spans, protobuf or JSON.

A write is answered 2xx only once Kafka has acknowledged every call of it (503 with
``Retry-After`` while Kafka cannot take them; 413 over ``collector_max_request_bytes``;
400 for a body that is not what the endpoint takes). Anything else: 404 (the client
gives up at once on a 4xx; the collector serves no reads). :class:`Collector` gives
the routes; ``weave-stream collector`` serves them alone (:mod:`.serve`), and every
worker serves them on its web port.
"""

from __future__ import annotations

import asyncio
import logging
import re
import time
from collections.abc import Awaitable, Callable
from email.parser import BytesParser
from email.policy import HTTP
from importlib.metadata import PackageNotFoundError, version
from typing import Any

import orjson
from aiohttp import web

from weave_stream.collector import bodies, objects, otlp
from weave_stream.collector.auth import ApiKeys
from weave_stream.collector.delivery import Delivery
from weave_stream.collector.upstream import Upstream
from weave_stream.config import Settings
from weave_stream.errors import CollectorRequestError
from weave_stream.metrics import (
    COLLECTOR_CALLS,
    COLLECTOR_REFUSED,
    COLLECTOR_REQUEST_SECONDS,
    COLLECTOR_REQUESTS,
)

__all__ = ["Collector"]

log = logging.getLogger(__name__)

Handler = Callable[[web.Request, bytes], Awaitable[web.StreamResponse]]
_CALL_WRITES = {
    "calls/complete": ("complete", bodies.calls_complete),
    "call/start": ("start", bodies.call_start),
    "call/end": ("end", bodies.call_end),
    "call/upsert_batch": ("upsert", bodies.upsert_batch),
}
_OPERATION = re.compile(r"\b(?:query|mutation)\s+(\w+)")
USERNAME = "weave-stream"
"""The viewer and default entity the collector's GraphQL answers name."""


def _server_version() -> str:
    try:
        return f"0.0.0+weave-stream.{version('weave-stream')}"
    except PackageNotFoundError:  # run from a source tree
        return "0.0.0+weave-stream"


class Collector:
    """The collector's routes, its Kafka delivery, its key check and (optionally) its tee."""

    def __init__(self, settings: Settings, upstream: str | None = None) -> None:
        self.settings = settings
        self.keys = ApiKeys.parse(
            settings.collector_api_keys.get_secret_value() if settings.collector_api_keys else None
        )
        self.delivery = Delivery(settings)
        self.upstream = Upstream(upstream) if upstream else None
        self._limit = settings.collector_max_request_bytes
        self._server_info = {
            "min_required_weave_python_version": "0.0.1",
            "trace_server_version": _server_version(),
        }

    def routes(self, catch_all: bool = True) -> list[web.RouteDef]:
        """The routes; ``catch_all`` adds the 404 (or the tee) for every other path."""
        table = [
            web.get("/server_info", self._wrap("server_info", self._info)),
            web.post("/graphql", self._wrap("graphql", self._graphql)),
            web.post("/obj/create", self._wrap("obj/create", self._obj_create)),
            web.post("/file/create", self._wrap("file/create", self._file_create)),
            web.post("/table/create", self._wrap("table/create", self._table_create)),
            web.post("/v1/traces", self._wrap("otlp", self._otlp)),
        ]
        for endpoint, (source, parse) in _CALL_WRITES.items():
            handler = self._wrap(endpoint, self._calls(source, parse))
            table += [
                web.post(f"/{endpoint}", handler),
                web.post(f"/v2/{{entity}}/{{project}}/{endpoint}", handler),
            ]
        if catch_all:
            table.append(web.route("*", "/{path:.*}", self._wrap("other", self._other)))
        return table

    async def close(self) -> None:
        """Flush the producer, close the upstream's connections."""
        await self.delivery.stop()
        if self.upstream is not None:
            await self.upstream.close()

    # -- the wrapper every endpoint goes through -------------------------------------

    def _wrap(self, endpoint: str, handler: Handler) -> Callable[[web.Request], Awaitable[Any]]:
        async def wrapped(request: web.Request) -> web.StreamResponse:
            started = time.perf_counter()
            try:
                refused = self.keys.check(request.headers.get("Authorization"), request.remote)
                if refused is not None:
                    reason = "unauthorized" if refused.status == 401 else "not_loopback"
                    COLLECTOR_REFUSED.labels(reason).inc()
                    raise refused
                body = await self._read(request)
                response = await handler(request, body)
            except CollectorRequestError as err:
                response = _error(err)
            COLLECTOR_REQUESTS.labels(endpoint, str(response.status)).inc()
            COLLECTOR_REQUEST_SECONDS.observe(time.perf_counter() - started)
            return response

        return wrapped

    async def _read(self, request: web.Request) -> bytes:
        """The body, refused with 413 past the limit (without reading all of it)."""
        if request.content_length is not None and request.content_length > self._limit:
            raise _too_large(request.content_length, self._limit)
        chunks, size = [], 0
        async for chunk in request.content.iter_chunked(256 * 1024):
            size += len(chunk)
            if size > self._limit:
                raise _too_large(size, self._limit)
            chunks.append(chunk)
        return b"".join(chunks)

    async def _tee(self, request: web.Request, body: bytes, written: Any) -> web.StreamResponse:
        """Forward to the upstream while ``written`` (the Kafka write) runs; see ``upstream``."""
        assert self.upstream is not None
        writing = asyncio.ensure_future(written)
        try:
            status, headers, content = await self.upstream.forward(
                request.method, request.path_qs, request.headers, body
            )
        finally:
            await writing  # a Kafka failure (503) wins over whatever the upstream said
        return web.Response(status=status, headers=headers, body=content)

    # -- endpoints --------------------------------------------------------------------

    async def _info(self, request: web.Request, body: bytes) -> web.StreamResponse:
        if self.upstream is not None:
            return await self._tee(request, body, _nothing())
        return _json(self._server_info)

    async def _graphql(self, request: web.Request, body: bytes) -> web.StreamResponse:
        if self.upstream is not None:
            return await self._tee(request, body, _nothing())
        query, _ = bodies.decode_body(body, "graphql")
        return _json(graphql_answer(query if isinstance(query, dict) else {}))

    def _calls(self, source: str, parse: Callable[[Any, bool], Any]) -> Handler:
        async def write(request: web.Request, body: bytes) -> web.StreamResponse:
            fast = bodies.complete_records(body) if source == "complete" else None
            if fast is not None:
                records, answer = fast, {}
            else:
                records, answer = parse(*bodies.decode_body(body, request.path))
            sent = self._send(records, source)
            if self.upstream is not None:
                return await self._tee(request, body, sent)
            await sent
            return _json(answer)

        return write

    async def _send(self, records: list[bodies.Record], source: str) -> None:
        await self.delivery.send(self.settings.topics.calls, records)
        if source == "upsert":
            for _, value in records:
                kind = "start" if value.startswith(b'{"start"') else "end"
                COLLECTOR_CALLS.labels(kind).inc()
        else:
            COLLECTOR_CALLS.labels(source).inc(len(records))

    async def _obj_create(self, request: web.Request, body: bytes) -> web.StreamResponse:
        record, answer = objects.obj_create(bodies.decode_body(body, "obj/create")[0])
        return await self._keep(request, body, record, answer)

    async def _table_create(self, request: web.Request, body: bytes) -> web.StreamResponse:
        record, answer = objects.table_create(bodies.decode_body(body, "table/create")[0])
        return await self._keep(request, body, record, answer)

    async def _file_create(self, request: web.Request, body: bytes) -> web.StreamResponse:
        fields = _form_fields(request.headers.get("Content-Type", ""), body)
        project_id, content = fields.get("project_id"), fields.get("file")
        if project_id is None or content is None:
            raise CollectorRequestError(
                400, "file/create: expected multipart fields 'project_id' and 'file'"
            )
        record, answer = objects.file_create(project_id.decode(), content)
        return await self._keep(request, body, record, answer)

    async def _keep(
        self, request: web.Request, body: bytes, record: Any, answer: dict[str, Any]
    ) -> web.StreamResponse:
        kept = self.delivery.send(self.settings.topics.objects, [record])
        if self.upstream is not None:
            return await self._tee(request, body, kept)
        await kept
        return _json(answer)

    async def _otlp(self, request: web.Request, body: bytes) -> web.StreamResponse:
        content_type = request.headers.get("Content-Type", "application/x-protobuf")
        export = otlp.decode_request(body, content_type)
        calls = list(otlp.calls_from_request(export, request.headers.get("project_id")))
        await self.delivery.send(
            self.settings.topics.calls, [(c["id"].encode(), orjson.dumps(c)) for c in calls]
        )
        COLLECTOR_CALLS.labels("otlp").inc(len(calls))
        content, answer_type = otlp.encode_response(content_type)
        return web.Response(body=content, content_type=answer_type)

    async def _other(self, request: web.Request, body: bytes) -> web.StreamResponse:
        if self.upstream is not None:
            return await self._tee(request, body, _nothing())
        raise CollectorRequestError(
            404,
            f"{request.method} {request.path}: weave-stream's collector serves the trace "
            "server's write API only (calls, objects, files, tables) and OTLP /v1/traces; "
            "read calls with weave-stream, or run it with --upstream to keep a trace server",
        )


def graphql_answer(query: dict[str, Any]) -> dict[str, Any]:
    """What ``weave.init`` needs from W&B's GraphQL API: the project exists, who the viewer is.

    >>> graphql_answer({"query": "query DefaultEntity { viewer { username } }"})["data"]
    {'viewer': {'username': 'weave-stream', 'defaultEntity': {'name': 'weave-stream'}}}
    """
    text = str(query.get("query") or "")
    variables = query.get("variables") or {}
    found = _OPERATION.search(text)
    operation = found.group(1) if found else None
    if operation == "Project":
        return {"data": {"project": {"name": variables.get("name")}}}
    if operation == "DefaultEntity":
        return {"data": {"viewer": {"username": USERNAME, "defaultEntity": {"name": USERNAME}}}}
    if operation == "UpsertModel":
        model = {"name": variables.get("name"), "description": variables.get("description")}
        return {"data": {"upsertModel": {"model": model}}}
    return {
        "data": None,
        "errors": [
            {
                "message": f"weave-stream answers only the GraphQL operations weave.init needs "
                f"(Project, DefaultEntity, UpsertModel), not {operation or 'this query'}"
            }
        ],
    }


def _form_fields(content_type: str, body: bytes) -> dict[str, bytes]:
    """The fields of a ``multipart/form-data`` body, by name."""
    if not content_type.startswith("multipart/"):
        raise CollectorRequestError(400, "file/create: expected a multipart/form-data body")
    message = BytesParser(policy=HTTP).parsebytes(
        b"Content-Type: " + content_type.encode() + b"\r\n\r\n" + body
    )
    fields: dict[str, bytes] = {}
    for part in message.iter_parts():
        name = part.get_param("name", header="content-disposition")
        payload = part.get_payload(decode=True)
        if isinstance(name, str):
            fields[name] = payload if isinstance(payload, bytes) else b""
    return fields


async def _nothing() -> None:
    return None


def _json(data: Any, status: int = 200) -> web.Response:
    return web.Response(body=orjson.dumps(data), status=status, content_type="application/json")


def _error(err: CollectorRequestError) -> web.Response:
    response = _json({"reason": str(err)}, err.status)
    if err.retry_after is not None:
        response.headers["Retry-After"] = str(int(err.retry_after))
    if err.status == 401:
        response.headers["WWW-Authenticate"] = 'Basic realm="weave-stream"'
    if err.status == 400:
        COLLECTOR_REFUSED.labels("bad_request").inc()
    return response


def _too_large(size: int, limit: int) -> CollectorRequestError:
    COLLECTOR_REFUSED.labels("too_large").inc()
    return CollectorRequestError(
        413,
        f"request body of {size} bytes is over collector_max_request_bytes ({limit}): send "
        "smaller batches (the weave client splits a batch answered 413)",
    )
