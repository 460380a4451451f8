"""A record that is not a valid call, as it goes to the dead-letter topic.

Its value is the raw record as it came (a tombstone's null kept as null); everything
else — reason, detail, source topic/partition/offset, time, notes such as the two
digests of a conflict — travels in ``weave-stream.*`` headers.

>>> letter = DeadLetter("conflict", "call 'c1' ...", b"{}", b"c1", "w.calls", 0, 7, 1.5,
...                     notes=(("kept-digest", "ab12"),))
>>> DeadLetter.from_record(letter.raw, letter.key, letter.headers()) == letter
True
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

__all__ = ["DLQ_HEADER_PREFIX", "DeadLetter"]

DLQ_HEADER_PREFIX = "weave-stream."


@dataclass(frozen=True)
class DeadLetter:
    """A record that is not a valid call, with where it came from and why it was refused.

    ``raw`` is the record's value as it came (None for a tombstone); ``notes`` are
    further headers, e.g. the digests of the two versions of a conflict.
    """

    reason: str
    detail: str
    raw: bytes | None
    key: bytes | None = None
    source_topic: str | None = None
    source_partition: int | None = None
    source_offset: int | None = None
    dead_lettered_at: float = 0.0
    notes: tuple[tuple[str, str], ...] = ()

    def headers(self) -> list[tuple[str, bytes]]:
        """Kafka record headers carrying everything but the raw bytes (the record's value)."""
        fields = {
            "reason": self.reason,
            "detail": self.detail,
            "source.topic": self.source_topic,
            "source.partition": self.source_partition,
            "source.offset": self.source_offset,
            "dead-lettered-at": self.dead_lettered_at,
            **dict(self.notes),
        }
        return [
            (DLQ_HEADER_PREFIX + name, str(value).encode())
            for name, value in fields.items()
            if value is not None
        ]

    @classmethod
    def from_record(cls, value: bytes | None, key: bytes | None, headers: Any) -> DeadLetter:
        """Rebuild a dead letter from a record of the dead-letter topic."""
        found = {
            name.removeprefix(DLQ_HEADER_PREFIX): raw.decode(errors="replace")
            for name, raw in (headers or ())
            if name.startswith(DLQ_HEADER_PREFIX)
        }

        def as_int(name: str) -> int | None:
            return int(found.pop(name)) if name in found else None

        return cls(
            reason=found.pop("reason", "unknown"),
            detail=found.pop("detail", ""),
            raw=value,
            key=key,
            source_topic=found.pop("source.topic", None),
            source_partition=as_int("source.partition"),
            source_offset=as_int("source.offset"),
            dead_lettered_at=float(found.pop("dead-lettered-at", 0.0)),
            notes=tuple(found.items()),
        )
