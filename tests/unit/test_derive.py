"""derive_batch: cache accounting, exact recomputation, trials, errors as values, filters, sampling.

Identical inputs share a cache key, so they are computed once: where documents
have the same length, "twice" (which reads the length) runs fewer times than
there are calls. Expectations below count distinct inputs for that reason.
"""

from __future__ import annotations

import asyncio
import random
import time
from collections import Counter
from typing import Any

import pytest

from weave_stream.columns.cache import MemoryCache, ResultCache
from weave_stream.columns.derive import DerivedValue, DeriveStats, derive_batch, survey_batch
from weave_stream.demo.samples import corpus_documents, sample_calls
from weave_stream.ingest.call import Call, parse_call_object
from weave_stream.ops import op
from weave_stream.topology.selection import sample_point
from weave_stream.topology.spec import Column, Source, Topology

RUNS: Counter[str] = Counter()  # how many inputs each op was really run on


@op
def length(text: str) -> int:
    RUNS["length"] += 1
    return len(text)


@op(name="length")
def length_times_ten(text: str) -> int:
    RUNS["length"] += 1
    return len(text) * 10


@op(name="length")
def length_of_str(text: str) -> int:
    RUNS["length"] += 1
    return len(str(text))  # new code, same values


@op
def shout(text: str) -> str:
    RUNS["shout"] += 1
    return text.upper()


@op
def double(value: int) -> int:
    RUNS["double"] += 1
    return 2 * value


@op(deterministic=False)
def noisy(value: int) -> float:
    RUNS["noisy"] += 1
    return value + random.random()


@op
def picky(text: str) -> int:
    RUNS["picky"] += 1
    if "?" in text:
        raise ValueError("questions are not allowed")
    return len(text)


@pytest.fixture(autouse=True)
def reset_runs() -> None:
    RUNS.clear()


@pytest.fixture(scope="module")
def calls() -> list[Call]:
    return [
        parse_call_object(c) for c in sample_calls(corpus_documents("english", categories=["food"]))
    ]


def topology(n_op: Any = length, **source: Any) -> Topology:
    return Topology(
        "t",
        [
            Column("n", n_op, args={"text": "inputs.document"}),
            Column("loud", shout, args={"text": "inputs.document"}),
            Column("twice", double, args={"value": "columns.n"}),
        ],
        source=Source(op_name="text-extract", **source),
    )


def lengths(calls: list[Call]) -> int:
    """How many distinct document lengths (the distinct inputs of columns reading "n")."""
    return len({len(c.inputs["document"]) for c in calls})  # type: ignore[index]


def derive(
    top: Topology, calls: list[Call], cache: ResultCache, **options: Any
) -> tuple[list[DerivedValue], DeriveStats]:
    stats = DeriveStats()
    values = asyncio.run(derive_batch(top, calls, cache, stats=stats, **options))
    return values, stats


def test_a_second_run_computes_nothing(calls: list[Call]) -> None:
    cache = MemoryCache()
    first, stats = derive(topology(), calls, cache)
    assert (
        len(first) == 3 * len(calls)
        and stats.computed == 2 * len(calls) + lengths(calls) < 3 * len(calls)
        and stats.cache_hits == 0
    )
    RUNS.clear()
    second, stats = derive(topology(), calls, cache)
    assert stats.computed == 0 and stats.cache_hits == 3 * len(calls) and not RUNS
    assert [(v.call_id, v.column, v.value) for v in second] == [
        (v.call_id, v.column, v.value) for v in first
    ]
    assert all(v.cached for v in second) and not any(v.cached for v in first)


def test_a_changed_op_recomputes_exactly_its_column_and_its_dependents(calls: list[Call]) -> None:
    cache = MemoryCache()
    derive(topology(), calls, cache)
    RUNS.clear()
    values, stats = derive(topology(length_times_ten), calls, cache)
    assert {name: s.computed for name, s in stats.columns.items()} == {
        "n": len(calls),
        "twice": lengths(calls),
        "loud": 0,
    }
    assert Counter({"length": len(calls), "double": lengths(calls)}) == RUNS
    assert {v.op_ref for v in values if v.column == "n"} == {length_times_ten.ref}


def test_dependents_are_recomputed_only_when_the_values_they_read_change(calls: list[Call]) -> None:
    cache = MemoryCache()
    derive(topology(), calls, cache)
    _, stats = derive(topology(length_of_str), calls, cache)  # new ref, same numbers
    assert stats.column("n").computed == len(calls)
    assert stats.column("twice").computed == 0  # its inputs did not change: its cache key did not


def test_more_trials_compute_only_the_new_trials(calls: list[Call]) -> None:
    top = Topology(
        "t",
        [
            Column("n", length, args={"text": "inputs.document"}),
            Column("guess", noisy, args={"value": "columns.n"}, trials=2),
        ],
    )
    cache = MemoryCache()
    values, stats = derive(top, calls, cache)
    assert stats.column("guess").computed == 2 * lengths(calls)
    assert Counter(v.trial for v in values if v.column == "guess") == {0: len(calls), 1: len(calls)}
    first_trials = {(v.call_id, v.trial): v.value for v in values if v.column == "guess"}
    values, stats = derive(top, calls, cache, trials=4)
    assert stats.column("guess").computed == 2 * lengths(calls) and stats.column("n").computed == 0
    again = {(v.call_id, v.trial): v.value for v in values if v.column == "guess" and v.trial < 2}
    assert again == first_trials  # trials already computed come back as they were
    _, stats = derive(top, calls, cache, trials={"guess": 3})
    assert stats.computed == 0
    assert len({v.value for v in values if v.column == "guess" and v.call_id == calls[0].id}) == 4


@op
def rounded(value: float) -> int:
    RUNS["rounded"] += 1
    return round(value)


def test_a_deterministic_scorer_scores_every_trial_of_what_it_reads(calls: list[Call]) -> None:
    top = Topology(
        "t",
        [
            Column("n", length, args={"text": "inputs.document"}),
            Column("guess", noisy, args={"value": "columns.n"}, trials=3),
            Column("score", rounded, args={"value": "columns.guess"}),
        ],
    )
    cache = MemoryCache()
    values, stats = derive(top, calls, cache)
    scores = {(v.call_id, v.trial): v.value for v in values if v.column == "score"}
    guesses = {(v.call_id, v.trial): v.value for v in values if v.column == "guess"}
    assert set(scores) == set(guesses)  # one score per trial of the guess
    assert all(scores[key] == round(guesses[key]) for key in scores)
    # Keyed as trial 0: each distinct guess is scored once, whatever trial it came from.
    assert stats.column("score").computed == len(set(guesses.values()))
    assert RUNS["rounded"] == len(set(guesses.values()))
    _, stats = derive(top, calls, cache)
    assert stats.computed == 0


def test_failures_are_values_never_gaps_and_are_not_cached(calls: list[Call]) -> None:
    top = Topology(
        "t",
        [
            Column("p", picky, args={"text": "inputs.document"}),
            Column("twice", double, args={"value": "columns.p"}),
        ],
    )
    cache = MemoryCache()
    values, stats = derive(top, calls, cache)
    questions = [c for c in calls if "?" in c.inputs["document"]]  # type: ignore[index]
    assert 0 < len(questions) < len(calls)
    assert len(values) == 2 * len(calls)  # every (call, column) has its value
    failed = {v.call_id for v in values if v.column == "p" and v.error}
    assert failed == {c.id for c in questions}
    for value in values:
        if value.column == "twice" and value.call_id in failed:
            assert value.error is not None and value.error.startswith(
                "column 'p' failed for this call"
            )
            assert value.input_digest is None
    assert stats.column("p").errors == len(questions) and stats.column("twice").errors == len(
        questions
    )
    RUNS.clear()
    _, stats = derive(top, calls, cache)
    assert stats.column("p").computed == len(questions)  # failures are tried again
    assert stats.column("p").cache_hits == len(calls) - len(questions)


def test_a_missing_field_is_an_error_value_that_says_how_to_filter_it_out() -> None:
    call = parse_call_object(
        {"id": "c1", "started_at": 1795662000, "ended_at": 1795662001, "inputs": {}}
    )
    [value] = asyncio.run(
        derive_batch(
            Topology("t", [Column("n", length, args={"text": "inputs.document"})]),
            [call],
            MemoryCache(),
        )
    )
    assert value.error is not None and "reads inputs.document, which this call lacks" in value.error
    assert "{inputs.document: {exists: true}}" in value.error


def test_filters_select_calls_by_their_fields_and_by_other_columns(calls: list[Call]) -> None:
    top = Topology(
        "t",
        [
            Column(
                "n",
                length,
                args={"text": "inputs.document"},
                filter={"inputs.document": {"contains": "eat"}},
            ),
            Column("twice", double, args={"value": "columns.n"}, filter={"columns.n": {"gt": 60}}),
        ],
    )
    values, stats = derive(top, calls, MemoryCache())
    eating = [c for c in calls if "eat" in c.inputs["document"]]  # type: ignore[index]
    long_ones = [c for c in eating if len(c.inputs["document"]) > 60]  # type: ignore[index]
    assert 0 < len(long_ones) < len(eating) < len(calls)
    assert {v.call_id for v in values if v.column == "n"} == {c.id for c in eating}
    assert {v.call_id for v in values if v.column == "twice"} == {c.id for c in long_ones}
    assert stats.column("n").filtered == len(calls) - len(eating)
    assert stats.column("twice").filtered == len(calls) - len(long_ones)


def test_sampling_is_by_call_id_and_a_column_rate_is_relative_to_the_source(
    calls: list[Call],
) -> None:
    top = Topology(
        "t",
        [
            Column("n", length, args={"text": "inputs.document"}),
            Column("loud", shout, args={"text": "inputs.document"}, sample=0.5),
        ],
        source=Source(sample=0.5),
    )
    values, stats = derive(top, calls, MemoryCache())
    assert stats.matched == sum(sample_point(c.id) < 0.5 for c in calls)
    assert {v.call_id for v in values if v.column == "n"} == {
        c.id for c in calls if sample_point(c.id) < 0.5
    }
    assert {v.call_id for v in values if v.column == "loud"} == {
        c.id for c in calls if sample_point(c.id) < 0.25
    }


def test_the_source_selects_by_op_name_and_filter(calls: list[Call]) -> None:
    other = parse_call_object({**calls[0].to_dict(), "id": "other-op", "op_name": "summarise"})
    failed = parse_call_object({**calls[1].to_dict(), "id": "failed", "exception": "boom"})
    values, stats = derive(
        topology(filter={"exception": {"exists": False}}), [*calls, other, failed], MemoryCache()
    )
    assert stats.calls == len(calls) + 2 and stats.matched == len(calls)
    assert {"other-op", "failed"}.isdisjoint(v.call_id for v in values)


def test_identical_inputs_are_computed_once_and_a_repeated_call_once(calls: list[Call]) -> None:
    same_text = [parse_call_object({**calls[0].to_dict(), "id": f"copy-{i}"}) for i in range(5)]
    values, stats = derive(topology(), [*same_text, same_text[0]], MemoryCache())
    assert len({v.call_id for v in values}) == 5 and len(values) == 15
    assert stats.column("n").computed == 1 and RUNS["length"] == 1


def test_columns_of_one_level_run_concurrently() -> None:
    spans: dict[str, tuple[float, float]] = {}

    @op(name="slow_a")
    async def slow_a(text: str) -> int:
        started = time.monotonic()
        await asyncio.sleep(0.2)
        spans["a"] = (started, time.monotonic())
        return 1

    @op(name="slow_b")
    async def slow_b(text: str) -> int:
        started = time.monotonic()
        await asyncio.sleep(0.2)
        spans["b"] = (started, time.monotonic())
        return 2

    call = parse_call_object({"id": "c1", "started_at": 1795662000, "inputs": {"document": "x"}})
    top = Topology(
        "t",
        [
            Column("a", slow_a, args={"text": "inputs.document"}),
            Column("b", slow_b, args={"text": "inputs.document"}),
        ],
    )
    asyncio.run(derive_batch(top, [call], MemoryCache()))
    assert spans["b"][0] < spans["a"][1] and spans["a"][0] < spans["b"][1]  # they overlap


def test_a_derived_value_carries_what_the_streaming_runner_needs(calls: list[Call]) -> None:
    values, _ = derive(topology(), calls[:1], MemoryCache())
    value = next(v for v in values if v.column == "twice")
    call = calls[0]
    assert (value.call_id, value.trace_id, value.topology, value.started_at) == (
        call.id,
        call.trace_id,
        "t",
        call.started_at,
    )
    assert value.op_ref == double.ref and value.trial == 0 and value.error is None
    assert value.latency_ms is not None and value.computed_at.tzinfo is not None
    assert value.input_digest is not None and len(value.input_digest) == 32
    assert DerivedValue.from_json(value.to_json()) == value


def test_a_survey_predicts_what_derive_computes(calls: list[Call]) -> None:
    cache = MemoryCache()
    derive(topology(), calls[:10], cache)
    RUNS.clear()
    survey = asyncio.run(survey_batch(topology(length_times_ten), calls, cache))
    assert not RUNS  # a survey runs nothing
    _, stats = derive(topology(length_times_ten), calls, cache)
    for name in ("n", "loud"):
        assert survey.column(name).computed == stats.column(name).computed, name
        assert survey.column(name).cache_hits == stats.column(name).cache_hits, name
    # "twice" reads values of "n" not computed yet: every one counts (an upper bound).
    assert survey.column("twice").computed == len(calls) >= stats.column("twice").computed
    assert len(survey.column("twice").pending_inputs) == len(calls)
