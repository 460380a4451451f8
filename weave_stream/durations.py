"""Durations, written one way everywhere: settings, aggregates, monitors, ops and the CLI.

A duration is a number of seconds (``300``, ``2.5``, ``"300"``) or text with units:
``ms``, ``s``, ``m``, ``h``, ``d``, ``w``, alone or combined (``"500ms"``, ``"90s"``,
``"10m"``, ``"1h30m"``, ``"7d"``). A ``timedelta`` is accepted too. Numbers keep
working wherever they did: a bare number is always seconds.

Windows of aggregates are whole seconds (:func:`whole_seconds`); everything else
takes fractions (:func:`parse_duration`). In a pydantic model, annotate a field
:data:`Duration` or :data:`WholeSeconds` and it accepts every form above.

>>> parse_duration("500ms"), parse_duration("10m"), parse_duration(2.5), parse_duration("7d")
(0.5, 600.0, 2.5, 604800.0)
>>> whole_seconds("1h30m")
5400
>>> parse_duration("ten minutes")
Traceback (most recent call last):
...
weave_stream.errors.DurationError: 'ten minutes' is not a duration; write seconds (300) or a \
number with a unit: 500ms, 90s, 10m, 2h, 7d, 1w (combined: 1h30m)
"""

from __future__ import annotations

import email.utils
import math
import re
import time
from collections.abc import Mapping
from datetime import timedelta
from typing import Annotated, Any

from pydantic import BeforeValidator

from weave_stream.errors import DurationError

__all__ = ["Duration", "WholeSeconds", "parse_duration", "parse_retry_after", "whole_seconds"]

_PART = re.compile(r"(\d+)(ms|w|d|h|m|s)")
_UNIT_SECONDS = {"w": 604800.0, "d": 86400.0, "h": 3600.0, "m": 60.0, "s": 1.0, "ms": 0.001}
_HOW = "write seconds (300) or a number with a unit: 500ms, 90s, 10m, 2h, 7d, 1w (combined: 1h30m)"


def parse_duration(value: Any) -> float:
    """Seconds from a duration in any accepted form (see the module docstring).

    Raises :class:`~weave_stream.errors.DurationError` (also a ``ValueError``, so a
    pydantic model reports it at the field) naming the value and how to write one.

    >>> parse_duration("1h30m"), parse_duration(timedelta(minutes=2)), parse_duration("45")
    (5400.0, 120.0, 45.0)
    """
    if isinstance(value, timedelta):
        value = value.total_seconds()
    if isinstance(value, bool):
        raise DurationError(f"a duration cannot be a boolean ({value!r}); {_HOW}")
    seconds: float | None = None
    if isinstance(value, int | float):
        seconds = float(value)
    elif isinstance(value, str):
        text = value.strip().lower().replace(" ", "")
        try:
            seconds = float(text)
        except ValueError:
            parts = _PART.findall(text)
            if parts and "".join(n + u for n, u in parts) == text:
                seconds = sum(int(n) * _UNIT_SECONDS[u] for n, u in parts)
    if seconds is None or not math.isfinite(seconds):
        raise DurationError(f"{value!r} is not a duration; {_HOW}")
    if seconds < 0:
        raise DurationError(f"duration {value!r} is negative; a duration is 0 or more")
    return seconds


def whole_seconds(value: Any) -> int:
    """Whole seconds from a duration; a fraction of a second is refused (windows, grace).

    >>> whole_seconds("2d"), whole_seconds(45)
    (172800, 45)
    >>> whole_seconds("1500ms")
    Traceback (most recent call last):
    ...
    weave_stream.errors.DurationError: duration '1500ms' is 1.5 s; windows count whole seconds \
(e.g. 2s, 5m)
    """
    seconds = parse_duration(value)
    if seconds != int(seconds):
        raise DurationError(
            f"duration {value!r} is {seconds:g} s; windows count whole seconds (e.g. 2s, 5m)"
        )
    return int(seconds)


Duration = Annotated[float, BeforeValidator(parse_duration)]
"""A pydantic field type: seconds, from any accepted form."""

WholeSeconds = Annotated[int, BeforeValidator(whole_seconds)]
"""A pydantic field type: whole seconds, from any accepted form."""


def parse_retry_after(headers: Mapping[str, str], now: float | None = None) -> float | None:
    """Seconds an HTTP server asked to wait: ``retry-after-ms``, else ``Retry-After``.

    ``Retry-After`` holds seconds or an HTTP date (counted from ``now``, default the
    current time); header names are matched case-insensitively. ``None`` when there
    is no such header or it cannot be read; never negative.

    >>> parse_retry_after({"Retry-After": "3"}), parse_retry_after({"retry-after": "soon"})
    (3.0, None)
    >>> parse_retry_after({"Retry-After": "Thu, 01 Jan 1970 00:01:00 GMT"}, now=30.0)
    30.0
    >>> parse_retry_after({"retry-after-ms": "250", "retry-after": "9"})
    0.25
    """
    lowered = {name.lower(): value for name, value in headers.items()}
    seconds: float | None = None
    if "retry-after-ms" in lowered:
        seconds = _number(lowered["retry-after-ms"])
        seconds = None if seconds is None else seconds / 1000
    if seconds is None and "retry-after" in lowered:
        text = lowered["retry-after"].strip()
        seconds = _number(text)
        if seconds is None:
            try:
                moment = email.utils.parsedate_to_datetime(text)
            except (TypeError, ValueError):
                return None
            seconds = moment.timestamp() - (time.time() if now is None else now)
    return None if seconds is None else max(seconds, 0.0)


def _number(text: str) -> float | None:
    try:
        number = float(text)
    except ValueError:
        return None
    return number if math.isfinite(number) else None
