"""The worker's HTTP endpoints that change state: register and unregister topologies.

::

    GET    /topologies          the registered topologies (read-only: no token)
    POST   /topologies/{name}   body: the topology's YAML -> validated, then registered
    DELETE /topologies/{name}   unregister (its derived values stay)

Changing state requires ``Authorization: Bearer <api_token>``; the token is compared
in constant time (:func:`hmac.compare_digest`). Without a configured ``api_token``
(``WEAVE_STREAM_API_TOKEN``) these endpoints refuse every request: a worker is never
writable by accident. Answers: 401 (no or malformed credentials), 403 (wrong token,
or no token configured), 404 (unregistering an unknown name), 422 (a topology that
does not validate, with the loader's message), 201/200 on success.

Only YAML is accepted over HTTP. A YAML topology may still name ops by import path,
so whoever holds the token may run code on the workers, exactly like whoever may
write the registry topic: give the token only to those who may deploy.
"""

from __future__ import annotations

import asyncio
import dataclasses
import hmac
import logging
import re
import tempfile
from pathlib import Path
from typing import Any

import faust
from faust.web import Request, Response, View

from weave_stream.config import Settings
from weave_stream.errors import WeaveStreamError
from weave_stream.topology.registrations import (
    Registration,
    read_registry,
    register,
    registration_for,
    unregister,
)

__all__ = ["MAX_TOPOLOGY_BYTES", "bearer_token", "register_admin_pages", "token_matches"]

log = logging.getLogger(__name__)

MAX_TOPOLOGY_BYTES = 256 * 1024
_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.-]{0,99}$")  # as weave_stream.topology.spec


def bearer_token(authorization: str | None) -> str | None:
    """The token of an ``Authorization: Bearer <token>`` header, else ``None``.

    >>> bearer_token("Bearer s3cret"), bearer_token("bearer  s3cret "), bearer_token("Basic x")
    ('s3cret', 's3cret', None)
    """
    if not authorization:
        return None
    scheme, _, token = authorization.strip().partition(" ")
    token = token.strip()
    if scheme.lower() != "bearer" or not token:
        return None
    return token


def token_matches(presented: str, expected: str) -> bool:
    """Whether ``presented`` is ``expected``, in time independent of where they differ.

    An empty ``expected`` matches nothing.

    >>> token_matches("abc", "abc"), token_matches("abd", "abc"), token_matches("", "")
    (True, False, False)
    """
    if not expected:
        return False
    return hmac.compare_digest(presented.encode(), expected.encode())


def register_admin_pages(app: faust.App, settings: Settings) -> None:
    """Add ``/topologies`` (read-only) and the token-guarded ``/topologies/{name}``."""
    expected = settings.api_token.get_secret_value() if settings.api_token else ""

    def refused(view: View, request: Request) -> Response | None:
        """The answer that refuses ``request``, or ``None`` when it may change state."""
        if not expected:
            return _error(
                view,
                403,
                "state-changing endpoints are disabled on this worker: no api_token is "
                "configured; set WEAVE_STREAM_API_TOKEN (or api_token in the config file) "
                "and send it as 'Authorization: Bearer <token>'",
            )
        presented = bearer_token(request.headers.get("Authorization"))
        if presented is None:
            answer = _error(
                view, 401, "missing credentials: send 'Authorization: Bearer <api_token>'"
            )
            answer.headers["WWW-Authenticate"] = 'Bearer realm="weave-stream"'
            return answer
        if not token_matches(presented, expected):
            log.warning("refused %s %s: wrong token", request.method, request.url.path)
            return _error(view, 403, "the bearer token is not this worker's api_token")
        return None

    @app.page("/topologies")
    class Topologies(View):
        async def get(self, request: Request) -> Response:
            registry = await read_registry(settings)
            return self.json(
                [
                    {
                        "name": entry.name,
                        "version": entry.version,
                        "registered_at": entry.registered_at,
                        "registered_by": entry.registered_by,
                    }
                    for entry in sorted(registry.values(), key=lambda e: e.name)
                ]
            )

    @app.page("/topologies/{name}")
    class Topology(View):
        async def post(self, request: Request, name: str) -> Response:
            answer = refused(self, request) or _check_name(self, name)
            if answer is not None:
                return answer
            body = await self.read_request_content(request)
            if len(body) > MAX_TOPOLOGY_BYTES:
                return _error(
                    self, 413, f"topology of {len(body)} bytes; at most {MAX_TOPOLOGY_BYTES}"
                )
            try:
                registration, columns = await asyncio.to_thread(
                    _registration_from_yaml, name, body, settings
                )
            except WeaveStreamError as exc:
                return _error(self, 422, str(exc))
            registration = dataclasses.replace(registration, registered_by=f"http:{_peer(request)}")
            await register(settings, registration)
            log.info("registered %s version %s over HTTP", name, registration.version)
            return self.json(
                {"name": name, "version": registration.version, "columns": columns}, status=201
            )

        async def delete(self, request: Request, name: str) -> Response:
            answer = refused(self, request) or _check_name(self, name)
            if answer is not None:
                return answer
            known = await read_registry(settings)
            if name not in known:
                return _error(
                    self,
                    404,
                    f"no registered topology {name!r} "
                    f"(registered: {', '.join(sorted(known)) or 'none'})",
                )
            await unregister(settings, name)
            log.info("unregistered %s over HTTP", name)
            return self.json({"name": name, "unregistered": True})


def _registration_from_yaml(
    name: str, body: bytes, settings: Settings
) -> tuple[Registration, dict[str, str]]:
    """Validate ``body`` as topology ``name`` exactly as ``weave-stream register`` would."""
    try:
        text = body.decode("utf-8")
    except UnicodeDecodeError as exc:
        raise WeaveStreamError(f"topology {name!r}: the body is not UTF-8 text ({exc})") from None
    with tempfile.TemporaryDirectory(prefix="weave-stream-http-") as folder:
        path = Path(folder) / f"{name}.yaml"
        path.write_text(text, encoding="utf-8")
        topology, registration = registration_for(str(path), settings)
    if topology.name != name:
        raise WeaveStreamError(
            f"the body defines topology {topology.name!r} but the URL names {name!r}; "
            f"POST it to /topologies/{topology.name}"
        )
    return registration, {column.name: column.op.ref for column in topology.compiled}


def _peer(request: Request) -> str:
    # aiohttp's request (what Faust hands us) knows the peer; Faust's type does not say so.
    return str(getattr(request, "remote", None) or "unknown")


def _check_name(view: View, name: str) -> Response | None:
    if _NAME.match(name):
        return None
    return _error(
        view,
        400,
        f"topology name {name!r} is not valid: letters, digits, '_', '.', '-' "
        "(starting with a letter or digit), at most 100 characters",
    )


def _error(view: View, status: int, message: str) -> Response:
    body: dict[str, Any] = {"error": message, "status": status}
    return view.json(body, status=status)
