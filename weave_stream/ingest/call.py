"""The call record, in W&B Weave's own shapes, and how a raw record becomes one.

A record on the calls topic is one of

* a start event: ``{"start": {...}}`` (what the client sends to ``call/start``, and
  an upsert item ``{"mode": "start", "req": {"start": {...}}}`` once unwrapped);
* an end event: ``{"end": {...}}`` (``call/end``; the real client puts ``started_at``
  in it too), or a bare record with ``ended_at`` and no ``started_at`` (what Weave puts
  on its ``weave.call_ended`` topic);
* a complete call: a bare record with both timestamps (``calls/complete`` items).

The wrapper, when there is one, says what a record is; only a bare record is told by
its timestamps. :func:`parse_call` validates a record into a :class:`Call`;
``ingest.merge`` joins a start and an end of one ``id`` into a complete call.

>>> start = parse_call(b'{"start": {"id": "c1", "op_name": "extract",'
...                    b' "started_at": "2026-11-26T03:00:00Z", "inputs": {"doc": "Invoice"}}}')
>>> end = parse_call(b'{"end": {"id": "c1", "started_at": "2026-11-26T03:00:00Z",'
...                  b' "ended_at": 1795662001.5, "output": "7", "summary": {}}}')
>>> start.kind, end.kind
('start', 'end')
>>> parse_call(b'{"id": "c2", "started_at": 1795662000, "ended_at": 1795662001}').kind
'complete'
"""

from __future__ import annotations

import re
from datetime import UTC, datetime
from typing import Annotated, Any, Literal

import orjson
from pydantic import BaseModel, BeforeValidator, ConfigDict, Field, ValidationError

from weave_stream.errors import (
    CallValidationError,
    TimestampError,
    field_errors,
    shown,
)
from weave_stream.ingest.numbers import loads_lenient

__all__ = [
    "MARKER",
    "Call",
    "CallKind",
    "Usage",
    "call_from_json",
    "call_order",
    "canonical_json",
    "decode_object",
    "decode_record",
    "mark",
    "parse_call",
    "parse_call_object",
]

CallKind = Literal["complete", "start", "end"]

ID_PATTERN = r"^[A-Za-z0-9][A-Za-z0-9_.:\-]{0,127}$"
_ID = re.compile(ID_PATTERN)
# Calls from before 2000 or after 2200 are mistakes: usually epoch milliseconds.
_EARLIEST = datetime(2000, 1, 1, tzinfo=UTC)
_LATEST = datetime(2200, 1, 1, tzinfo=UTC)
_TIMESTAMP_FIELDS = frozenset({"started_at", "ended_at", "deleted_at"})
_NEEDED = {"start": ("started_at",), "end": ("ended_at",), "complete": ("started_at", "ended_at")}
MARKER = "weave_stream"
"""The key under a call's ``attributes`` where weave-stream notes what it did to the call:
``half`` (an incomplete call: the one half that came), ``non_finite_numbers`` (paths
of numbers replaced by null) and ``merge_conflicts`` (fields on which the halves
disagreed: the kept and the dropped value)."""


def parse_timestamp(value: Any) -> datetime:
    """An ISO-8601 string or epoch seconds as an aware UTC datetime (naive means UTC).

    >>> parse_timestamp("2026-11-26T03:15:32.123456Z").isoformat()
    '2026-11-26T03:15:32.123456+00:00'
    >>> parse_timestamp(1795662000).isoformat()
    '2026-11-26T03:00:00+00:00'
    """
    if isinstance(value, datetime):
        parsed = value
    elif isinstance(value, bool):
        raise TimestampError(f"a timestamp cannot be a boolean ({value!r})")
    elif isinstance(value, int | float):
        try:
            parsed = datetime.fromtimestamp(value, tz=UTC)
        except (OverflowError, OSError, ValueError):
            raise TimestampError(
                f"epoch value {value!r} is out of range; timestamps are epoch seconds, "
                "not milliseconds"
            ) from None
    elif isinstance(value, str):
        try:
            parsed = datetime.fromisoformat(value)
        except ValueError:
            raise TimestampError(
                f"{value!r} is not an ISO-8601 datetime (e.g. 2026-11-26T03:15:32.123Z)"
            ) from None
    else:
        raise TimestampError(f"expected an ISO-8601 string or epoch seconds, got {value!r}")
    if parsed.tzinfo is None:
        parsed = parsed.replace(tzinfo=UTC)  # Weave writes UTC; a naive time is taken as UTC.
    else:
        parsed = parsed.astimezone(UTC)
    if not _EARLIEST <= parsed < _LATEST:
        hint = " (epoch milliseconds? send seconds)" if isinstance(value, int | float) else ""
        raise TimestampError(f"{value!r} is outside 2000..2200{hint}")
    return parsed


Timestamp = Annotated[datetime, BeforeValidator(parse_timestamp)]


class Usage(BaseModel):
    """Token usage of one model in a call's ``summary.usage``."""

    model_config = ConfigDict(extra="allow", frozen=True)

    prompt_tokens: int | None = None
    input_tokens: int | None = None
    completion_tokens: int | None = None
    output_tokens: int | None = None
    requests: int | None = None
    total_tokens: int | None = None


class Summary(BaseModel):
    """A call's ``summary``: usage per model, status counts, and anything else Weave adds."""

    model_config = ConfigDict(extra="allow", frozen=True)

    usage: dict[str, Usage] | None = None
    status_counts: dict[str, int] | None = None


class Call(BaseModel):
    """One production call in Weave's shape; a start or end event leaves the other half unset.

    Unknown top-level fields are kept, so nothing a producer sent is lost.
    """

    model_config = ConfigDict(extra="allow", frozen=True, ser_json_timedelta="float")

    id: str = Field(pattern=ID_PATTERN)
    project_id: str | None = None
    op_name: str | None = None
    display_name: str | None = None
    trace_id: str | None = None
    parent_id: str | None = None
    thread_id: str | None = None
    turn_id: str | None = None
    started_at: Timestamp | None = None
    ended_at: Timestamp | None = None
    attributes: dict[str, Any] | None = None
    inputs: dict[str, Any] | None = None
    exception: str | None = None
    output: Any = None
    summary: Summary | None = None
    otel_dump: dict[str, Any] | None = None
    wb_user_id: str | None = None
    wb_run_id: str | None = None
    wb_run_step: int | None = None
    wb_run_step_end: int | None = None
    deleted_at: Timestamp | None = None
    storage_size_bytes: int | None = None
    total_storage_size_bytes: int | None = None
    is_eval: bool | None = None  # on the real client's end events

    def __init__(self, /, **fields: Any) -> None:
        """Build a call; a bad field is a :class:`CallValidationError` (as for a record)."""
        try:
            super().__init__(**fields)
        except ValidationError as exc:
            raise _validation_error(exc) from None

    # Marked as pydantic's own __init__, so that validating records skips it (speed).
    __init__.__pydantic_base_init__ = True  # type: ignore[attr-defined]

    @property
    def kind(self) -> CallKind:
        """``complete``, ``start`` (no end yet) or ``end`` (its start never seen).

        A record says so by its timestamps, unless it has both and is a half: then the
        ``half`` marker in its attributes says which (set from the record's wrapper).
        """
        if self.started_at is not None and self.ended_at is not None:
            if self.attributes is not None:
                noted = self.attributes.get(MARKER)
                if isinstance(noted, dict) and noted.get("half") in ("start", "end"):
                    return noted["half"]
            return "complete"
        return "start" if self.started_at is not None else "end"

    def to_json(self) -> bytes:
        """Canonical JSON of the call (what the valid-calls topic carries)."""
        return self.model_dump_json(exclude_none=True).encode()

    def to_dict(self) -> dict[str, Any]:
        """The call as plain JSON-compatible data (timestamps as ISO strings)."""
        return self.model_dump(mode="json", exclude_none=True)


def call_order(call: Call) -> tuple[bool, datetime, str]:
    """The sort key of call order: event time (``started_at``, else ``ended_at``), then id.

    The order of a monitor's ``reference: {first_n}``, a backfill and a classify column's
    ``calibration: {first_n}``; a call with no time at all comes last.

    >>> late, early = Call(id="b", started_at=1795662001), Call(id="a", started_at=1795662000)
    >>> [call.id for call in sorted([late, early], key=call_order)]
    ['a', 'b']
    """
    moment = call.started_at or call.ended_at
    return moment is None, moment or _EARLIEST, call.id


def parse_call(raw: bytes | None, max_payload_bytes: int | None = None) -> Call:
    """Decode and validate one record; raise :class:`CallValidationError` with a reason code.

    Reason codes: ``tombstone`` (a null value), ``too_large``, ``invalid_json``,
    ``not_an_object``, ``missing_id``, ``malformed_id``, ``bad_timestamp``,
    ``wrong_type``, ``unknown_shape``. ``NaN``, ``Infinity`` and numbers out of a
    double's range become null, noted in ``attributes.weave_stream.non_finite_numbers``.
    """
    return decode_record(raw, max_payload_bytes)[0]


def decode_record(
    raw: bytes | None, max_payload_bytes: int | None = None
) -> tuple[Call, dict[str, Any]]:
    """:func:`parse_call`, with the call's fields as decoded (unwrapped, notes added)."""
    if raw is None:
        raise CallValidationError(
            "tombstone",
            "record has a null value (a tombstone); calls are never deleted through the "
            "calls topic: produce the call itself",
        )
    if max_payload_bytes is not None and len(raw) > max_payload_bytes:
        raise CallValidationError(
            "too_large",
            f"record is {len(raw)} bytes, over the {max_payload_bytes}-byte limit "
            "(raise max_payload_bytes, or trim inputs/outputs before producing)",
        )
    try:
        data, non_finite = loads_lenient(raw)
    except orjson.JSONDecodeError as exc:
        raise CallValidationError("invalid_json", f"record is not valid JSON: {exc}") from None
    return decode_object(data, non_finite)


def parse_call_object(data: Any) -> Call:
    """Validate an already-decoded record (see :func:`parse_call`)."""
    return decode_object(data)[0]


def decode_object(data: Any, non_finite: list[str] | None = None) -> tuple[Call, dict[str, Any]]:
    """Validate a decoded record: the call, and its fields (unwrapped, notes added).

    ``non_finite``: paths (from the record's root) of numbers decoding replaced by null.
    """
    if not isinstance(data, dict):
        raise CallValidationError(
            "not_an_object", f"record is a JSON {_json_type(data)}, not an object"
        )
    expected: CallKind | None = None
    if len(data) == 1 and ("start" in data or "end" in data):
        # Weave's call_start / call_end request bodies wrap the event: the wrapper says
        # what it is, whatever timestamps it carries (the client's end has started_at).
        expected = "start" if "start" in data else "end"
        data = data[expected]
        if not isinstance(data, dict):
            raise CallValidationError(
                "not_an_object", f"'{expected}' holds a JSON {_json_type(data)}, not an object"
            )
        if non_finite:
            non_finite = [path.removeprefix(expected).lstrip(".") for path in non_finite]
    if non_finite:
        data = mark(data, non_finite_numbers=non_finite)
    if expected is not None and data.get("started_at") is not None and data.get("ended_at"):
        data = mark(data, half=expected)  # its timestamps alone would say "complete"
    return build_call(data, expected), data


def build_call(data: dict[str, Any], expected: CallKind | None = None) -> Call:
    """Validate one call's fields; ``expected`` is what its wrapper (or a merge) says it is.

    A complete call, or a half carrying both timestamps, must not end before it starts.
    """
    _check_id(data)
    try:
        call = Call.model_validate(data)
    except ValidationError as exc:
        raise _validation_error(exc) from None
    if call.started_at is None and call.ended_at is None:
        raise CallValidationError(
            "unknown_shape",
            f"call {call.id!r} has neither started_at nor ended_at: it is not a complete "
            "call, a start event or an end event",
        )
    if expected is not None:
        needed = _NEEDED[expected]
        missing = [name for name in needed if getattr(call, name) is None]
        if missing:
            what = "merged call" if expected == "complete" else f"'{expected}' event"
            raise CallValidationError("wrong_type", f"{what} {call.id!r} has no {missing[0]}")
    if call.started_at and call.ended_at and call.ended_at < call.started_at:
        raise CallValidationError(
            "bad_timestamp",
            f"call {call.id!r} ended_at {call.ended_at.isoformat()} is before started_at "
            f"{call.started_at.isoformat()}",
        )
    return call


def mark(data: dict[str, Any], **notes: Any) -> dict[str, Any]:
    """``data`` (a call's fields, copied) with ``notes`` under ``attributes.weave_stream``.

    >>> mark({"id": "c1"}, half="end")
    {'id': 'c1', 'attributes': {'weave_stream': {'half': 'end'}}}
    """
    attributes = data.get("attributes")
    if attributes is not None and not isinstance(attributes, dict):
        return data  # not an object: validation refuses it (wrong_type) as it came
    attributes = dict(attributes or {})
    noted = attributes.get(MARKER)
    noted = dict(noted) if isinstance(noted, dict) else {} if noted is None else {"value": noted}
    noted.update(notes)
    attributes[MARKER] = noted
    return {**data, "attributes": attributes}


def _json_type(value: Any) -> str:
    if value is None:
        return "null"
    if isinstance(value, bool):
        return "boolean"
    if isinstance(value, int | float):
        return "number"
    if isinstance(value, str):
        return "string"
    return "array" if isinstance(value, list) else type(value).__name__


def _check_id(data: dict[str, Any]) -> None:
    if "id" not in data or data["id"] is None:
        raise CallValidationError(
            "missing_id", "record has no 'id'; every call, start and end event needs its call id"
        )
    call_id = data["id"]
    if not isinstance(call_id, str) or not _ID.match(call_id):
        raise CallValidationError(
            "malformed_id",
            f"id {call_id!r} is not a call id: 1-128 characters of letters, digits, "
            "'_', '.', ':' and '-', starting with a letter or digit",
        )


def _validation_error(exc: ValidationError) -> CallValidationError:
    problems = []
    reason = "wrong_type"
    for field, message, value in field_errors(exc, whole="call"):
        if field.partition(".")[0] in _TIMESTAMP_FIELDS:
            reason = "bad_timestamp"
        problems.append(f"{field}: {message} (got {shown(value)})")
    return CallValidationError(reason, "; ".join(problems))


def canonical_json(call: Call, fields: dict[str, Any]) -> bytes:
    """What ingest forwards: ``fields`` (a validated call's) without nulls, keys sorted,
    timestamps as ISO-8601 UTC. The same call always gives the same bytes, whatever its
    producer's key order or timestamp format: their digest identifies its content.

    >>> call, fields = decode_object({"started_at": 1795662000, "id": "c1", "ended_at": None})
    >>> canonical_json(call, fields)
    b'{"id":"c1","started_at":"2026-11-26T03:00:00Z"}'
    """
    out = {name: value for name, value in fields.items() if value is not None}
    for name in _TIMESTAMP_FIELDS:
        if name in out:
            out[name] = getattr(call, name).isoformat().replace("+00:00", "Z")
    return orjson.dumps(out, option=orjson.OPT_SORT_KEYS)


def call_from_json(raw: bytes | str) -> Call:
    """Rebuild a call from its canonical JSON (as written by :meth:`Call.to_json`)."""
    return Call.model_validate_json(raw)
