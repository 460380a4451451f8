"""Trace-server request bodies → the records the collector puts on ``<prefix>.calls``.

Each call goes to the calls topic as the client sent it, keyed by call id, in the
shape that says what it is (see ``ingest.call``): an item of ``calls/complete`` bare
(a complete call), a ``call/start`` or ``call/end`` body as it came (``{"start": ...}``,
``{"end": ...}``), an upsert item's ``req`` (the same wrappers). Nothing is validated
here beyond the request's own shape: the ingest agent validates every call and
dead-letters what is not one, with its reason, so a bad call never costs the others
of its batch.

>>> records, answer = calls_complete({"batch": [{"id": "c1", "started_at": 1, "ended_at": 2}]})
>>> records, answer
([(b'c1', b'{"id":"c1","started_at":1,"ended_at":2}')], {})
>>> records, answer = upsert_batch({"batch": [{"mode": "end", "req": {"end": {"id": "c1"}}}]})
>>> records[0][1], answer
(b'{"end":{"id":"c1"}}', {'res': [{}]})
"""

from __future__ import annotations

import json
import os
import time
from typing import Any

import msgspec
import orjson

from weave_stream.errors import CollectorRequestError

__all__ = [
    "Record",
    "call_end",
    "call_start",
    "calls_complete",
    "complete_records",
    "decode_body",
    "new_id",
    "upsert_batch",
]

Record = tuple[bytes | None, bytes]
"""(key, value) of one record for the calls topic."""


def decode_body(raw: bytes, where: str) -> tuple[Any, bool]:
    """A request's JSON body, and whether it holds ``NaN``/``Infinity``/``1e400``.

    Python writes such numbers by default; they are kept as floats, and the records
    made from such a body carry them as the client wrote them, so that the ingest
    agent turns them into null, noted and counted (``ingest/numbers.py``), as it does
    for every producer. Raises :class:`CollectorRequestError` (400) when it is not JSON.
    """
    try:
        return orjson.loads(raw), False
    except orjson.JSONDecodeError as fast_error:
        try:
            return json.loads(raw), True  # the standard library reads NaN, Infinity and 1e400
        except (ValueError, RecursionError):
            raise CollectorRequestError(
                400, f"{where}: the body is not JSON ({fast_error})"
            ) from None


def _encode(value: Any, non_finite: bool) -> bytes:
    if non_finite:  # orjson would write them as null, silently
        return json.dumps(value, separators=(",", ":"), ensure_ascii=False).encode()
    return orjson.dumps(value)


def _key(call: Any) -> bytes | None:
    call_id = call.get("id") if isinstance(call, dict) else None
    return call_id.encode() if isinstance(call_id, str) else None


def _batch(body: Any, where: str) -> list[Any]:
    batch = body.get("batch") if isinstance(body, dict) else None
    if not isinstance(batch, list):
        raise CollectorRequestError(400, f'{where}: expected {{"batch": [...]}}')
    return batch


def calls_complete(body: Any, non_finite: bool = False) -> tuple[list[Record], dict[str, Any]]:
    """``POST /v2/{entity}/{project}/calls/complete``: ``{"batch": [complete calls]}``."""
    batch = _batch(body, "calls/complete")
    return [(_key(call), _encode(call, non_finite)) for call in batch], {}


class _Batch(msgspec.Struct):
    batch: list[msgspec.Raw]


class _Ided(msgspec.Struct):
    id: Any = None


_BATCH = msgspec.json.Decoder(_Batch)
_IDED = msgspec.json.Decoder(_Ided)


def complete_records(raw: bytes) -> list[Record] | None:
    """The items of a ``calls/complete`` body, each as the client wrote it, keyed by its id.

    The fast path: the batch is split without building its calls (msgspec's ``Raw``),
    and only each item's ``id`` is read, so each record is the client's own bytes.
    None when that reading fails (non-finite numbers, an item that is not an object,
    a body that is not a batch): :func:`calls_complete` then says or does the rest.

    >>> complete_records(b'{"batch": [{"id": "c1", "output": 1.50}]}')
    [(b'c1', b'{"id": "c1", "output": 1.50}')]
    """
    try:
        items = _BATCH.decode(raw).batch
        return [(_key({"id": _IDED.decode(item).id}), bytes(item)) for item in items]
    except (msgspec.DecodeError, msgspec.ValidationError):
        return None


def call_start(body: Any, non_finite: bool = False) -> tuple[list[Record], dict[str, Any]]:
    """``POST .../call/start``: ``{"start": {...}}``; an id or trace id left out is made here."""
    start = body.get("start") if isinstance(body, dict) else None
    if not isinstance(start, dict):
        raise CollectorRequestError(400, 'call/start: expected {"start": {...}}')
    start = {**start, "id": start.get("id") or new_id()}
    start["trace_id"] = start.get("trace_id") or new_id()
    answer = {"id": start["id"], "trace_id": start["trace_id"]}
    return [(_key(start), _encode({"start": start}, non_finite))], answer


def call_end(body: Any, non_finite: bool = False) -> tuple[list[Record], dict[str, Any]]:
    """``POST .../call/end``: ``{"end": {...}}``."""
    end = body.get("end") if isinstance(body, dict) else None
    if not isinstance(end, dict):
        raise CollectorRequestError(400, 'call/end: expected {"end": {...}}')
    return [(_key(end), _encode(body, non_finite))], {}


def upsert_batch(body: Any, non_finite: bool = False) -> tuple[list[Record], dict[str, Any]]:
    """``POST /call/upsert_batch``: ``{"batch": [{"mode": "start"|"end", "req": {...}}]}``."""
    records: list[Record] = []
    answers: list[dict[str, Any]] = []
    for index, item in enumerate(_batch(body, "call/upsert_batch")):
        mode = item.get("mode") if isinstance(item, dict) else None
        if mode not in ("start", "end"):
            raise CollectorRequestError(
                400, f'call/upsert_batch: item {index} has mode {mode!r}; expected "start" or "end"'
            )
        found, answer = (call_start if mode == "start" else call_end)(item.get("req"), non_finite)
        records += found
        answers.append(answer)
    return records, {"res": answers}


def new_id() -> str:
    """A UUIDv7 (time-ordered, as the weave client makes them) for what came without an id.

    >>> a, b = new_id(), new_id()
    >>> len(a), a[14], a < b or a[:13] == b[:13]
    (36, '7', True)
    """
    millis = time.time_ns() // 1_000_000
    raw = bytearray(millis.to_bytes(6, "big") + os.urandom(10))
    raw[6] = 0x70 | (raw[6] & 0x0F)
    raw[8] = 0x80 | (raw[8] & 0x3F)
    text = raw.hex()
    return f"{text[:8]}-{text[8:12]}-{text[12:16]}-{text[16:20]}-{text[20:]}"
