"""OTLP/HTTP traces (``POST /v1/traces``, protobuf or JSON) → one complete call per span.

The wire format is ``opentelemetry-proto``'s ``ExportTraceServiceRequest``. OTLP/JSON
writes trace and span ids in hex where protobuf's JSON mapping expects base64, so ids
are rewritten before parsing. Each span becomes a call in Weave's shape
(``collector.genai`` reads its GenAI attributes): the span id is the call id, the
trace id the trace id, the parent span id the parent id; every span of the request
is kept, so the calls form the same tree as the spans.

>>> from opentelemetry.proto.collector.trace.v1.trace_service_pb2 import ExportTraceServiceRequest
>>> body = b'{"resourceSpans": [{"scopeSpans": [{"spans": [{"traceId": "5b8efff798038103d269b633813fc60c", "spanId": "eee19b7ec3c1b174", "name": "chat gpt-4o", "startTimeUnixNano": "1795662000000000000", "endTimeUnixNano": "1795662001500000000", "attributes": [{"key": "gen_ai.request.model", "value": {"stringValue": "gpt-4o"}}]}]}]}]}'
>>> request = decode_request(body, "application/json")
>>> call = next(calls_from_request(request, "team/app"))
>>> call["id"], call["trace_id"], call["started_at"], call["ended_at"], call["inputs"]["model"]
('eee19b7ec3c1b174', '5b8efff798038103d269b633813fc60c', '2026-11-26T03:00:00Z', '2026-11-26T03:00:01.500000Z', 'gpt-4o')
"""  # noqa: E501

from __future__ import annotations

import base64
from collections.abc import Iterator
from datetime import UTC, datetime
from typing import Any

import orjson
from google.protobuf import json_format
from google.protobuf.message import DecodeError
from opentelemetry.proto.collector.trace.v1.trace_service_pb2 import (
    ExportTraceServiceRequest,
    ExportTraceServiceResponse,
)
from opentelemetry.proto.common.v1.common_pb2 import AnyValue
from opentelemetry.proto.trace.v1.trace_pb2 import Span, Status

from weave_stream.collector.genai import genai_fields
from weave_stream.errors import CollectorRequestError

__all__ = ["calls_from_request", "decode_request", "encode_response"]

_ID_FIELDS = ("traceId", "spanId", "parentSpanId")


def decode_request(body: bytes, content_type: str) -> ExportTraceServiceRequest:
    """Parse an OTLP/HTTP export body (``application/x-protobuf`` or ``application/json``)."""
    request = ExportTraceServiceRequest()
    try:
        if content_type.startswith("application/json"):
            data = orjson.loads(body)
            for resource_spans in data.get("resourceSpans") or ():
                for scope_spans in resource_spans.get("scopeSpans") or ():
                    for span in scope_spans.get("spans") or ():
                        _ids_to_base64(span)
                        for link in span.get("links") or ():
                            _ids_to_base64(link)
            json_format.ParseDict(data, request, ignore_unknown_fields=True)
        else:
            request.ParseFromString(body)
    except (DecodeError, json_format.ParseError, orjson.JSONDecodeError, ValueError) as exc:
        raise CollectorRequestError(400, f"/v1/traces: not an OTLP trace export ({exc})") from None
    return request


def _ids_to_base64(item: dict[str, Any]) -> None:
    for name in _ID_FIELDS:
        value = item.get(name)
        if isinstance(value, str) and value:
            item[name] = base64.b64encode(bytes.fromhex(value)).decode()


def encode_response(content_type: str) -> tuple[bytes, str]:
    """An empty ``ExportTraceServiceResponse`` in the request's encoding: (body, content type)."""
    if content_type.startswith("application/json"):
        return b"{}", "application/json"
    return ExportTraceServiceResponse().SerializeToString(), "application/x-protobuf"


def calls_from_request(
    request: ExportTraceServiceRequest, project_id: str | None
) -> Iterator[dict[str, Any]]:
    """One complete call per span. ``project_id``: the request's ``project_id`` header.

    Without one, a span's resource attributes ``wandb.entity``/``wandb.project`` or its
    ``service.name`` (as ``otel/<service.name>``) name the project.
    """
    for resource_spans in request.resource_spans:
        resource = attribute_dict(resource_spans.resource.attributes)
        project = project_id or _project_of(resource)
        for scope_spans in resource_spans.scope_spans:
            scope = {"name": scope_spans.scope.name, "version": scope_spans.scope.version}
            for span in scope_spans.spans:
                yield span_to_call(span, project, resource, scope)


def _project_of(resource: dict[str, Any]) -> str:
    entity, project = resource.get("wandb.entity"), resource.get("wandb.project")
    if entity and project:
        return f"{entity}/{project}"
    return f"otel/{resource.get('service.name') or 'unknown_service'}"


def span_to_call(
    span: Span, project_id: str, resource: dict[str, Any], scope: dict[str, str]
) -> dict[str, Any]:
    """A span as a complete call in Weave's shape (its whole span kept in ``otel_dump``)."""
    attributes = attribute_dict(span.attributes)
    events = [
        {
            "name": event.name,
            "time": _iso(event.time_unix_nano),
            "attributes": attribute_dict(event.attributes),
        }
        for event in span.events
    ]
    failed = span.status.code == Status.STATUS_CODE_ERROR
    fields = genai_fields(attributes, events, failed, span.status.message)
    call: dict[str, Any] = {
        "project_id": project_id,
        "id": span.span_id.hex(),
        "trace_id": span.trace_id.hex(),
        "parent_id": span.parent_span_id.hex() or None,
        "op_name": span.name,
        "display_name": span.name,
        "started_at": _iso(span.start_time_unix_nano),
        "ended_at": _iso(span.end_time_unix_nano),
        **fields,
    }
    call["attributes"] = {
        **call.get("attributes", {}),
        "otel": {
            "kind": Span.SpanKind.Name(span.kind).removeprefix("SPAN_KIND_"),
            "scope": scope,
            "service": resource.get("service.name"),
        },
    }
    call["otel_dump"] = {
        "name": span.name,
        "kind": Span.SpanKind.Name(span.kind),
        "trace_id": span.trace_id.hex(),
        "span_id": span.span_id.hex(),
        "parent_span_id": span.parent_span_id.hex() or None,
        "trace_state": span.trace_state or None,
        "start_time_unix_nano": span.start_time_unix_nano,
        "end_time_unix_nano": span.end_time_unix_nano,
        "attributes": attributes,
        "events": events,
        "links": [
            {"trace_id": link.trace_id.hex(), "span_id": link.span_id.hex()} for link in span.links
        ],
        "status": {
            "code": Status.StatusCode.Name(span.status.code),
            "message": span.status.message,
        },
        "resource": resource,
        "scope": scope,
    }
    return call


def attribute_dict(pairs: Any) -> dict[str, Any]:
    """OTLP key-values as a flat dict of plain values."""
    return {pair.key: any_value(pair.value) for pair in pairs}


def any_value(value: AnyValue) -> Any:
    """An OTLP ``AnyValue`` as a plain value (bytes as base64)."""
    kind = value.WhichOneof("value")
    if kind is None:
        return None
    if kind == "array_value":
        return [any_value(item) for item in value.array_value.values]
    if kind == "kvlist_value":
        return attribute_dict(value.kvlist_value.values)
    if kind == "bytes_value":
        return base64.b64encode(value.bytes_value).decode()
    return getattr(value, kind)


def _iso(nanos: int) -> str:
    seconds, rest = divmod(nanos, 1_000_000_000)
    moment = datetime.fromtimestamp(seconds, UTC).replace(microsecond=rest // 1000)
    return moment.isoformat().replace("+00:00", "Z")
