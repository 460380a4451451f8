"""Who may send calls to the collector: configured API keys, or loopback clients only.

The weave client sends ``WANDB_API_KEY`` as HTTP Basic ``api:<key>``; other clients
(an OTLP exporter, curl) may send ``Authorization: Bearer <key>``. Keys come from
``collector_api_keys`` (comma-separated) and are compared in constant time, every
configured key every time, so neither a key's content nor its position leaks
through timing. With no key configured the collector answers loopback clients only,
and says so at start-up.

>>> keys = ApiKeys.parse("k-one, k-two")
>>> keys.check("Basic " + base64.b64encode(b"api:k-two").decode(), "10.0.0.7")
>>> keys.check("Bearer k-three", "127.0.0.1").status
401
>>> ApiKeys.parse(None).check(None, "10.0.0.7").status
403
>>> ApiKeys.parse(None).check(None, "::1") is None
True
"""

from __future__ import annotations

import base64
import binascii
import hmac
import ipaddress

from weave_stream.errors import CollectorRequestError

__all__ = ["ApiKeys"]


class ApiKeys:
    """The API keys the collector accepts (none: loopback clients only)."""

    def __init__(self, keys: list[str]) -> None:
        self._keys = [key.encode() for key in keys]

    @classmethod
    def parse(cls, value: str | None) -> ApiKeys:
        """Keys from the ``collector_api_keys`` setting (comma-separated)."""
        return cls([key.strip() for key in (value or "").split(",") if key.strip()])

    def describe(self) -> str:
        """The start-up line that says who may send (never a key itself)."""
        if not self._keys:
            return (
                "no API keys configured (collector_api_keys): only loopback clients may send "
                "calls; set keys to accept others"
            )
        return f"{len(self._keys)} API key(s) configured: clients send one as WANDB_API_KEY"

    def check(self, authorization: str | None, remote: str | None) -> CollectorRequestError | None:
        """None if the request may pass, else the error to answer (401 or 403)."""
        if not self._keys:
            if _is_loopback(remote):
                return None
            return CollectorRequestError(
                403,
                f"the collector has no API keys configured and takes loopback clients only "
                f"(this request came from {remote}); set collector_api_keys",
            )
        offered = _offered_key(authorization)
        matched = False
        for key in self._keys:  # every key, always: the time taken says nothing
            matched |= hmac.compare_digest(key, offered)
        if matched:
            return None
        what = "no API key" if not authorization else "an API key the collector does not know"
        return CollectorRequestError(
            401,
            f"the request carries {what}: send one of collector_api_keys as HTTP Basic "
            "api:<key> (WANDB_API_KEY for the weave client) or as a bearer token",
        )


def _offered_key(authorization: str | None) -> bytes:
    scheme, _, credentials = (authorization or "").strip().partition(" ")
    credentials = credentials.strip()
    if scheme.lower() == "bearer":
        return credentials.encode()
    if scheme.lower() == "basic":
        try:
            decoded = base64.b64decode(credentials, validate=True)
        except (binascii.Error, ValueError):
            return b""
        _, _, password = decoded.partition(b":")
        return password
    return b""


def _is_loopback(remote: str | None) -> bool:
    if not remote:
        return False
    try:
        address = ipaddress.ip_address(remote.split("%")[0])
    except ValueError:
        return False
    mapped = getattr(address, "ipv4_mapped", None)  # ::ffff:127.0.0.1 on a dual-stack socket
    return bool((mapped or address).is_loopback)
