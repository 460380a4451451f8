"""Non-standard JSON numbers: ``NaN``, ``Infinity`` and numbers too large for a double.

Python's ``json.dumps`` writes ``NaN``, ``Infinity`` and ``-Infinity`` by default (and
``1e400`` reads back as infinity), so real producers send them, although JSON has no
such numbers. weave-stream accepts such a record and turns each of those numbers into
``null``: dead-lettering a whole call for one score that came out NaN would hide the
call from every monitor, and ``null`` is what every JSON reader downstream can take.
The paths of the numbers replaced are kept in the call (see ``call.NON_FINITE_MARKER``)
and counted, so nothing is lost silently.

The fast path (orjson) is untouched: only a record that orjson refuses is decoded
again by the standard library, and only one in which such numbers were found is kept.

>>> data, paths = loads_lenient(b'{"output": {"score": NaN, "xs": [1, Infinity, 1e400]}}')
>>> data
{'output': {'score': None, 'xs': [1, None, None]}}
>>> paths
['output.score', 'output.xs[1]', 'output.xs[2]']
>>> loads_lenient(b'{"ok": 1.5}')
({'ok': 1.5}, [])
"""

from __future__ import annotations

import json
import math
from typing import Any

import orjson

__all__ = ["loads_lenient"]


class _NonFinite:
    """Stands for a number JSON cannot hold until the walk replaces it with None."""

    __slots__ = ()


_NON_FINITE = _NonFinite()


def _constant(name: str) -> _NonFinite:
    return _NON_FINITE  # NaN, Infinity, -Infinity


def _float(text: str) -> float | _NonFinite:
    value = float(text)
    return value if math.isfinite(value) else _NON_FINITE  # 1e400 and the like


def _int(text: str) -> int | float:
    value = int(text)
    # orjson reads integers beyond 64 bits as floats; do the same, so both paths agree.
    return value if -(2**63) <= value < 2**64 else float(text)


def loads_lenient(raw: bytes) -> tuple[Any, list[str]]:
    """Decode ``raw``; non-finite numbers become None, their paths are returned.

    Raises ``orjson.JSONDecodeError`` (orjson's own message) when ``raw`` is not JSON,
    or is not JSON for another reason than such numbers.
    """
    try:
        return orjson.loads(raw), []
    except orjson.JSONDecodeError as fast_error:
        try:
            data = json.loads(raw, parse_constant=_constant, parse_float=_float, parse_int=_int)
        except (ValueError, RecursionError):
            raise fast_error from None
        paths: list[str] = []
        data = _replace(data, "", paths)
        if not paths:
            raise  # orjson refused it for something else (e.g. a lone surrogate)
        try:
            orjson.dumps(data)  # what the standard library let through must still encode
        except orjson.JSONEncodeError:
            raise fast_error from None
        return data, paths


def _replace(value: Any, path: str, found: list[str]) -> Any:
    if value is _NON_FINITE:
        found.append(path)
        return None
    if isinstance(value, dict):
        for key, item in value.items():
            if isinstance(item, dict | list) or item is _NON_FINITE:
                value[key] = _replace(item, f"{path}.{key}" if path else str(key), found)
    elif isinstance(value, list):
        for index, item in enumerate(value):
            if isinstance(item, dict | list) or item is _NON_FINITE:
                value[index] = _replace(item, f"{path}[{index}]", found)
    return value
