"""Time ranges of a query: ``since="24h"``, ``until="1d"``, or absolute from/to times.

A duration counts back from now: ``30s``, ``15m``, ``24h``, ``7d``, ``2w`` (and
combinations such as ``1h30m``). An absolute time is ISO-8601 (a naive one is UTC),
epoch seconds or a ``datetime``. A range covers ``[start, end)`` of the calls'
``started_at``.

>>> from datetime import UTC, datetime
>>> now = datetime(2026, 11, 26, 12, tzinfo=UTC)
>>> TimeRange.parse(since="24h", until="1h", now=now).describe()
'2026-11-25T12:00:00+00:00 .. 2026-11-26T11:00:00+00:00'
>>> TimeRange.parse(since="2026-11-26T03:00:00Z", now=now).days()
('2026-11-26', None)
>>> parse_duration("1h30m")
5400.0
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

from weave_stream.errors import QueryError
from weave_stream.ingest.call import parse_timestamp

__all__ = ["TimeRange", "parse_duration", "parse_moment"]

_UNITS = {"s": 1.0, "m": 60.0, "h": 3600.0, "d": 86400.0, "w": 7 * 86400.0}
_DURATION = re.compile(r"^(\d+(?:\.\d+)?[smhdw])+$")
_PART = re.compile(r"(\d+(?:\.\d+)?)([smhdw])")


def parse_duration(text: str) -> float:
    """Seconds in a duration such as ``24h``, ``7d`` or ``1h30m``; QueryError when it is not one."""
    cleaned = text.strip().lower()
    if not _DURATION.match(cleaned):
        raise QueryError(
            f"{text!r} is not a duration: write a number and a unit (s, m, h, d, w), "
            "e.g. 30m, 24h, 7d or 1h30m"
        )
    return sum(float(amount) * _UNITS[unit] for amount, unit in _PART.findall(cleaned))


def parse_moment(value: Any, now: datetime, where: str) -> datetime:
    """A moment: a duration before ``now``, an ISO-8601 time, epoch seconds or a datetime."""
    if isinstance(value, str) and _DURATION.match(value.strip().lower()):
        return now - timedelta(seconds=parse_duration(value))
    try:
        return parse_timestamp(value)
    except ValueError as exc:
        raise QueryError(
            f"{where}={value!r} is neither a duration before now (24h, 7d) nor a time "
            f"(ISO-8601 such as 2026-11-26T03:00:00Z, or epoch seconds): {exc}"
        ) from None


@dataclass(frozen=True)
class TimeRange:
    """``[start, end)`` on the calls' ``started_at``; an open side is None."""

    start: datetime | None = None
    end: datetime | None = None

    @classmethod
    def parse(
        cls, since: Any = None, until: Any = None, *, now: datetime | None = None
    ) -> TimeRange:
        """The range from ``since`` to ``until`` (each a duration before now, or a time)."""
        moment = now or datetime.now(UTC)
        start = None if since is None else parse_moment(since, moment, "since")
        end = None if until is None else parse_moment(until, moment, "until")
        if start is not None and end is not None and end <= start:
            raise QueryError(
                f"the time range is empty: since={since!r} ({start.isoformat()}) is not before "
                f"until={until!r} ({end.isoformat()}); since is the older end"
            )
        return cls(start, end)

    @property
    def bounded(self) -> bool:
        """Whether either side is set."""
        return self.start is not None or self.end is not None

    def days(self) -> tuple[str | None, str | None]:
        """The first and last ``date`` partitions the range can touch."""
        first = self.start.strftime("%Y-%m-%d") if self.start else None
        last = (self.end - timedelta(microseconds=1)).strftime("%Y-%m-%d") if self.end else None
        return first, last

    def describe(self) -> str:
        """``start .. end`` for messages."""
        left = self.start.isoformat() if self.start else "-inf"
        right = self.end.isoformat() if self.end else "now"
        return f"{left} .. {right}"
