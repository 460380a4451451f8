"""The tee: every collector request forwarded, unchanged, to a real trace server.

With ``--upstream URL`` (``collector_upstream``) the collector sends each request it
receives to that trace server (W&B's, or a self-hosted one) with the same method,
path, query, headers (the client's own API key included) and body, and answers the
client with the upstream's answer, while it also streams the calls into Kafka. Which
side wins:

* the upstream answers: the client's ids, digests and reads are W&B's, so what the
  client sees must be what W&B said; if the upstream is down, the client sees that
  failure (and retries a 5xx), and the calls have reached Kafka all the same;
* unless Kafka did not acknowledge the calls: then the client gets the collector's
  503 whatever the upstream said, so that it retries and no call is missing from the
  stream (W&B stores calls by id, so the retried batch is the same calls again).

Hop-by-hop headers are not forwarded; a compressed request body is forwarded
decompressed (without its ``Content-Encoding``), and the answer's body is passed on
byte for byte as the upstream sent it.
"""

from __future__ import annotations

import logging
from collections.abc import Mapping

import httpx

from weave_stream.errors import CollectorRequestError

__all__ = ["Answer", "Upstream"]

log = logging.getLogger(__name__)

# RFC 9110 §7.6.1 hop-by-hop headers, and those the transport sets itself.
_NOT_FORWARDED = frozenset(
    {
        "connection",
        "keep-alive",
        "proxy-authenticate",
        "proxy-authorization",
        "te",
        "trailer",
        "transfer-encoding",
        "upgrade",
        "host",
        "content-length",
    }
)

Answer = tuple[int, list[tuple[str, str]], bytes]
"""An upstream answer: status, headers, body."""


class Upstream:
    """An HTTP client for one upstream trace server."""

    def __init__(self, base_url: str, timeout: float = 30.0) -> None:
        if not base_url.startswith(("http://", "https://")):
            raise ValueError(f"upstream {base_url!r} is not an http(s) URL")
        self.base_url = base_url.rstrip("/")
        self._client = httpx.AsyncClient(timeout=timeout)

    async def forward(
        self, method: str, path_qs: str, headers: Mapping[str, str], body: bytes
    ) -> Answer:
        """Send the request on; return the upstream's answer, or a 502 when it cannot be reached.

        The answer's body arrives as sent (``Content-Encoding`` kept), so it is passed on
        byte for byte.
        """
        # The body arrives decompressed (aiohttp undoes Content-Encoding): sent as it is.
        sent = [
            (k, v)
            for k, v in headers.items()
            if k.lower() not in _NOT_FORWARDED and k.lower() != "content-encoding"
        ]
        try:
            request = self._client.build_request(
                method, self.base_url + path_qs, headers=sent, content=body
            )
            response = await self._client.send(request, stream=True)
            try:
                content = b"".join([chunk async for chunk in response.aiter_raw()])
            finally:
                await response.aclose()
        except httpx.HTTPError as exc:
            log.warning("upstream %s: %s %s failed: %r", self.base_url, method, path_qs, exc)
            raise CollectorRequestError(
                502, f"the upstream trace server {self.base_url} did not answer: {exc!r}"
            ) from None
        kept = [
            (k, v) for k, v in response.headers.multi_items() if k.lower() not in _NOT_FORWARDED
        ]
        return response.status_code, kept, content

    async def close(self) -> None:
        """Close the connections."""
        await self._client.aclose()
