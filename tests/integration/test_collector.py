"""``weave-stream collector`` on the real broker: OTLP from the real SDK, the tee, keys, limits."""

from __future__ import annotations

import base64
import json
import threading
from collections.abc import Callable, Iterator
from http.server import BaseHTTPRequestHandler
from pathlib import Path
from typing import Any, ClassVar

import httpx
import orjson
import pytest
from opentelemetry.exporter.otlp.proto.http.trace_exporter import OTLPSpanExporter
from opentelemetry.sdk.resources import Resource
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.trace.export import SimpleSpanProcessor
from opentelemetry.trace import Status, StatusCode

from tests.support.clients.collector_process import CollectorProcess
from tests.support.records import read_all, wait_for_records
from weave_stream.config import Settings
from weave_stream.ingest.call import parse_call
from weave_stream.loopback import LoopbackServer

CAPTURE = Path(__file__).parent.parent / "assets" / "weave_client_captured.jsonl"


@pytest.fixture
def start_collector(tmp_path: Path) -> Iterator[Callable[..., CollectorProcess]]:
    started: list[CollectorProcess] = []

    def factory(settings: Settings, upstream: str | None = None) -> CollectorProcess:
        log = tmp_path / f"collector-{len(started)}.log"
        started.append(CollectorProcess(settings, log, upstream))
        return started[-1]

    yield factory
    for collector in started:
        collector.stop()


def test_spans_of_the_real_opentelemetry_sdk_become_calls(
    make_settings: Callable[..., Settings], start_collector: Callable[..., CollectorProcess]
) -> None:
    settings = make_settings()
    collector = start_collector(settings)
    exporter = OTLPSpanExporter(endpoint=f"{collector.url}/v1/traces", timeout=30)
    provider = TracerProvider(resource=Resource.create({"service.name": "support-bot"}))
    provider.add_span_processor(SimpleSpanProcessor(exporter))
    tracer = provider.get_tracer("support-bot.app")
    with tracer.start_as_current_span("handle_request") as root:
        with tracer.start_as_current_span("chat gpt-4o-mini") as chat:
            chat.set_attributes(
                {
                    "gen_ai.operation.name": "chat",
                    "gen_ai.provider.name": "openai",
                    "gen_ai.request.model": "gpt-4o-mini",
                    "gen_ai.request.temperature": 0.2,
                    "gen_ai.response.model": "gpt-4o-mini-2024-07-18",
                    "gen_ai.response.finish_reasons": ["stop"],
                    "gen_ai.usage.input_tokens": 12,
                    "gen_ai.usage.output_tokens": 3,
                    "gen_ai.input.messages": json.dumps(
                        [{"role": "user", "parts": [{"type": "text", "content": "Capital?"}]}]
                    ),
                    "gen_ai.output.messages": json.dumps(
                        [{"role": "assistant", "parts": [{"type": "text", "content": "Paris."}]}]
                    ),
                }
            )
        with tracer.start_as_current_span("retrieve") as failing:  # OpenInference's names
            failing.set_attributes(
                {"openinference.span.kind": "RETRIEVER", "input.value": "capital of France"}
            )
            failing.record_exception(TimeoutError("index did not answer"))
            failing.set_status(Status(StatusCode.ERROR, "index did not answer"))
    provider.shutdown()
    spans = {span.name: span for span in (root, chat, failing)}

    records = wait_for_records(settings, settings.topics.calls, lambda r: len(r) >= 3)
    calls = {call.op_name: call for call in (parse_call(r.value) for r in records)}
    assert set(calls) == set(spans)
    for name, span in spans.items():
        call = calls[name]
        assert call.kind == "complete" and call.id == f"{span.context.span_id:016x}"
        assert call.trace_id == f"{span.context.trace_id:032x}"
        parent = f"{span.parent.span_id:016x}" if span.parent else None
        assert call.parent_id == parent
        assert call.project_id == "otel/support-bot"
    answer = calls["chat gpt-4o-mini"]
    assert answer.inputs is not None and answer.inputs["model"] == "gpt-4o-mini"
    assert answer.inputs["messages"][0]["parts"][0]["content"] == "Capital?"
    assert answer.output["messages"][0]["parts"][0]["content"] == "Paris."
    usage = answer.summary.usage["gpt-4o-mini-2024-07-18"]  # type: ignore[union-attr,index]
    assert (usage.prompt_tokens, usage.completion_tokens, usage.total_tokens) == (12, 3, 15)
    failed = calls["retrieve"]
    assert failed.exception is not None
    assert json.loads(failed.exception)["type"] == "TimeoutError"
    assert failed.inputs == {"input": "capital of France"}
    assert failed.summary.status_counts == {"success": 0, "error": 1}  # type: ignore[union-attr]


class _Upstream(BaseHTTPRequestHandler):
    """A stand-in trace server: records each request, answers as the capture's stub did."""

    seen: ClassVar[list[tuple[str, str, dict[str, str], bytes]]] = []
    answers: ClassVar[list[Any]] = []  # in the order the requests come
    lock = threading.Lock()

    def _answer(self) -> None:
        body = self.rfile.read(int(self.headers.get("Content-Length") or 0))
        with self.lock:
            self.seen.append((self.command, self.path, dict(self.headers), body))
            answer = orjson.dumps(self.answers.pop(0) if self.answers else {"upstream": True})
        self.send_response(200)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(answer)))
        self.end_headers()
        self.wfile.write(answer)

    do_GET = do_POST = _answer

    def log_message(self, format: str, *args: Any) -> None:
        pass  # the test reads `seen`


def test_the_tee_forwards_every_request_unchanged_and_streams_the_calls(
    make_settings: Callable[..., Settings], start_collector: Callable[..., CollectorProcess]
) -> None:
    requests = [orjson.loads(line) for line in CAPTURE.read_text().splitlines()]
    requests = [r for r in requests if r["run"] == "default" and r["path"] != "/file/create"]
    _Upstream.seen.clear()
    _Upstream.answers[:] = [r["response"] for r in requests]
    settings = make_settings()
    with LoopbackServer(_Upstream) as upstream:
        collector = start_collector(settings, upstream.origin)
        key = base64.b64encode(b"api:a-wandb-key").decode()
        with httpx.Client(base_url=collector.url, headers={"Authorization": f"Basic {key}"}) as c:
            answers = [c.request(r["method"], r["path"], json=r["body"]) for r in requests]
    for request, answer in zip(requests, answers, strict=True):
        assert answer.status_code == 200 and answer.json() == request["response"]  # upstream's
    assert [(m, p) for m, p, _, _ in _Upstream.seen] == [(r["method"], r["path"]) for r in requests]
    for (_, _, headers, body), request in zip(_Upstream.seen, requests, strict=True):
        assert headers["Authorization"] == f"Basic {key}"  # the client's own key, for W&B
        assert (orjson.loads(body) if body else None) == request["body"]
    calls = read_all(settings, settings.topics.calls)
    assert len(calls) == 7 + 2  # the batch's complete calls, the eager op's halves

    # Upstream down: the client sees the failure (and retries a 5xx); Kafka has the calls.
    batch = {"batch": [{**orjson.loads(calls[0].value or b""), "id": "after-upstream-went"}]}
    answer = httpx.post(f"{collector.url}/v2/team/project/calls/complete", json=batch)
    assert answer.status_code == 502
    wait_for_records(settings, settings.topics.calls, lambda r: len(r) == 10)


def test_keys_limits_and_what_the_collector_does_not_serve(
    make_settings: Callable[..., Settings], start_collector: Callable[..., CollectorProcess]
) -> None:
    settings = make_settings(collector_api_keys="key-one,key-two", collector_max_request_bytes=4096)
    collector = start_collector(settings)
    call = {"id": "c-keys", "started_at": 1795662000, "ended_at": 1795662001, "inputs": {}}
    path = f"{collector.url}/v2/team/project/calls/complete"
    basic = "Basic " + base64.b64encode(b"api:key-two").decode()
    assert httpx.post(path, json={"batch": [call]}).status_code == 401
    wrong = "Basic " + base64.b64encode(b"api:key-three").decode()
    refused = httpx.post(path, json={"batch": [call]}, headers={"Authorization": wrong})
    assert refused.status_code == 401 and "WWW-Authenticate" in refused.headers
    assert "key-two" not in refused.text
    assert httpx.post(path, json={"batch": [call]}, headers={"Authorization": basic}).is_success
    bearer = {"Authorization": "Bearer key-one"}
    assert httpx.post(path, json={"batch": [call]}, headers=bearer).is_success
    big = {"batch": [{**call, "inputs": {"document": "x" * 5000}}]}
    assert httpx.post(path, json=big, headers=bearer).status_code == 413
    assert httpx.post(path, content=b"{not json", headers=bearer).status_code == 400
    read = httpx.post(f"{collector.url}/calls/stream_query", json={}, headers=bearer)
    assert read.status_code == 404 and "write API only" in read.json()["reason"]
    assert len(read_all(settings, settings.topics.calls)) == 2
