"""A classify column's ``calibration: {first_n: N}``: calibrate on the source's first N calls.

The ``classify`` op adapts its label vectors to a fixed sample of unlabelled inputs
(``params.calibration``: a list of texts or a file; :mod:`weave_stream.ops.calibration`).
In a topology the sample may instead be named: ``{first_n: N}`` is the texts of the
first N calls of the topology's source *in call order* (``started_at``, then id: the
order of a monitor's ``reference: {first_n}``), read at the column's ``args.text``.
Only calls the column would classify count (the source's op name, filter and sample;
the column's own filter), and only those with a non-empty text there.

This module checks the spec when the topology is built: it gives a
:class:`CalibrationRequest` per such column, and the column's op is built
*uncalibrated* until the sample is resolved to texts (by
:mod:`weave_stream.topology.calibrate`), which gives the op a new ref (the sample's
digest is part of the op's version), so values computed before and after stay apart.

>>> first_n_of({"first_n": 200})
200
>>> first_n_of(["a text", "another"]) is None  # a literal sample: nothing to resolve
True
>>> first_n_of({"first_n": 3})
Traceback (most recent call last):
...
ValueError: first_n must be a whole number from 10 to 20000 (how many of the source's first \
calls to calibrate on; 200 in the bench), got 3
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import Any, Protocol

from weave_stream.topology.selection import FieldPath, Filter

__all__ = [
    "CALIBRATED_OPS",
    "MAX_FIRST_N",
    "MIN_FIRST_N",
    "CalibrationRequest",
    "calibration_requests",
    "column_first_n",
    "first_n_of",
    "request_problems",
]

# Fewer than 10 texts cannot say where a label's inputs lie (with 25 the op gained only
# 1-3 points); above 20,000 encoding the sample at the op's start takes minutes.
MIN_FIRST_N = 10
MAX_FIRST_N = 20_000
CALIBRATED_OPS = frozenset({"classify"})
"""Ops (by registry name) whose ``calibration`` param may be ``{first_n: N}``."""


@dataclass(frozen=True)
class CalibrationRequest:
    """Column ``column`` calibrates on the texts at ``text`` of the source's first ``n`` calls
    (those passing the column's ``filter``)."""

    column: str
    n: int
    text: FieldPath
    filter: Filter | None = None
    selection: str = ""  # digest of what picks the calls: source, column filter, text, N

    @property
    def key(self) -> str:
        """What a kept sample must match to be this request's: the text path and the
        digest of the selection (a changed source or filter takes a new sample)."""
        return f"{self.text.text}#{self.selection}"

    def describe(self) -> str:
        """How a person reads the request, e.g. in a status line."""
        return f"the {self.text.text} of the first {self.n} calls of the source"


def first_n_of(calibration: Any) -> int | None:
    """N of a ``{first_n: N}`` calibration; None for a literal sample (texts, a file).

    Raises ValueError saying what is wrong for any other mapping.
    """
    if not isinstance(calibration, Mapping):
        return None
    if set(calibration) != {"first_n"}:
        raise ValueError(
            f"a calibration mapping is {{first_n: N}} (the source's first N calls), got "
            f"{dict(calibration)!r}; or give a list of texts, or a file of one text a line"
        )
    n = calibration["first_n"]
    if isinstance(n, bool) or not isinstance(n, int) or not MIN_FIRST_N <= n <= MAX_FIRST_N:
        raise ValueError(
            f"first_n must be a whole number from {MIN_FIRST_N} to {MAX_FIRST_N} (how many of "
            f"the source's first calls to calibrate on; 200 in the bench), got {n!r}"
        )
    return n


def request_problems(args: Mapping[str, FieldPath], column_filter: Filter | None) -> list[str]:
    """Why a ``{first_n}`` calibration cannot be taken from calls for a column (or nothing).

    The sample is read from the calls alone, before any column is computed, so the
    text and the column's filter must be call fields.
    """
    problems = []
    text = args.get("text")
    if text is not None and text.column is not None:
        problems.append(
            f"args.text is {text.text!r}, another column's value; calibration {{first_n}} reads "
            "the calls' own fields (give the text's call path, e.g. inputs.question, or a list "
            "of texts as calibration)"
        )
    if column_filter is not None and any(p.column is not None for p in column_filter.paths):
        problems.append(
            "the column's filter reads other columns; calibration {first_n} selects calls by "
            "their own fields (filter on call fields, or give a list of texts as calibration)"
        )
    return problems


def column_first_n(op: object, params: object, where: str, problems: list[str]) -> int | None:
    """N of a column's ``calibration: {first_n: N}`` (``op`` named, ``params`` given), if any;
    what is wrong with it goes to ``problems``, prefixed by ``where``."""
    if not isinstance(op, str) or not isinstance(params, Mapping) or "calibration" not in params:
        return None  # params on a built op are reported by the topology
    try:
        first_n = first_n_of(params["calibration"])
    except ValueError as exc:
        problems.append(f"{where}: {exc}")
        return None
    if first_n is not None and op not in CALIBRATED_OPS:
        problems.append(
            f"{where}: {{first_n: N}} applies to the {', '.join(sorted(CALIBRATED_OPS))} op, "
            f"not {op!r:.60}"
        )
        return None
    method = params.get("method", "centroid")
    if first_n is not None and method != "centroid":
        problems.append(
            f"{where}: calibration adapts label vectors and needs method 'centroid', got "
            f"method {method!r:.40} (drop calibration, or use the centroid method)"
        )
        return None
    return first_n


class _Compiled(Protocol):
    @property
    def args(self) -> Mapping[str, FieldPath]: ...
    @property
    def filter(self) -> Filter | None: ...


def calibration_requests(
    columns: Iterable[tuple[str, object, object, object, _Compiled | None]],
    source: object,
) -> tuple[CalibrationRequest, ...]:
    """The valid requests among ``(name, op, params, filter as written, compiled column or
    None)`` of a topology reading ``source`` (the problems of the others were reported
    when the columns were compiled)."""
    requests = []
    for name, op, params, written_filter, compiled in columns:
        if compiled is None or "text" not in compiled.args:
            continue
        first_n = column_first_n(op, params, "", [])
        if first_n is not None:
            text = compiled.args["text"]
            chosen = {"source": source, "filter": written_filter, "text": text.text, "n": first_n}
            digest = hashlib.sha256(
                json.dumps(chosen, sort_keys=True, default=repr).encode()
            ).hexdigest()[:16]
            requests.append(CalibrationRequest(name, first_n, text, compiled.filter, digest))
    return tuple(requests)
