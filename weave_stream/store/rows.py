"""Records to table rows and back: calls, derived values and alerts.

A derived value is split into typed columns (:func:`split_value`) so engines filter
and aggregate it without parsing JSON: a number, a text, an embedding (float32
vector), or a dict's top-level scalar fields (``fields_number``, ``fields_text``:
``{"label": "money", "confidence": 0.93}``). ``value_json`` keeps the whole value only
when the typed columns cannot give it back exactly (nested data, mixed lists, an
int beyond 2**53...); such a value is counted in
``weave_stream_store_untyped_values_total``. :func:`join_value` is the inverse.

>>> split_value({"label": "money", "confidence": 0.93})["fields_text"]
[('label', 'money')]
>>> parts = split_value({"label": "money", "tags": ["a"]})
>>> parts["kind"], parts["value_json"]
('json', '{"label":"money","tags":["a"]}')
>>> join_value(parts) == {"label": "money", "tags": ["a"]}
True
>>> join_value(split_value([0.5, -1.25])), join_value(split_value(3)), join_value(split_value(True))
([0.5, -1.25], 3, True)
"""

from __future__ import annotations

from collections.abc import Mapping
from datetime import UTC, datetime
from typing import Any

import numpy as np
import orjson

from weave_stream.columns.derive import DerivedValue
from weave_stream.ingest.call import MARKER, Call
from weave_stream.notify.alerts import Alert

__all__ = [
    "alert_row",
    "call_from_row",
    "call_row",
    "call_row_from_json",
    "call_status",
    "join_value",
    "short_op_name",
    "split_value",
    "value_from_row",
    "value_row",
    "value_row_from_json",
]

_EXACT_INT = 2**53  # float64 holds every int up to here exactly
_CALL_JSON_FIELDS = ("inputs", "output", "summary", "attributes", "otel_dump")
_CALL_TIME_FIELDS = ("started_at", "ended_at", "deleted_at")
_CALL_FIELDS = frozenset(Call.model_fields)
_CALL_PLAIN_FIELDS = (
    "id",
    "project_id",
    "op_name",
    "display_name",
    "trace_id",
    "parent_id",
    "thread_id",
    "turn_id",
    "exception",
    "wb_user_id",
    "wb_run_id",
    "wb_run_step",
    "wb_run_step_end",
    "deleted_at",
    "storage_size_bytes",
    "total_storage_size_bytes",
    "started_at",
    "ended_at",
)


def _json(value: Any) -> str:
    return orjson.dumps(value, option=orjson.OPT_NON_STR_KEYS).decode()


def short_op_name(op_name: str | None) -> str | None:
    """The op's own name in a Weave op ref (``weave:///e/p/op/NAME:digest`` -> ``NAME``).

    >>> short_op_name("weave:///acme/app/op/text-extract:v3"), short_op_name("predict")
    ('text-extract', 'predict')
    """
    if op_name is None:
        return None
    return op_name.rsplit("/op/", 1)[-1].split(":", 1)[0]


def call_status(summary: Mapping[str, Any] | None, exception: Any, ended: bool) -> str:
    """Weave's status of a call: ``summary.weave.status`` when sent, else from its fields.

    >>> call_status({"weave": {"status": "descendant_error"}}, None, True)
    'descendant_error'
    >>> call_status(None, "boom", True), call_status(None, None, False)
    ('error', 'running')
    """
    weave = summary.get("weave") if summary else None
    if isinstance(weave, Mapping) and isinstance(weave.get("status"), str):
        return str(weave["status"])
    if exception:
        return "error"
    return "success" if ended else "running"


def _usage(summary: Mapping[str, Any] | None) -> tuple[int | None, int | None, int | None]:
    usages = summary.get("usage") if summary else None
    if not isinstance(usages, Mapping) or not usages:
        return None, None, None
    prompt = completion = total = 0
    for usage in usages.values():
        if not isinstance(usage, Mapping):
            continue
        p = usage.get("prompt_tokens") or usage.get("input_tokens") or 0
        c = usage.get("completion_tokens") or usage.get("output_tokens") or 0
        prompt, completion = prompt + p, completion + c
        total += usage.get("total_tokens") or p + c
    return prompt, completion, total


def _cost(summary: Mapping[str, Any] | None) -> float | None:
    weave = summary.get("weave") if summary else None
    costs = weave.get("costs") if isinstance(weave, Mapping) else None
    if not isinstance(costs, Mapping) or not costs:
        return None
    total = 0.0
    for per_model in costs.values():
        if isinstance(per_model, Mapping):
            for key in ("prompt_tokens_total_cost", "completion_tokens_total_cost"):
                part = per_model.get(key)
                if isinstance(part, int | float) and not isinstance(part, bool):
                    total += float(part)
    return total


def _kind(data: Mapping[str, Any], started: datetime | None, ended: datetime | None) -> str:
    """``complete``, ``start`` or ``end``, as :attr:`Call.kind` says: a half forwarded
    alone may carry both timestamps (the client's end half does); its marker says which."""
    if started and ended:
        attributes = data.get("attributes")
        noted = attributes.get(MARKER) if isinstance(attributes, Mapping) else None
        if isinstance(noted, Mapping) and noted.get("half") in ("start", "end"):
            return str(noted["half"])
        return "complete"
    return "start" if started else "end"


def _day(*moments: datetime | None) -> str:
    for moment in moments:
        if moment is not None:
            return moment.astimezone(UTC).strftime("%Y-%m-%d")
    return datetime.now(UTC).strftime("%Y-%m-%d")


def _time(text: str | None) -> datetime | None:
    return None if text is None else datetime.fromisoformat(text)


def call_row(call: Call, stored_at: datetime) -> dict[str, Any]:
    """The ``calls`` row of ``call``: every field, JSON ones as text, plus filter columns."""
    return call_row_from_json(call.to_json(), stored_at)


def call_row_from_json(raw: bytes | str, stored_at: datetime) -> dict[str, Any]:
    """The ``calls`` row of a call in its canonical JSON (as the valid-calls topic holds
    it: validated by the ingest agent, so it is read here without validating again)."""
    data = orjson.loads(raw)
    row: dict[str, Any] = {name: data.get(name) for name in _CALL_PLAIN_FIELDS}
    for name in _CALL_TIME_FIELDS:
        row[name] = _time(row[name])
    for name in _CALL_JSON_FIELDS:
        value = data.get(name)
        row[name] = None if value is None else _json(value)
    summary = data.get("summary")
    prompt, completion, total = _usage(summary)
    started, ended = row["started_at"], row["ended_at"]
    latency = (ended - started).total_seconds() * 1000.0 if started and ended else None
    extra = {k: v for k, v in data.items() if k not in _CALL_FIELDS}
    row.update(
        op=short_op_name(row["op_name"]),
        kind=_kind(data, started, ended),
        status=call_status(summary, row["exception"], ended is not None),
        latency_ms=latency,
        prompt_tokens=prompt,
        completion_tokens=completion,
        total_tokens=total,
        cost=_cost(summary),
        extra=_json(extra) if extra else None,
        stored_at=stored_at,
        date=_day(started, ended, stored_at),
    )
    return row


def call_from_row(row: Mapping[str, Any]) -> Call:
    """The call a ``calls`` row holds (the inverse of :func:`call_row`)."""
    fields: dict[str, Any] = {
        name: row[name] for name in _CALL_PLAIN_FIELDS if row.get(name) is not None
    }
    for name in _CALL_JSON_FIELDS:
        if row.get(name) is not None:
            fields[name] = orjson.loads(row[name])
    if row.get("extra"):
        fields.update(orjson.loads(row["extra"]))
    return Call.model_validate(fields)


def split_value(value: Any) -> dict[str, Any]:
    """The typed columns of a derived value (see the module docstring)."""
    parts: dict[str, Any] = {
        "kind": "json",
        "number": None,
        "text": None,
        "vector": None,
        "fields_number": None,
        "fields_text": None,
        "value_json": None,
    }
    if value is None:
        parts["kind"] = "null"
    elif isinstance(value, bool):
        parts.update(kind="bool", number=1.0 if value else 0.0)
    elif isinstance(value, int):
        if abs(value) <= _EXACT_INT:
            parts.update(kind="int", number=float(value))
    elif isinstance(value, float):
        parts.update(kind="number", number=value)
    elif isinstance(value, str):
        parts.update(kind="text", text=value)
    elif isinstance(value, list) and value and all(type(x) is float for x in value):
        as_float32 = np.asarray(value, dtype=np.float32)
        if np.array_equal(as_float32.astype(np.float64), np.asarray(value, dtype=np.float64)):
            parts.update(kind="vector", vector=as_float32)
    elif isinstance(value, dict) and all(isinstance(k, str) for k in value):
        numbers, texts, exact = [], [], True
        for key, item in value.items():
            if isinstance(item, str):
                texts.append((key, item))
            elif isinstance(item, int | float) and not (
                isinstance(item, int) and abs(item) > _EXACT_INT
            ):
                numbers.append((key, float(item)))
                exact = exact and type(item) is float
            else:
                exact = False
        parts.update(kind="object" if exact else "json", fields_number=numbers, fields_text=texts)
    if parts["kind"] == "json":
        parts["value_json"] = _json(value)
    return parts


def join_value(parts: Mapping[str, Any]) -> Any:
    """The value typed columns hold (the inverse of :func:`split_value`)."""
    kind = parts.get("kind")
    if kind == "json":
        return orjson.loads(parts["value_json"])
    if kind == "number":
        return parts["number"]
    if kind == "int":
        return int(parts["number"])
    if kind == "bool":
        return bool(parts["number"])
    if kind == "text":
        return parts["text"]
    if kind == "vector":
        return [float(x) for x in parts["vector"]]
    if kind == "object":
        return {**dict(parts["fields_number"] or ()), **dict(parts["fields_text"] or ())}
    return None


def value_row(value: DerivedValue, stored_at: datetime) -> dict[str, Any]:
    """The ``values`` row of a derived value."""
    return value_row_from_json(value.to_json(), stored_at)


def value_row_from_json(raw: bytes | str, stored_at: datetime) -> dict[str, Any]:
    """The ``values`` row of a derived value in its JSON (as a derived topic holds it)."""
    data = orjson.loads(raw)
    op_ref = data["op_ref"]
    computed, started = _time(data["computed_at"]), _time(data.get("started_at"))
    details = data.get("details")
    return {
        "call_id": data["call_id"],
        "trace_id": data.get("trace_id"),
        "topology": data["topology"],
        "column_name": data["column"],
        "op_ref": op_ref,
        "op": op_ref.rsplit(":", 1)[0],
        "trial": data.get("trial", 0),
        **split_value(data.get("value")),
        "error": data.get("error"),
        "latency_ms": data.get("latency_ms"),
        "cost": data.get("cost"),
        "cached": bool(data.get("cached")),
        "input_digest": data.get("input_digest"),
        "details": _json(details) if details else None,
        "computed_at": computed,
        "started_at": started,
        "stored_at": stored_at,
        "date": _day(started, computed),
    }


def value_from_row(row: Mapping[str, Any]) -> DerivedValue:
    """The derived value a ``values`` row holds (the inverse of :func:`value_row`)."""
    return DerivedValue(
        call_id=row["call_id"],
        trace_id=row.get("trace_id"),
        topology=row["topology"],
        column=row["column_name"],
        op_ref=row["op_ref"],
        trial=row["trial"],
        value=join_value(row),
        error=row.get("error"),
        latency_ms=row.get("latency_ms"),
        cost=row.get("cost"),
        computed_at=row["computed_at"],
        started_at=row.get("started_at"),
        details=orjson.loads(row["details"]) if row.get("details") else {},
        cached=bool(row.get("cached")),
        input_digest=row.get("input_digest"),
    )


def alert_row(alert: Alert, stored_at: datetime) -> dict[str, Any]:
    """The ``alerts`` row of an alert."""
    return {
        "id": alert.id,
        "topology": alert.topology,
        "monitor": alert.monitor,
        "kind": alert.kind,
        "score": alert.score,
        "threshold": alert.threshold,
        "call_ids": list(alert.call_ids),
        "nearest_known_call": alert.nearest_known_call,
        "time": alert.time,
        "group": list(alert.group.items()),
        "count": alert.count,
        "stats": _json(alert.model_dump(mode="json")["stats"]) if alert.stats else None,
        "excerpt": alert.excerpt,
        "nearest_known_excerpt": alert.nearest_known_excerpt,
        "detector": alert.detector,
        "project_id": alert.project_id,
        "stored_at": stored_at,
        "date": _day(alert.time),
    }
