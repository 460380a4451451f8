"""The judge op against an OpenAI-compatible server on loopback that answers or fails on demand."""

from __future__ import annotations

import asyncio
import hashlib
import json
from collections.abc import Iterator
from typing import Any

import pytest

from tests.support.servers.openai import FakeOpenAI, answer, malformed, rate_limited, stall, status
from weave_stream.config import load_settings
from weave_stream.errors import ConfigError, OpDefinitionError
from weave_stream.ops import Judge, OpResult, run_op

KEY = "sk-test-0123456789abcdef"
PROMPT = "Document: {document}\nExtraction: {extraction}"


@pytest.fixture
def server() -> Iterator[FakeOpenAI]:
    with FakeOpenAI(api_key=KEY) as running:
        yield running


def judge(server: FakeOpenAI, **options: Any) -> Any:
    values = {"prompt": PROMPT, "model": "gpt-4o-mini", "base_url": server.base_url, "api_key": KEY}
    return Judge(**{**values, "retries": 2, "backoff": 0.05, **options})


def run(an_op: Any, inputs: list[dict[str, Any]]) -> list[OpResult]:
    return asyncio.run(run_op(an_op, inputs))


def test_an_answer_becomes_a_score_and_a_reason_with_its_audit_trail(server: FakeOpenAI) -> None:
    the_judge = judge(server)
    [result] = run(the_judge, [{"document": "Invoice 7: $120", "extraction": {"total": 120}}])
    assert result.error is None
    [request] = server.requests
    assert (
        request.prompt == 'Document: Invoice 7: $120\nExtraction: {"total":120}'
    )  # non-text as JSON
    assert request.headers["Authorization"] == f"Bearer {KEY}"
    assert request.body["model"] == "gpt-4o-mini"
    assert request.body["response_format"] == {"type": "json_object"}
    system = request.body["messages"][0]["content"]
    assert '"score": <a number from 0 to 1>' in system and '"reason"' in system  # the shape asked
    assert set(result.value) == {"score", "reason"} and 0 <= result.value["score"] <= 1
    details = result.details
    assert (
        details["prompt_sha256"]
        == hashlib.sha256(f"{system}\0{request.prompt}".encode()).hexdigest()
    )
    assert json.loads(details["raw_answer"])["score"] == result.value["score"]
    assert details["prompt_tokens"] > 0 and details["completion_tokens"] > 0
    assert details["latency_ms"] > 0 and result.latency_ms is not None
    price = (details["prompt_tokens"] * 0.15 + details["completion_tokens"] * 0.60) / 1e6
    assert result.cost == pytest.approx(price)


def test_a_fenced_answer_and_a_custom_scale_are_understood(server: FakeOpenAI) -> None:
    server.enqueue(answer('```json\n{"score": 4, "reason": "clear"}\n```'))
    [result] = run(judge(server, score_range=[1, 5]), [{"document": "d", "extraction": "e"}])
    assert result.value == {"score": 4.0, "reason": "clear"}


def test_a_malformed_answer_is_retried(server: FakeOpenAI) -> None:
    server.enqueue(malformed())
    [result] = run(judge(server), [{"document": "d", "extraction": "e"}])
    assert result.error is None and result.attempts == 2
    assert len(server.requests) == 2


def test_an_answer_that_stays_malformed_is_an_error_value_with_the_raw_answer(
    server: FakeOpenAI,
) -> None:
    server.on("ALWAYS-BAD", malformed("I'd rate it 7/10."))
    server.on("OUT-OF-RANGE", answer('{"score": 7, "reason": "great"}'))
    bad, out_of_range, good = run(
        judge(server),
        [
            {"document": "ALWAYS-BAD", "extraction": "e"},
            {"document": "OUT-OF-RANGE", "extraction": "e"},
            {"document": "fine", "extraction": "e"},
        ],
    )
    assert bad.value is None and bad.error is not None and "not JSON" in bad.error
    assert bad.details["raw_answer"] == "I'd rate it 7/10." and bad.attempts == 3
    assert bad.cost is not None and bad.cost > 0  # three answers were paid for
    assert out_of_range.error is not None and "outside 0..1" in out_of_range.error
    assert good.error is None


def test_http_500_is_retried(server: FakeOpenAI) -> None:
    server.enqueue(status(500), status(503))
    [result] = run(judge(server), [{"document": "d", "extraction": "e"}])
    assert result.error is None and result.attempts == 3


def test_http_429_waits_as_long_as_retry_after_says(server: FakeOpenAI) -> None:
    server.enqueue(rate_limited(retry_after=1))
    [result] = run(judge(server), [{"document": "d", "extraction": "e"}])
    assert result.error is None and result.attempts == 2
    first, second = server.requests
    assert second.at - first.at >= 1.0  # Retry-After (1 s) wins over the backoff (0.05 s)


def test_a_stalled_request_times_out_and_ends_as_an_error_value(server: FakeOpenAI) -> None:
    server.on("SLOW", stall(5))
    slow, quick = run(
        judge(server, timeout=0.5, retries=1),
        [{"document": "SLOW", "extraction": "e"}, {"document": "ok", "extraction": "e"}],
    )
    assert slow.error is not None and "timed out after 0.5s" in slow.error and slow.attempts == 2
    assert quick.error is None


def test_requests_are_limited_to_the_concurrency(server: FakeOpenAI) -> None:
    server.on("doc", stall(0.1))
    results = run(
        judge(server, concurrency=3),
        [{"document": f"doc {i}", "extraction": "e"} for i in range(12)],
    )
    assert all(r.error is None for r in results)
    assert server.max_in_flight == 3  # at most 3, and the limit is actually used


def test_the_key_never_appears_in_errors(server: FakeOpenAI) -> None:
    [refused] = run(
        judge(server, api_key="sk-wrong-secret-key"), [{"document": "d", "extraction": "e"}]
    )
    assert refused.error is not None and "HTTP 401" in refused.error and refused.attempts == 1
    assert "sk-wrong-secret-key" not in refused.error and "sk-wrong-secret-key" not in str(
        refused.details
    )
    server.enqueue(status(500, body=f'{{"error": "bad key {KEY}"}}'))
    server.enqueue(status(500, body=f'{{"error": "bad key {KEY}"}}'))
    server.enqueue(status(500, body=f'{{"error": "bad key {KEY}"}}'))
    [echoed] = run(judge(server), [{"document": "d", "extraction": "e"}])
    assert echoed.error is not None and KEY not in echoed.error and "***" in echoed.error


def test_the_endpoint_comes_from_settings_then_the_environment(
    server: FakeOpenAI, monkeypatch: pytest.MonkeyPatch
) -> None:
    settings = load_settings(
        env={}, judge_base_url=server.base_url, judge_api_key=KEY, judge_model="gpt-4.1-mini"
    )
    from_settings = Judge(prompt=PROMPT, settings=settings)
    [result] = run(from_settings, [{"document": "d", "extraction": "e"}])
    assert result.error is None and server.requests[-1].body["model"] == "gpt-4.1-mini"
    monkeypatch.setenv("OPENAI_BASE_URL", server.base_url)
    monkeypatch.setenv("OPENAI_API_KEY", KEY)
    from_environment = Judge(prompt=PROMPT, model="gpt-4o-mini", settings=load_settings(env={}))
    [result] = run(from_environment, [{"document": "d", "extraction": "e"}])
    assert result.error is None
    monkeypatch.delenv("OPENAI_BASE_URL")
    nowhere = Judge(prompt=PROMPT, model="gpt-4o-mini", settings=load_settings(env={}))
    with pytest.raises(ConfigError, match="the judge has no endpoint"):
        nowhere.preflight()


def test_the_model_is_part_of_the_version_and_the_endpoint_is_not(server: FakeOpenAI) -> None:
    assert judge(server).ref == judge(server, base_url="http://elsewhere/v1", api_key="other").ref
    assert judge(server).ref != judge(server, model="gpt-4o").ref
    assert judge(server).ref != judge(server, prompt=PROMPT + "\nBe strict.").ref
    assert not judge(server).deterministic  # so columns may ask for trials


def test_estimates_price_tokens_before_anything_runs(server: FakeOpenAI) -> None:
    inputs = [{"document": "x" * 400, "extraction": "y"}] * 10
    priced = judge(server).estimate(inputs)
    assert (
        priced.tokens > 10 * 100
        and priced.usd is not None
        and priced.usd > 0
        and priced.seconds > 0
    )
    assert judge(server, model="my-local-llama").estimate(inputs).usd is None
    assert (
        judge(server, model="my-local-llama", prices={"my-local-llama": [0.0, 0.0]})
        .estimate(inputs)
        .usd
        == 0
    )
    assert server.requests == []


@pytest.mark.parametrize(
    ("prompt", "message"),
    [
        ("no placeholders here", "has no {placeholders}"),
        ("{document.title}", "is not a plain argument name"),
        ("{document!r}", "is not a plain argument name"),
        ("{}", "is not a plain argument name"),
        ("unbalanced {document", "malformed"),
    ],
)
def test_bad_prompt_templates_are_refused(prompt: str, message: str) -> None:
    with pytest.raises(OpDefinitionError, match=message):
        Judge(prompt=prompt, model="gpt-4o-mini")
