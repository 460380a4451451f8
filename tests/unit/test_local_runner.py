"""The local runner: JSONL (start/end events, bad lines), lists and DataFrames; the result table."""

from __future__ import annotations

import asyncio
from pathlib import Path
from typing import Any

import orjson
import pandas as pd
import pytest

from weave_stream.columns.cache import SqliteCache
from weave_stream.demo.samples import corpus_documents, sample_calls, split_into_events
from weave_stream.errors import ConfigError
from weave_stream.ingest.call import parse_call_object
from weave_stream.ops import op
from weave_stream.runners.local import arun_local, plan_local, read_calls, run_local
from weave_stream.topology.spec import Column, Source, Topology


@op
def stats_of(text: str) -> dict[str, int]:
    return {"words": len(text.split()), "chars": len(text)}


@op(deterministic=False)
def dice(text: str) -> int:
    return len(text) % 6 + 1  # declared non-deterministic so that trials apply


@op
def strict(text: str) -> int:
    if "?" in text:
        raise ValueError("no questions")
    return 1


TOPOLOGY = Topology(
    "local",
    [
        Column("stats", stats_of, args={"text": "inputs.document"}),
        Column("roll", dice, args={"text": "inputs.document"}, trials=2),
        Column("strict", strict, args={"text": "inputs.document"}),
    ],
    source=Source(op_name="text-extract"),
)


@pytest.fixture(scope="module")
def calls() -> list[dict[str, Any]]:
    return sample_calls(corpus_documents("english", categories=["food"])[:8])


@pytest.fixture
def jsonl(tmp_path: Path, calls: list[dict[str, Any]]) -> Path:
    """Six complete calls, one call as separate start and end events, a lone start, a bad line."""
    start, end = split_into_events(calls[6])
    lone_start, _ = split_into_events(calls[7])
    lines = [orjson.dumps(c) for c in calls[:6]]
    lines[2:2] = [orjson.dumps({"start": start}), b"", b"{not json"]
    lines += [orjson.dumps({"end": end}), orjson.dumps(lone_start)]
    path = tmp_path / "calls.jsonl"
    path.write_bytes(b"\n".join(lines) + b"\n")
    return path


def test_a_jsonl_file_is_read_like_the_ingest_stage_reads_a_topic(
    jsonl: Path, calls: list[dict[str, Any]]
) -> None:
    read, dead_letters = read_calls(jsonl)
    assert [c.id for c in read] == [c["id"] for c in calls[:6]] + [calls[6]["id"], calls[7]["id"]]
    assert read[6].kind == "complete"  # start + end merged
    assert read[7].kind == "start"  # its end never came: kept as an incomplete call
    [letter] = dead_letters
    assert (letter.reason, letter.source_offset, letter.source_topic) == (
        "invalid_json",
        5,
        str(jsonl),
    )


def test_the_table_has_a_row_per_call_and_trial_with_values_errors_and_refs(jsonl: Path) -> None:
    table = run_local(TOPOLOGY, jsonl)
    frame = table.to_pandas()
    assert len(frame) == 2 * 8 and set(frame["trial"]) == {0, 1}
    assert list(frame.columns[:4]) == ["call_id", "trace_id", "started_at", "trial"]
    for name in ("stats", "roll", "strict"):
        assert {name, f"{name}.error", f"{name}.op_ref"} <= set(frame.columns)
    first = frame.iloc[0]
    assert first["stats"]["words"] > 0 and first["stats.op_ref"] == stats_of.ref
    # A deterministic column has one trial; every trial row shows it.
    per_call = frame.groupby("call_id")["stats"].apply(lambda s: len({orjson.dumps(v) for v in s}))
    assert set(per_call) == {1}
    questions = frame[frame["strict.error"].notna()]
    assert len(questions) > 0 and questions["strict"].isna().all()
    assert (questions["strict.error"] == "ValueError: no questions").all()
    assert table.stats.calls == 8 and len(table.dead_letters) == 1


def test_lists_dataframes_and_files_give_the_same_values(
    jsonl: Path, calls: list[dict[str, Any]]
) -> None:
    as_dicts = run_local(TOPOLOGY, calls)
    as_calls = run_local(TOPOLOGY, [parse_call_object(c) for c in calls])
    as_frame = run_local(TOPOLOGY, pd.DataFrame(calls))
    as_file = run_local(TOPOLOGY, jsonl)

    def values(table: Any) -> list[tuple[str, str, int, Any]]:
        return sorted((v.call_id, v.column, v.trial, orjson.dumps(v.value)) for v in table.values)

    assert values(as_dicts) == values(as_calls) == values(as_frame)
    assert (
        set(values(as_file)) - set(values(as_dicts)) == set()
    )  # the file's lone start differs only in kind


@pytest.mark.parametrize("suffix", [".jsonl", ".csv", ".parquet"])
def test_the_table_is_written_in_each_format(
    tmp_path: Path, calls: list[dict[str, Any]], suffix: str
) -> None:
    table = run_local(TOPOLOGY, calls)
    path = table.write(tmp_path / f"results{suffix}")
    if suffix == ".jsonl":
        rows = [orjson.loads(line) for line in path.read_bytes().splitlines()]
        assert len(rows) == 16 and rows[0]["stats"]["words"] > 0
        return
    frame = pd.read_csv(path) if suffix == ".csv" else pd.read_parquet(path)
    assert len(frame) == 16
    assert {"stats.words", "stats.chars", "roll", "strict.error", "stats.op_ref"} <= set(
        frame.columns
    )
    assert (frame["stats.words"] > 0).all()


def test_a_sqlite_cache_makes_the_second_run_free_and_the_plan_says_so(
    tmp_path: Path, calls: list[dict[str, Any]]
) -> None:
    with SqliteCache(tmp_path / "cache.sqlite") as cache:
        before, _ = asyncio.run(plan_local(TOPOLOGY, calls, cache))
        assert before.to_compute > 0
        first = run_local(TOPOLOGY, calls, cache)
        after, _ = asyncio.run(plan_local(TOPOLOGY, calls, cache))
        second = run_local(TOPOLOGY, calls, cache)
    questions = sum(1 for c in calls if "?" in c["inputs"]["document"])
    assert after.to_compute == second.stats.computed == questions  # only failures are tried again
    assert before.to_compute == first.stats.computed
    assert "local" in after.render() and "to compute" in after.render()


def test_an_unconfigured_judge_stops_the_run_before_anything_runs(
    calls: list[dict[str, Any]], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.delenv("OPENAI_BASE_URL", raising=False)
    monkeypatch.delenv("WEAVE_STREAM_JUDGE_BASE_URL", raising=False)
    topology = Topology(
        "judged",
        [
            Column(
                "score",
                "judge",
                params={"prompt": "Rate: {text}", "model": "gpt-4o-mini"},
                args={"text": "output"},
            )
        ],
    )
    with pytest.raises(
        ConfigError, match=r"topology 'judged', column 'score': the judge has no endpoint"
    ):
        asyncio.run(arun_local(topology, calls))
