"""Decode and validate raw records into calls; dead letters; the merge buffer; dedupe.

Every raw record gets exactly one outcome:

``valid``        a complete call, forwarded;
``pending``      a start or end event, held until its other half arrives;
``merged``       the half that completed a call: the merged call is forwarded;
``duplicate``    a redelivery: a half already held or merged, or a call already
                 forwarded with the same content;
``conflict``     a second, *different* call under an id already forwarded (or a half
                 that disagrees with the call forwarded under its id): never forwarded,
                 dead-lettered (reason ``conflict``) with both versions' digests;
``dead_letter``  not a valid call: the raw bytes (a tombstone's null kept as null) go
                 to the dead-letter topic with the reason, detail and source
                 topic/partition/offset in headers.

A held half whose partner does not arrive within the merge timeout is forwarded on
its own, as an incomplete call (``Call.kind`` is ``start`` or ``end``, and its
``attributes.weave_stream.half`` says which). Merged halves pass every check a
complete call passes; fields on which they disagree are conflicts, kept in the call
(``attributes.weave_stream.merge_conflicts``) and counted.

Duplicates and conflicts of forwarded calls are found through a ``ForwardedWindow``
(bounded: the last N ids per partition, see ``ingest.window``).

This module is plain Python: the streaming runner and the local runner both use it.

>>> pending: dict = {}
>>> ingest_record(b'{"start": {"id": "c1", "started_at": 1795662000}}', pending, now=0.0).outcome
'pending'
>>> result = ingest_record(b'{"end": {"id": "c1", "ended_at": 1795662001}}', pending, now=1.0)
>>> result.outcome, result.call.kind
('merged', 'complete')
>>> window = ForwardedWindow(1000)
>>> call = b'{"id": "c2", "started_at": 1795662000, "ended_at": 1795662001, "output": 1}'
>>> [ingest_record(call, pending, window=window).outcome for _ in range(2)]
['valid', 'duplicate']
>>> other = call.replace(b'"output": 1', b'"output": 2')
>>> ingest_record(other, pending, window=window).dead_letter.reason
'conflict'
>>> ingest_record(b'not json', pending, now=2.0).dead_letter.reason
'invalid_json'
"""

from __future__ import annotations

import time
from collections.abc import Iterator, Mapping, MutableMapping
from dataclasses import dataclass, replace
from typing import Any, Literal

import orjson

from weave_stream.errors import CallValidationError
from weave_stream.ingest.call import (
    MARKER,
    Call,
    build_call,
    canonical_json,
    decode_record,
    mark,
)
from weave_stream.ingest.dead_letter import DLQ_HEADER_PREFIX, DeadLetter
from weave_stream.ingest.merge import FieldConflict, merged_fields
from weave_stream.ingest.window import ForwardedWindow, digest

__all__ = [
    "DLQ_HEADER_PREFIX",
    "DeadLetter",
    "ForwardedWindow",
    "IngestResult",
    "Outcome",
    "expire_held",
    "expire_pending",
    "ingest_record",
]

Outcome = Literal["valid", "pending", "merged", "duplicate", "conflict", "dead_letter"]
Source = tuple[str, int, int]


@dataclass(frozen=True)
class IngestResult:
    """The outcome of one raw record.

    ``call`` and ``payload`` (its canonical JSON) are set when a call is to be
    forwarded; ``dead_letter`` when the record goes to the dead-letter topic;
    ``conflicts`` lists fields on which merged halves disagreed; ``non_finite`` counts
    numbers replaced by null.
    """

    outcome: Outcome
    call: Call | None = None
    payload: bytes | None = None
    dead_letter: DeadLetter | None = None
    conflicts: tuple[FieldConflict, ...] = ()
    non_finite: int = 0


def ingest_record(
    raw: bytes | None,
    pending: MutableMapping[str, Any],
    now: float | None = None,
    max_payload_bytes: int | None = None,
    key: bytes | None = None,
    source: Source | None = None,
    window: ForwardedWindow | None = None,
) -> IngestResult:
    """Validate one raw record and run it through the merge buffer and the dedupe window.

    ``pending`` maps call id to a held half (or a marker of a merged call); the
    streaming runner passes a changelog-backed table, the local runner a dict.
    ``source`` is (topic, partition, offset), recorded on dead letters. ``window``
    remembers the calls forwarded from this record's partition (None: no dedupe of
    complete calls).
    """
    now = time.time() if now is None else now
    try:
        call, fields = decode_record(raw, max_payload_bytes)
    except CallValidationError as err:
        return IngestResult("dead_letter", dead_letter=_letter(err, raw, key, source, now))
    result = accept_call(call, fields, pending, now, window, key=key, source=source)
    noted = call.attributes.get(MARKER) if call.attributes else None
    if isinstance(noted, dict) and noted.get("non_finite_numbers"):
        return _with(result, non_finite=len(noted["non_finite_numbers"]))
    return result


def accept_call(
    call: Call,
    fields: dict[str, Any],
    pending: MutableMapping[str, Any],
    now: float,
    window: ForwardedWindow | None = None,
    key: bytes | None = None,
    source: Source | None = None,
) -> IngestResult:
    """Run a validated call (and its fields) through the merge buffer and the window."""
    kind = call.kind
    payload = canonical_json(call, fields)
    if kind == "complete":
        return _forward_once(call, payload, (digest(payload),), window, "valid", key, source, now)
    half = digest(payload)
    held = pending.get(call.id)
    known: bytes | None = None  # the digest of a different version of this half, if any
    if held is None:
        prior = window.get(call.id) if window is not None else None
        if prior is None:
            pending[call.id] = {
                "half": kind,
                "call": fields,
                "seen": now,
                "digest": half.hex(),
                "partition": source[1] if source else None,
            }
            return IngestResult("pending")
        if half in prior[1:]:
            return IngestResult("duplicate")
        known = prior[0]
    elif held.get("done"):
        # (A marker written before digests were kept has none: a duplicate, as then.)
        digests = held.get("digests") or (half.hex(), half.hex())
        if half.hex() in digests:
            return IngestResult("duplicate")
        known = bytes.fromhex(digests[0 if kind == "start" else 1])
    elif held["half"] == kind:
        if held.get("digest", half.hex()) == half.hex():
            return IngestResult("duplicate")
        known = bytes.fromhex(held["digest"])
    if known is not None:
        return _conflict(call.id, known, half, payload, key, source, now)
    assert held is not None  # a held other half: every other case returned above
    return _complete(call, half, held, pending, now, window, key, source)


def _complete(
    call: Call,
    half: bytes,
    held: dict[str, Any],
    pending: MutableMapping[str, Any],
    now: float,
    window: ForwardedWindow | None,
    key: bytes | None,
    source: Source | None,
) -> IngestResult:
    """Merge ``call`` with its held other half; the merged call passes a complete call's checks."""
    other = Call.model_validate(held["call"])
    start, end = (call, other) if call.kind == "start" else (other, call)
    held_digest = held.get("digest") or digest(canonical_json(other, held["call"])).hex()
    pair = [half.hex(), held_digest] if call.kind == "start" else [held_digest, half.hex()]
    # Keep a marker for a while so that a redelivered half is not held again.
    pending[call.id] = {"done": True, "seen": now, "digests": pair}
    fields, conflicts = merged_fields(start, end)
    try:
        merged = build_call(fields, "complete")
    except CallValidationError as err:
        detail = f"the merged start and end events of call {call.id!r}: {err.detail}"
        failed = CallValidationError(err.reason, detail)
        letter = _letter(failed, orjson.dumps(fields), key, source, now)
        return IngestResult("dead_letter", dead_letter=letter, conflicts=conflicts)
    payload = canonical_json(merged, fields)
    identity = (digest(payload), *(bytes.fromhex(d) for d in pair))
    result = _forward_once(merged, payload, identity, window, "merged", key, source, now)
    return _with(result, conflicts=conflicts)


def _forward_once(
    call: Call,
    payload: bytes,
    identity: tuple[bytes, ...],
    window: ForwardedWindow | None,
    outcome: Outcome,
    key: bytes | None,
    source: Source | None,
    now: float,
) -> IngestResult:
    """Forward ``call`` unless its id was forwarded already (a duplicate, or a conflict)."""
    if window is not None:
        prior = window.get(call.id)
        if prior is not None:
            if prior[0] == identity[0]:
                return IngestResult("duplicate")
            return _conflict(call.id, prior[0], identity[0], payload, key, source, now)
        window.add(call.id, *identity)
    return IngestResult(outcome, call=call, payload=payload)


def _conflict(
    call_id: str,
    kept: bytes,
    refused: bytes,
    version: bytes,
    key: bytes | None,
    source: Source | None,
    now: float,
) -> IngestResult:
    detail = (
        f"call {call_id!r} was already forwarded with different content (digest "
        f"{kept.hex()}); this version (digest {refused.hex()}) is not forwarded: a call id "
        "names one call (look for a producer that reuses ids)"
    )
    topic, partition, offset = source if source else (None, None, None)
    letter = DeadLetter(
        "conflict",
        detail,
        version,
        key,
        topic,
        partition,
        offset,
        now,
        notes=(("kept-digest", kept.hex()), ("digest", refused.hex())),
    )
    return IngestResult("conflict", dead_letter=letter)


def _letter(
    err: CallValidationError,
    raw: bytes | None,
    key: bytes | None,
    source: Source | None,
    now: float,
) -> DeadLetter:
    topic, partition, offset = source if source else (None, None, None)
    return DeadLetter(err.reason, err.detail, raw, key, topic, partition, offset, now)


def _with(result: IngestResult, **changes: Any) -> IngestResult:
    return replace(result, **changes) if any(changes.values()) else result


def expire_held(
    pending: MutableMapping[str, Any],
    now: float,
    timeout: float,
    windows: Mapping[int | None, ForwardedWindow] | None = None,
) -> Iterator[IngestResult]:
    """Remove halves held longer than ``timeout`` seconds: each is forwarded alone.

    Its ``attributes.weave_stream.half`` says which half it is. A half whose id was
    forwarded meanwhile (``windows``, by the half's source partition) is a duplicate
    or a conflict instead. Markers of merged calls older than ``timeout`` are dropped
    silently: they only guard against redelivery.
    """
    expired = [key for key, held in pending.items() if now - held["seen"] > timeout]
    for key in expired:
        held = pending.pop(key)
        if held.get("done"):
            continue
        fields = mark(held["call"], half=held["half"])
        call = build_call(fields, held["half"])
        payload = canonical_json(call, fields)
        window = windows.get(held.get("partition")) if windows is not None else None
        source = None
        yield _forward_once(call, payload, (digest(payload),), window, "valid", None, source, now)


def expire_pending(pending: MutableMapping[str, Any], now: float, timeout: float) -> Iterator[Call]:
    """The calls of :func:`expire_held`, with no dedupe window (for files read whole)."""
    for result in expire_held(pending, now, timeout):
        if result.call is not None:
            yield result.call
