"""The collector's request bodies, spans and answers, without a broker."""

from __future__ import annotations

import json
from pathlib import Path

import orjson
import pytest

from weave_stream.collector import bodies
from weave_stream.collector.otlp import calls_from_request, decode_request
from weave_stream.collector.server import graphql_answer
from weave_stream.errors import CollectorRequestError
from weave_stream.ingest.outcomes import ForwardedWindow, ingest_record

CAPTURE = Path(__file__).parent.parent / "assets" / "weave_client_captured.jsonl"
WRITES = {
    "calls/complete": bodies.calls_complete,
    "call/start": bodies.call_start,
    "call/end": bodies.call_end,
    "call/upsert_batch": bodies.upsert_batch,
}


def test_every_captured_write_becomes_records_keyed_by_call_id_and_the_client_s_answer() -> None:
    for line in CAPTURE.read_text().splitlines():
        request = json.loads(line)
        endpoint = next((e for e in WRITES if request["path"].endswith(e)), None)
        if endpoint is None:
            continue
        records, answer = WRITES[endpoint](request["body"])
        assert answer == request["response"]  # what the client expects back
        for key, value in records:
            data = orjson.loads(value)
            call = data.get("start") or data.get("end") or data
            assert key == call["id"].encode()
        if endpoint == "call/upsert_batch":  # each item's req, wrapper and all
            assert [orjson.loads(v) for _, v in records] == [
                item["req"] for item in request["body"]["batch"]
            ]


def test_a_start_without_ids_gets_them_and_says_which() -> None:
    records, answer = bodies.call_start({"start": {"op_name": "x", "started_at": 1795662000}})
    sent = orjson.loads(records[0][1])["start"]
    assert (sent["id"], sent["trace_id"]) == (answer["id"], answer["trace_id"])
    assert records[0][0] == answer["id"].encode()


def test_numbers_python_writes_but_json_has_not_reach_ingest_and_become_null() -> None:
    body = b'{"batch": [{"id": "c1", "started_at": 1795662000, "ended_at": 1795662001,'
    body += b' "output": {"score": NaN, "big": 1e400}}]}'
    records, _ = bodies.calls_complete(*bodies.decode_body(body, "calls/complete"))
    result = ingest_record(records[0][1], {}, window=ForwardedWindow(10))
    assert result.call is not None and result.call.output == {"score": None, "big": None}
    assert result.non_finite == 2


@pytest.mark.parametrize(
    ("parse", "body"),
    [
        (bodies.calls_complete, {"calls": []}),
        (bodies.call_start, {"start": "x"}),
        (bodies.call_end, []),
        (bodies.upsert_batch, {"batch": [{"mode": "finish", "req": {}}]}),
    ],
)
def test_a_body_that_is_not_what_the_endpoint_takes_is_a_400_that_says_so(
    parse: object, body: object
) -> None:
    with pytest.raises(CollectorRequestError) as caught:
        parse(body)  # type: ignore[operator]
    assert caught.value.status == 400 and "expected" in str(caught.value)


def test_graphql_answers_what_weave_init_asks() -> None:
    project = graphql_answer(
        {"query": "query Project($name: String!) { project { name } }", "variables": {"name": "p"}}
    )
    assert project == {"data": {"project": {"name": "p"}}}
    upsert = graphql_answer({"query": "mutation UpsertModel(...) {}", "variables": {"name": "p"}})
    assert upsert["data"]["upsertModel"]["model"]["name"] == "p"
    assert "errors" in graphql_answer({"query": "query ArtifactManifest { x }"})


def test_otlp_json_with_openllmetry_and_openinference_attributes() -> None:
    def attribute(key: str, value: object) -> dict:
        kind = {str: "stringValue", int: "intValue", float: "doubleValue"}[type(value)]
        return {"key": key, "value": {kind: value}}

    spans = [
        {
            "traceId": "5b8efff798038103d269b633813fc60c",
            "spanId": "eee19b7ec3c1b174",
            "parentSpanId": "eee19b7ec3c1b173",
            "name": "openai.chat",
            "startTimeUnixNano": "1795662000000000000",
            "endTimeUnixNano": "1795662000250000000",
            "attributes": [
                attribute("gen_ai.system", "openai"),
                attribute("llm.request.type", "chat"),
                attribute("gen_ai.request.model", "gpt-4o"),
                attribute("gen_ai.prompt.0.role", "user"),
                attribute("gen_ai.prompt.0.content", "hi"),
                attribute("gen_ai.completion.0.content", "hello"),
                attribute("gen_ai.usage.prompt_tokens", 5),
                attribute("gen_ai.usage.completion_tokens", 2),
                attribute("llm.usage.total_tokens", 7),
            ],
        },
        {
            "traceId": "5b8efff798038103d269b633813fc60c",
            "spanId": "eee19b7ec3c1b175",
            "name": "ChatOpenAI",
            "startTimeUnixNano": "1795662001000000000",
            "endTimeUnixNano": "1795662002000000000",
            "attributes": [
                attribute("openinference.span.kind", "LLM"),
                attribute("llm.model_name", "gpt-4o-mini"),
                attribute("llm.provider", "openai"),
                attribute("llm.input_messages.0.message.role", "user"),
                attribute("llm.input_messages.0.message.content", "2+2?"),
                attribute("llm.output_messages.0.message.content", "4"),
                attribute("llm.token_count.prompt", 9),
                attribute("llm.token_count.completion", 1),
                attribute("llm.invocation_parameters", '{"temperature": 0}'),
            ],
        },
    ]
    body = {
        "resourceSpans": [
            {
                "resource": {"attributes": [attribute("service.name", "bot")]},
                "scopeSpans": [{"scope": {"name": "t"}, "spans": spans}],
            }
        ]
    }
    calls = list(calls_from_request(decode_request(orjson.dumps(body), "application/json"), None))
    openllmetry, openinference = calls
    assert (
        openllmetry["id"] == "eee19b7ec3c1b174" and openllmetry["parent_id"] == "eee19b7ec3c1b173"
    )
    assert openllmetry["inputs"]["messages"] == [{"role": "user", "content": "hi"}]
    assert openllmetry["output"]["messages"] == [{"content": "hello"}]
    assert openllmetry["summary"]["usage"]["gpt-4o"]["total_tokens"] == 7
    assert openllmetry["attributes"]["gen_ai"] == {
        "operation": "chat",
        "provider": "openai",
        "model": "gpt-4o",
    }
    assert openinference["parent_id"] is None and openinference["project_id"] == "otel/bot"
    assert openinference["inputs"] == {
        "temperature": 0,
        "messages": [{"role": "user", "content": "2+2?"}],
    }
    assert openinference["summary"]["usage"]["gpt-4o-mini"]["prompt_tokens"] == 9
    for call in calls:  # each is a valid complete call for ingest
        result = ingest_record(orjson.dumps(call), {}, window=ForwardedWindow(10))
        assert result.outcome == "valid", result.dead_letter
    with pytest.raises(CollectorRequestError):
        decode_request(b"\x00not a protobuf", "application/x-protobuf")
