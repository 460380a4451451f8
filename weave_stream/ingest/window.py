"""The dedupe window: which call ids were forwarded lately, and a digest of what was sent.

Ingest forwards each call id once. To tell a redelivered call (the same content:
``duplicate``) from a second, different call under the same id (``conflict``), it
remembers, per source partition, the ids it forwarded and a 16-byte digest of each
call's canonical JSON (for a merged call, also the digests of its two halves).

Memory is bounded: a window holds at most ``capacity`` ids, in two generations; when
the newer one fills up to half the capacity the older one is dropped whole (O(1),
no per-entry bookkeeping). An id older than the window is forgotten: a redelivery of
it would be forwarded again, as at-least-once delivery allows. At ~150 bytes an entry
the default capacity (100 000 per partition) is ~15 MB per partition.

>>> window = ForwardedWindow(capacity=4)
>>> window.add("a", digest(b"1")); window.add("b", digest(b"2"))
>>> window.get("a") == (digest(b"1"),)
True
>>> window.add("c", digest(b"3")); window.add("d", digest(b"4")); window.add("e", digest(b"5"))
>>> window.get("a") is None, window.get("c") is not None, len(window) <= 4
(True, True, True)
"""

from __future__ import annotations

from hashlib import blake2b

__all__ = ["ForwardedWindow", "digest"]

Digests = tuple[bytes, ...]
"""The forwarded call's digest, then (for a merged call) its start's and its end's."""


def digest(data: bytes) -> bytes:
    """16 bytes of BLAKE2b: the identity of a call's canonical JSON."""
    return blake2b(data, digest_size=16).digest()


class ForwardedWindow:
    """The last ``capacity`` call ids forwarded from one partition, with their digests."""

    __slots__ = ("_capacity", "_newer", "_older")

    def __init__(self, capacity: int) -> None:
        self._capacity = max(2, capacity)
        self._newer: dict[str, Digests] = {}
        self._older: dict[str, Digests] = {}

    def get(self, call_id: str) -> Digests | None:
        """The digests recorded for ``call_id``, or None if it is not in the window."""
        found = self._newer.get(call_id)
        return found if found is not None else self._older.get(call_id)

    def add(self, call_id: str, *digests: bytes) -> None:
        """Record that ``call_id`` was forwarded, with its digests."""
        if len(self._newer) >= self._capacity // 2:
            self._older, self._newer = self._newer, {}
        self._newer[call_id] = digests

    def __len__(self) -> int:
        return len(self._newer) + len(self._older)
