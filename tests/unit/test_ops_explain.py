"""The explain op asks the judge why low-scoring outputs failed; failure kinds group the reasons."""

from __future__ import annotations

import asyncio
from collections.abc import Iterator

import pytest

from tests.support.servers.openai import FakeOpenAI, malformed
from weave_stream.demo.judge_standin import StandInJudge
from weave_stream.demo.samples import corpus_examples
from weave_stream.errors import OpDefinitionError
from weave_stream.experiments import Experiment, Variant
from weave_stream.experiments.failures import OTHER, cluster_reasons
from weave_stream.ops import Explain, Judge, resolve_op, run_op
from weave_stream.topology.spec import Column

PROMPT = "Input:\n{question}\n\nOutput:\n{reply}\n\nIt scored {score}. Why did it fail?"


@pytest.fixture
def server() -> Iterator[FakeOpenAI]:
    with FakeOpenAI(scorer=lambda prompt: (0.0, "the reply ignores the question")) as running:
        yield running


def test_only_outputs_below_the_threshold_are_explained(server: FakeOpenAI) -> None:
    explain = Explain(prompt=PROMPT, threshold=0.5, base_url=server.base_url, model="m", retries=0)
    inputs = [
        {"question": "q1", "reply": "r1", "score": 0.9},  # passed: no request
        {"question": "q2", "reply": "r2", "score": 0.1},
        {"question": "q3", "reply": "r3", "score": False},  # pass/fail
        {"question": "q4", "reply": "r4", "score": {"score": 0.2, "reason": "judge"}},
        {"question": "q5", "reply": "r5", "score": "high"},
    ]
    results = asyncio.run(run_op(explain, inputs))
    assert results[0].value is None and results[0].error is None
    assert [r.value for r in results[1:4]] == [{"reason": "the reply ignores the question"}] * 3
    assert "must be a number" in str(results[4].error)
    # The three requests run concurrently: they reach the server in any order.
    prompts = {request.prompt.split("\n")[1]: request.prompt for request in server.requests}
    assert sorted(prompts) == ["q2", "q3", "q4"]  # q1 passed, q5's score is no number
    assert "It scored 0.1." in prompts["q2"] and "It scored 0.2." in prompts["q4"]
    assert all("explain" in r.body["messages"][0]["content"] for r in server.requests)
    assert results[1].details["prompt_sha256"]  # the judge's audit trail


def test_an_answer_without_a_reason_is_a_retried_failure(server: FakeOpenAI) -> None:
    server.enqueue(malformed(), malformed())
    explain = Explain(prompt=PROMPT, base_url=server.base_url, model="m", retries=1, backoff=0.0)
    (result,) = asyncio.run(run_op(explain, [{"question": "q", "reply": "r", "score": 0.0}]))
    assert result.attempts == 2 and "is not JSON" in str(result.error)


def test_explain_is_a_built_in_its_threshold_is_versioned_and_only_low_scores_are_priced() -> None:
    low = resolve_op("explain", {"threshold": 0.3, "model": "gpt-4o-mini"})
    high = resolve_op("explain", {"threshold": 0.6, "model": "gpt-4o-mini"})
    assert low.ref != high.ref
    items = [{"input": "x", "output": "y", "score": s} for s in (0.1, 0.5, 0.9)]
    assert high.estimate(items).tokens == 2 * high.estimate(items[:1]).tokens
    assert low.estimate(items[1:]).tokens == 0


def test_the_stand_in_explains_in_a_few_kinds_and_says_it_is_not_an_llm() -> None:
    rows = corpus_examples(categories=["ai", "humor"], per_category=4, form="pairs")
    with StandInJudge() as standin:
        judge = Judge(
            prompt="Document:\n{question}\n\nExtraction:\n{reply}",
            base_url=standin.base_url,
            model="stand-in",
        )
        explain = Explain(
            prompt=PROMPT, threshold=0.99, base_url=standin.base_url, model="stand-in"
        )
        args = {"question": "inputs.question", "reply": "inputs.reply"}
        experiment = Experiment(
            "explained",
            data=rows,
            columns=[
                Column("judge", judge, args=args),
                Column("why", explain, args={**args, "score": "columns.judge"}),
            ],
            variants=[Variant("a")],
            scores=["judge.score"],
        )
        result = experiment.run()
    reasons = [
        v.value["reason"] for v in result.variants[0].values if v.column == "why" and v.value
    ]
    assert reasons and all("not an LLM" in reason for reason in reasons)
    kinds = result.failure_kinds("why")
    assert kinds.kinds["count"].sum() == len(reasons)
    assert set(kinds.reasons["kind"]) == set(kinds.kinds["kind"])
    assert kinds.kinds.iloc[0]["per_variant"] == {"a": kinds.kinds.iloc[0]["count"]}
    assert "failure kinds in 'why'" in kinds.render()
    # The seam: any grouping function fits.
    custom = result.failure_kinds("why", grouper=lambda texts: [int("short" in t) for t in texts])
    shorts = sum("short" in reason for reason in reasons)
    assert sorted(custom.kinds["count"]) == sorted(c for c in (shorts, len(reasons) - shorts) if c)


def test_similar_reasons_share_a_kind_and_small_kinds_are_pooled() -> None:
    reasons = [
        "The answer is off topic.",
        "The answer is off-topic.",
        "The answer is off topic!",
        "The response is far too short.",
        "The response is too short.",
        "It invents a date that is not in the source.",
        "The summary is written in French, not English.",
    ]
    kinds = cluster_reasons(reasons, max_kinds=3)
    assert kinds[0] == kinds[1] == kinds[2] == 0  # the largest kind first
    assert kinds[3] == kinds[4] == 1
    assert kinds[5] == kinds[6] == OTHER  # past max_kinds - 1 kinds: pooled


def test_a_threshold_that_is_not_a_number_is_refused_with_the_op_named() -> None:
    with pytest.raises(OpDefinitionError, match="explain: threshold must be a number, got 'low'"):
        Explain(prompt=PROMPT, threshold="low", base_url="http://127.0.0.1:9", model="m")
