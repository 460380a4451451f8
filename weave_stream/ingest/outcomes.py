"""Decode and validate raw records into calls; dead letters; the start/end merge buffer.

Every raw record gets exactly one outcome:

``valid``        a complete call, forwarded as is;
``pending``      a start or end event, held until its other half arrives;
``merged``       the half that completed a call: the merged call is forwarded;
``duplicate``    a repeat of a half already held or already merged (redelivery);
``dead_letter``  not a valid call: the raw bytes go to the dead-letter topic with
                 the reason, detail and source topic/partition/offset in headers.

A held half whose partner does not arrive within the merge timeout is forwarded on
its own, as an incomplete call (``Call.kind`` is ``start`` or ``end``).

This module is plain Python: the streaming runner and the local runner both use it.

>>> pending: dict = {}
>>> ingest_record(b'{"id": "c1", "started_at": 1795662000}', pending, now=0.0).outcome
'pending'
>>> result = ingest_record(b'{"id": "c1", "ended_at": 1795662001}', pending, now=1.0)
>>> result.outcome, result.call.kind
('merged', 'complete')
>>> ingest_record(b'not json', pending, now=2.0).dead_letter.reason
'invalid_json'
"""

from __future__ import annotations

import time
from collections.abc import Iterator, MutableMapping
from dataclasses import dataclass
from typing import Any, Literal

from weave_stream.errors import CallValidationError
from weave_stream.ingest.call import Call, merge, parse_call

__all__ = [
    "DLQ_HEADER_PREFIX",
    "DeadLetter",
    "IngestResult",
    "Outcome",
    "expire_pending",
    "ingest_record",
]

Outcome = Literal["valid", "pending", "merged", "duplicate", "dead_letter"]
DLQ_HEADER_PREFIX = "weave-stream."


@dataclass(frozen=True)
class DeadLetter:
    """A record that is not a valid call, with where it came from and why it was refused."""

    reason: str
    detail: str
    raw: bytes
    key: bytes | None = None
    source_topic: str | None = None
    source_partition: int | None = None
    source_offset: int | None = None
    dead_lettered_at: float = 0.0

    def headers(self) -> list[tuple[str, bytes]]:
        """Kafka record headers carrying everything but the raw bytes (the record's value)."""
        fields = {
            "reason": self.reason,
            "detail": self.detail,
            "source.topic": self.source_topic,
            "source.partition": self.source_partition,
            "source.offset": self.source_offset,
            "dead-lettered-at": self.dead_lettered_at,
        }
        return [
            (DLQ_HEADER_PREFIX + name, str(value).encode())
            for name, value in fields.items()
            if value is not None
        ]

    @classmethod
    def from_record(cls, value: bytes, key: bytes | None, headers: Any) -> DeadLetter:
        """Rebuild a dead letter from a record of the dead-letter topic."""
        found = {
            name.removeprefix(DLQ_HEADER_PREFIX): raw.decode(errors="replace")
            for name, raw in (headers or ())
            if name.startswith(DLQ_HEADER_PREFIX)
        }

        def as_int(name: str) -> int | None:
            return int(found[name]) if name in found else None

        return cls(
            reason=found.get("reason", "unknown"),
            detail=found.get("detail", ""),
            raw=value,
            key=key,
            source_topic=found.get("source.topic"),
            source_partition=as_int("source.partition"),
            source_offset=as_int("source.offset"),
            dead_lettered_at=float(found.get("dead-lettered-at", 0.0)),
        )


@dataclass(frozen=True)
class IngestResult:
    """The outcome of one raw record; ``call`` is set when a call is to be forwarded."""

    outcome: Outcome
    call: Call | None = None
    dead_letter: DeadLetter | None = None


def ingest_record(
    raw: bytes,
    pending: MutableMapping[str, Any],
    now: float | None = None,
    max_payload_bytes: int | None = None,
    key: bytes | None = None,
    source: tuple[str, int, int] | None = None,
) -> IngestResult:
    """Validate one raw record and run it through the merge buffer ``pending``.

    ``pending`` maps call id to a held half (or a marker of a merged call); the
    streaming runner passes a changelog-backed table, the local runner a dict.
    ``source`` is (topic, partition, offset), recorded on dead letters.
    """
    now = time.time() if now is None else now
    try:
        call = parse_call(raw, max_payload_bytes)
    except CallValidationError as err:
        topic, partition, offset = source if source else (None, None, None)
        letter = DeadLetter(err.reason, err.detail, raw, key, topic, partition, offset, now)
        return IngestResult("dead_letter", dead_letter=letter)
    return accept_call(call, pending, now)


def accept_call(call: Call, pending: MutableMapping[str, Any], now: float) -> IngestResult:
    """Run a validated call through the merge buffer (see :func:`ingest_record`)."""
    kind = call.kind
    if kind == "complete":
        return IngestResult("valid", call=call)
    held = pending.get(call.id)
    if held is None:
        pending[call.id] = {"half": kind, "call": call.to_dict(), "seen": now}
        return IngestResult("pending")
    if held.get("done") or held["half"] == kind:
        return IngestResult("duplicate")
    other = Call.model_validate(held["call"])
    merged = merge(call, other) if kind == "start" else merge(other, call)
    # Keep a marker for a while so that a redelivered half is not held again.
    pending[call.id] = {"done": True, "seen": now}
    return IngestResult("merged", call=merged)


def expire_pending(pending: MutableMapping[str, Any], now: float, timeout: float) -> Iterator[Call]:
    """Remove halves held longer than ``timeout`` seconds and yield them as incomplete calls.

    Markers of merged calls older than ``timeout`` are dropped silently: they only
    guard against redelivery.
    """
    expired = [key for key, held in pending.items() if now - held["seen"] > timeout]
    for key in expired:
        held = pending.pop(key)
        if not held.get("done"):
            yield Call.model_validate(held["call"])
