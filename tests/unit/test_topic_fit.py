"""Topic fits: clusters named through the namer op (real loopback endpoints), cached, priced,
repeatable, refitted with ids carried over, stored and read back.

Vectors are seeded blobs (one per chatterbot-corpus category, so the stand-in namer
reads real text); the quality of clustering real embeddings is measured in bench/topics.py.
"""

from __future__ import annotations

import asyncio
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from tests.support.servers.openai import FakeOpenAI
from tests.support.topic_maps import CATEGORIES, PARAMS, corpus
from weave_stream.columns.cache import MemoryCache
from weave_stream.demo.judge_standin import StandInJudge
from weave_stream.errors import BudgetExceededError, TopicError
from weave_stream.topic_maps import MapStore, TopicInputs, TopicNamer, fit_map
from weave_stream.topic_maps.fit import plan_fit


@pytest.fixture(scope="module")
def standin() -> Iterator[StandInJudge]:
    with StandInJudge() as server:
        yield server


def namer(base_url: str, **options: Any) -> Any:
    return TopicNamer(model="gpt-4o-mini", base_url=base_url, backoff=0.01, **options)


def fit(inputs: TopicInputs, op: Any, cache: MemoryCache, **options: Any) -> Any:
    return asyncio.run(
        fit_map(
            inputs,
            topology="support",
            column="doc_embedding",
            embedding_ref="embed:test",
            params=options.pop("params", PARAMS),
            namer=op,
            cache=cache,
            **options,
        )
    )


def test_a_fit_finds_the_categories_names_them_and_keeps_the_audit(
    standin: StandInJudge, tmp_path: Path
) -> None:
    inputs, truth = corpus(CATEGORIES)
    topic_map = fit(inputs, namer(standin.base_url), MemoryCache())
    assert len(topic_map.topics) == len(CATEGORIES)
    by_call = topic_map.assignments
    for topic in topic_map.topics:
        members = {truth[i] for i, c in enumerate(inputs.call_ids) if by_call[c] == topic.id}
        assert len(members) == 1  # each topic is one category
        assert topic.size == 15 and topic.share == pytest.approx(0.25)
        assert topic.naming.error is None and not topic.naming.cached
        assert "not an LLM" in topic.description and topic.name
        assert topic.naming.op_ref == topic_map.namer_ref and topic.naming.prompt_sha256
        assert topic.naming.cost is not None and topic.naming.cost > 0  # priced model
        assert 0 < topic.radius < 1 and len(topic.example_call_ids) == 8
        assert topic.scores["quality"]["low"] <= topic.scores["quality"]["mean"]
        assert topic.scores["quality"]["mean"] <= topic.scores["quality"]["high"]
    money = next(t for t in topic_map.topics if t.example_call_ids[0].startswith("money"))
    assert any(word in money.name for word in ("money", "bank", "dollar", "stock", "price"))
    store = MapStore(tmp_path)
    store.save(topic_map)
    assert store.current("support", "doc_embedding") == topic_map


def test_the_same_calls_give_the_same_map_and_names_come_from_the_cache() -> None:
    inputs, _ = corpus(CATEGORIES)
    cache = MemoryCache()
    with StandInJudge() as server:
        op = namer(server.base_url)
        first = fit(inputs, op, cache)
        server.stop()  # a second fit must not need the endpoint at all
        second = fit(inputs, op, cache)
    assert second.ref == first.ref and second.assignments == first.assignments
    assert [t.name for t in second.topics] == [t.name for t in first.topics]
    assert all(t.naming.cached and t.naming.cost == 0 for t in second.topics)
    assert fit(inputs, op, cache, previous=first) is first  # a refit of the same: it stands
    plan = asyncio.run(plan_fit(inputs, PARAMS, op, cache))
    assert plan.to_name == 0 and plan.estimate.usd == 0


def test_an_answer_that_is_no_name_is_retried_then_recorded() -> None:
    inputs, _ = corpus(CATEGORIES[:2])
    with FakeOpenAI() as server:  # answers {"score", "reason"}: JSON, but no name
        topic_map = fit(inputs, namer(server.base_url, retries=2), MemoryCache())
        requests = len(server.requests)
    assert requests == 2 * 3  # every topic asked three times
    for topic in topic_map.topics:
        assert topic.name == f"topic-{topic.id}"
        assert "no usable 'name'" in (topic.naming.error or "")


def test_a_budget_refuses_the_fit_before_any_llm_call() -> None:
    inputs, _ = corpus(CATEGORIES)
    with FakeOpenAI() as server:
        with pytest.raises(BudgetExceededError, match=r"naming 4 of 4 topics .* over the budget"):
            fit(inputs, namer(server.base_url), MemoryCache(), budget=1e-7)
        assert server.requests == []


def test_too_few_documents_says_how_many_are_needed(standin: StandInJudge) -> None:
    inputs, _ = corpus(["money"], per=6)
    with pytest.raises(TopicError, match=r"at least 10 documents .* got 6"):
        fit(inputs, namer(standin.base_url), MemoryCache())


def test_a_refit_carries_ids_and_names_and_reports_born_gone_and_stability(
    standin: StandInJudge,
) -> None:
    cache = MemoryCache()
    op = namer(standin.base_url)
    first_inputs, _ = corpus(CATEGORIES, seed=0)
    first = fit(first_inputs, op, cache)
    # New calls: sports is gone, history is born; the other three persist.
    second_inputs, truth = corpus(["money", "food", "science", "history"], seed=1)
    second = fit(second_inputs, op, cache, previous=first)
    refit = second.refit
    assert refit is not None and refit.previous_ref == first.ref
    old_id = {
        first.topic(t).example_call_ids[0].split("-")[0]: t for t in first.assignments.values()
    }
    new_id = {truth[i]: second.assignments[c] for i, c in enumerate(second_inputs.call_ids)}
    for category in ("money", "food", "science"):
        assert new_id[category] == old_id[category]  # the id carries over
    assert (
        refit.born == (new_id["history"],) and new_id["history"] not in first.assignments.values()
    )
    assert refit.gone == (old_id["sports"],)
    assert refit.stability == pytest.approx(0.75)  # history's calls were sports' under the old map
    frozen = first.with_frozen()
    with pytest.raises(TopicError, match="frozen"):
        fit(second_inputs, op, cache, previous=frozen)
