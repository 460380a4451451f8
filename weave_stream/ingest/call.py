"""The call record, in W&B Weave's own shapes, and the merge of start and end events.

A record on the calls topic is one of

* a complete call (``started_at`` and ``ended_at`` in one record),
* a start event (``started_at``, no ``ended_at``; also ``{"start": {...}}``), or
* an end event (``ended_at``, no ``started_at``; also ``{"end": {...}}``), which is
  what Weave itself puts on its ``weave.call_ended`` topic.

:func:`parse_call` decides which, per record, and validates it into a :class:`Call`.
:func:`merge` joins a start and an end of the same ``id`` into one complete call.

>>> start = parse_call(b'{"id": "c1", "op_name": "extract", "started_at": "2026-11-26T03:00:00Z",'
...                    b' "inputs": {"document": "Invoice #7"}}')
>>> end = parse_call(b'{"end": {"id": "c1", "ended_at": 1795662001.5, "output": "7",'
...                  b' "summary": {}}}')
>>> start.kind, end.kind
('start', 'end')
>>> call = merge(start, end)
>>> call.kind, call.inputs["document"], call.output, call.ended_at.isoformat()
('complete', 'Invoice #7', '7', '2026-11-26T03:00:01.500000+00:00')
"""

from __future__ import annotations

import re
from datetime import UTC, datetime
from typing import Annotated, Any, Literal

import orjson
from pydantic import BaseModel, BeforeValidator, ConfigDict, Field, ValidationError

from weave_stream.errors import (
    CallValidationError,
    IngestError,
    TimestampError,
    field_errors,
    shown,
)

__all__ = [
    "Call",
    "CallKind",
    "Usage",
    "merge",
    "parse_call",
]

CallKind = Literal["complete", "start", "end"]

ID_PATTERN = r"^[A-Za-z0-9][A-Za-z0-9_.:\-]{0,127}$"
_ID = re.compile(ID_PATTERN)
# Calls from before 2000 or after 2200 are mistakes: usually epoch milliseconds.
_EARLIEST = datetime(2000, 1, 1, tzinfo=UTC)
_LATEST = datetime(2200, 1, 1, tzinfo=UTC)
_TIMESTAMP_FIELDS = frozenset({"started_at", "ended_at", "deleted_at"})
_END_FIELDS = ("ended_at", "exception", "output", "summary", "wb_run_step_end")


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
        """``complete``, ``start`` (no end yet) or ``end`` (its start never seen)."""
        if self.started_at is not None and self.ended_at is not None:
            return "complete"
        return "start" if self.started_at is not None else "end"

    def to_json(self) -> bytes:
        """Canonical JSON of the call (what the valid-calls topic carries)."""
        return self.model_dump_json(exclude_none=True).encode()

    def to_dict(self) -> dict[str, Any]:
        """The call as plain JSON-compatible data (timestamps as ISO strings)."""
        return self.model_dump(mode="json", exclude_none=True)


def parse_call(raw: bytes, max_payload_bytes: int | None = None) -> Call:
    """Decode and validate one record; raise :class:`CallValidationError` with a reason code.

    Reason codes: ``too_large``, ``invalid_json``, ``not_an_object``, ``missing_id``,
    ``malformed_id``, ``bad_timestamp``, ``wrong_type``, ``unknown_shape``.
    """
    if max_payload_bytes is not None and len(raw) > max_payload_bytes:
        raise CallValidationError(
            "too_large",
            f"record is {len(raw)} bytes, over the {max_payload_bytes}-byte limit "
            "(raise max_payload_bytes, or trim inputs/outputs before producing)",
        )
    try:
        data = orjson.loads(raw)
    except orjson.JSONDecodeError as exc:
        raise CallValidationError("invalid_json", f"record is not valid JSON: {exc}") from None
    return parse_call_object(data)


def parse_call_object(data: Any) -> Call:
    """Validate an already-decoded record (see :func:`parse_call`)."""
    if not isinstance(data, dict):
        raise CallValidationError(
            "not_an_object", f"record is a JSON {_json_type(data)}, not an object"
        )
    expected: CallKind | None = None
    if len(data) == 1 and ("start" in data or "end" in data):
        # Weave's call_start / call_end request bodies wrap the event.
        expected = "start" if "start" in data else "end"
        data = data[expected]
        if not isinstance(data, dict):
            raise CallValidationError(
                "not_an_object", f"'{expected}' holds a JSON {_json_type(data)}, not an object"
            )
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
    if expected is not None and call.kind not in (expected, "complete"):
        field = "started_at" if expected == "start" else "ended_at"
        raise CallValidationError("wrong_type", f"'{expected}' event {call.id!r} has no {field}")
    if call.started_at and call.ended_at and call.ended_at < call.started_at:
        raise CallValidationError(
            "bad_timestamp",
            f"call {call.id!r} ended_at {call.ended_at.isoformat()} is before started_at "
            f"{call.started_at.isoformat()}",
        )
    return call


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


def merge(start: Call, end: Call) -> Call:
    """Join a start event and an end event of the same call into a complete call.

    Fields of the end event (``ended_at``, ``exception``, ``output``, ``summary``,
    ``wb_run_step_end``) override the start's; everything else comes from the start.
    """
    if start.id != end.id:
        raise IngestError(
            f"cannot merge calls {start.id!r} and {end.id!r}: ids differ; merge the start and "
            "end events of one call"
        )
    fields = start.model_dump(exclude_none=True)
    ended = end.model_dump(exclude_none=True)
    for name in _END_FIELDS:
        if name in ended:
            fields[name] = ended[name]
    for name, value in ended.items():
        fields.setdefault(name, value)
    return Call.model_validate(fields)


def call_from_json(raw: bytes | str) -> Call:
    """Rebuild a call from its canonical JSON (as written by :meth:`Call.to_json`)."""
    return Call.model_validate_json(raw)
