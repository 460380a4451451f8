"""The contract every op keeps, over every built-in op and a user op (as river checks estimators).

* it is an :class:`~weave_stream.ops.Op`, with a ref ``name:<12 hex>``;
* its version is the same in another process;
* it returns exactly one result per input, in order, a failure being a result;
* an empty batch gives no results;
* a deterministic op gives the same values twice;
* values and audit details are JSON;
* it estimates its cost before running, without running.
"""

from __future__ import annotations

import asyncio
import re
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import orjson
import pytest

from tests.support.servers.openai import FakeOpenAI, status
from weave_stream.ops import BUILTIN_OPS, CostEstimate, Op, OpResult, op, resolve_op, run_op

REPO = Path(__file__).resolve().parents[2]


@op
def word_count(text: str) -> int:
    """A user op: the number of words (fails on a non-text)."""
    return len(text.split())


# name -> (op name or import path, params, good inputs, one bad input)
CASES: dict[str, tuple[str, dict[str, Any], list[dict[str, Any]], dict[str, Any]]] = {
    "embed": ("embed", {}, [{"text": "the cat sat"}, {"text": "stocks fell"}], {"text": None}),
    "classify": (
        "classify",
        {"labels": {"pets": "cats, dogs and pets", "finance": "money and markets"}},
        [{"text": "my dog barks"}, {"text": "the bond market"}],
        {"text": 42},
    ),
    "judge": (
        "judge",
        {
            "prompt": "Rate this answer: {text}",
            "model": "gpt-4o-mini",
            "retries": 1,
            "backoff": 0.01,
        },
        [{"text": "a fine answer"}, {"text": "another answer"}],
        {"text": "POISON"},  # the server refuses it with HTTP 400
    ),
    "explain": (
        "explain",
        {
            "prompt": "Why did this answer fail? {text}",
            "threshold": 0.5,
            "model": "gpt-4o-mini",
            "retries": 1,
            "backoff": 0.01,
        },
        [{"text": "a poor answer", "score": 0.1}, {"text": "another", "score": False}],
        {"text": "POISON", "score": 0.0},
    ),
    "user_function": (
        "tests.unit.test_ops_contract:word_count",
        {},
        [{"text": "two words"}, {"text": "three small words"}],
        {"text": None},
    ),
}


def test_every_built_in_op_is_covered() -> None:
    assert set(BUILTIN_OPS) <= set(CASES)


@pytest.fixture(scope="module")
def server() -> Iterator[FakeOpenAI]:
    with FakeOpenAI() as running:
        running.on("POISON", status(400, '{"error": {"message": "content policy"}}'))
        yield running


@pytest.fixture(params=sorted(CASES))
def case(
    request: pytest.FixtureRequest, server: FakeOpenAI
) -> tuple[str, Op, list[dict[str, Any]], dict[str, Any]]:
    name, params, good, bad = CASES[request.param]
    if name in ("judge", "explain"):
        params = {**params, "base_url": server.base_url}
    return request.param, resolve_op(name, params), good, bad


@pytest.fixture(scope="module")
def refs_in_another_process(server: FakeOpenAI) -> dict[str, str]:
    script = (
        "import json\n"
        "from tests.unit.test_ops_contract import CASES\n"
        "from weave_stream.ops import resolve_op\n"
        "print(json.dumps({k: resolve_op(n, p).ref for k, (n, p, _, _) in CASES.items()}))\n"
    )
    out = subprocess.run(
        [sys.executable, "-c", script],
        cwd=REPO,
        capture_output=True,
        text=True,
        timeout=120,
        check=True,
    )
    refs: dict[str, str] = orjson.loads(out.stdout)
    return refs


def run(an_op: Op, inputs: list[dict[str, Any]]) -> list[OpResult]:
    return asyncio.run(run_op(an_op, inputs))


def test_it_is_an_op_with_a_ref(case: tuple[str, Op, Any, Any]) -> None:
    _, an_op, _, _ = case
    assert isinstance(an_op, Op)
    assert re.fullmatch(r"[A-Za-z_][\w.-]*:[0-9a-f]{12}", an_op.ref)
    assert an_op.ref == f"{an_op.name}:{an_op.version}"


def test_its_version_is_the_same_in_another_process(
    case: tuple[str, Op, Any, Any], refs_in_another_process: dict[str, str]
) -> None:
    key, an_op, _, _ = case
    assert refs_in_another_process[key] == an_op.ref  # the judge's endpoint is not in its version


def test_one_result_per_input_in_order_failures_included(case: tuple[str, Op, Any, Any]) -> None:
    _, an_op, good, bad = case
    inputs = [good[0], bad, good[1]]
    assert an_op.signature.problems(set(good[0])) == []
    results = run(an_op, inputs)
    assert len(results) == 3 and all(isinstance(r, OpResult) for r in results)
    assert results[0].ok and results[2].ok
    assert not results[1].ok and results[1].value is None and results[1].error
    alone = run(an_op, [good[1]])[0]
    if an_op.deterministic:
        assert alone.value == results[2].value or _close(alone.value, results[2].value)


def test_an_empty_batch_gives_no_results(case: tuple[str, Op, Any, Any]) -> None:
    _, an_op, _, _ = case
    assert run(an_op, []) == []


def test_deterministic_ops_give_the_same_values_twice(case: tuple[str, Op, Any, Any]) -> None:
    _, an_op, good, _ = case
    first, second = run(an_op, good), run(an_op, good)
    assert all(r.ok for r in [*first, *second])
    if an_op.deterministic:
        assert [r.value for r in first] == [r.value for r in second]
    else:  # may differ run to run: that is what trials are for
        assert an_op.name in ("judge", "explain")


def test_values_and_details_are_json(case: tuple[str, Op, Any, Any]) -> None:
    _, an_op, good, bad = case
    for result in run(an_op, [*good, bad]):
        orjson.dumps(result.value)
        orjson.dumps(dict(result.details))


def test_it_estimates_its_cost_without_running(
    case: tuple[str, Op, Any, Any], server: FakeOpenAI
) -> None:
    _, an_op, good, _ = case
    before = len(server.requests)
    estimate = an_op.estimate(good * 5)
    assert isinstance(estimate, CostEstimate)
    assert estimate.tokens >= 0 and estimate.seconds >= 0
    assert estimate.usd is None or estimate.usd >= 0
    assert len(server.requests) == before


def _close(a: Any, b: Any) -> bool:
    if isinstance(a, list) and isinstance(b, list) and len(a) == len(b):
        return all(abs(x - y) < 1e-5 for x, y in zip(a, b, strict=True))
    return False
