"""``weave-stream plan`` and ``weave-stream run`` as a user runs them; the judge on loopback."""

from __future__ import annotations

import os
import subprocess
from collections.abc import Iterator
from pathlib import Path

import orjson
import pandas as pd
import pytest

from tests.support.servers.openai import FakeOpenAI
from weave_stream.demo.samples import corpus_documents, sample_calls, split_into_events
from weave_stream.query.calls import calls as call_query

REPO = Path(__file__).resolve().parents[2]
CLI = REPO / ".venv" / "bin" / "weave-stream"
CALLS = 30


@pytest.fixture(scope="module")
def server() -> Iterator[FakeOpenAI]:
    with FakeOpenAI(api_key="sk-e2e-key") as running:
        yield running


@pytest.fixture(scope="module")
def workdir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A calls file: complete calls, one as start + end events, one line that is not JSON."""
    directory = tmp_path_factory.mktemp("cli")
    documents = corpus_documents("english", categories=["science", "money"])
    distinct = list({d.text: d for d in documents}.values())[:CALLS]  # no value shared by two calls
    calls = sample_calls(distinct)
    start, end = split_into_events(calls[-1])
    lines = [orjson.dumps(c) for c in calls[:-1]]
    lines += [orjson.dumps({"start": start}), b"{oops", orjson.dumps({"end": end})]
    (directory / "calls.jsonl").write_bytes(b"\n".join(lines) + b"\n")
    return directory


def weave_stream(workdir: Path, server: FakeOpenAI, *args: str) -> subprocess.CompletedProcess[str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("WEAVE_STREAM_", "OPENAI_"))}
    env.update(
        WEAVE_STREAM_DATA_DIR=str(workdir / "data"),
        WEAVE_STREAM_JUDGE_BASE_URL=server.base_url,
        WEAVE_STREAM_JUDGE_API_KEY="sk-e2e-key",
        HF_HUB_OFFLINE="1",
    )
    return subprocess.run(
        [str(CLI), *args],
        cwd=REPO,
        env=env,
        capture_output=True,
        text=True,
        timeout=600,
        check=False,
    )


def column_line(output: str, column: str) -> list[str]:
    line = next(line for line in output.splitlines() if line.startswith(column + " "))
    return line.split()


def test_plan_then_run_then_a_cached_rerun(workdir: Path, server: FakeOpenAI) -> None:
    calls = str(workdir / "calls.jsonl")
    plan = weave_stream(workdir, server, "plan", "text_extract", "--input", calls)
    assert plan.returncode == 0, plan.stderr
    assert f"{CALLS} calls read, {CALLS} match its source" in plan.stdout
    for column in ("doc_class", "doc_embedding", "faithfulness"):
        _, _ref, matched, cached, deduplicated, to_compute, *_ = column_line(plan.stdout, column)
        assert (matched, cached, deduplicated, to_compute) == (str(CALLS), "0", "0", str(CALLS))
    assert "$" in column_line(plan.stdout, "faithfulness")[8]  # gpt-4o-mini has a price
    assert "line 31: invalid_json" in plan.stderr
    assert server.requests == []  # a plan computes nothing

    out = workdir / "results.parquet"
    first = weave_stream(
        workdir, server, "run", "text_extract", "--input", calls, "--out", str(out), "--quiet"
    )
    assert first.returncode == 0, first.stderr
    # Four columns; the topic column's values say that no topic map was fitted yet.
    assert (
        f"{4 * CALLS} values = 0 cached + 0 deduplicated + {4 * CALLS} computed + "
        f"0 not computable; {CALLS} errors"
    ) in first.stderr
    assert len(server.requests) == CALLS
    table = pd.read_parquet(out)
    assert len(table) == CALLS
    assert {
        "doc_class.label",
        "doc_class.confidence",
        "faithfulness.score",
        "faithfulness.reason",
    } <= set(table.columns)
    assert {
        "faithfulness.details",
        "faithfulness.cost",
        "doc_embedding",
        "doc_embedding.op_ref",
    } <= set(table.columns)
    assert table["doc_embedding"].map(len).eq(384).all()
    assert table["faithfulness.error"].isna().all()
    assert table["topic.error"].str.contains("no topic map for text_extract.doc_embedding").all()

    replan = weave_stream(workdir, server, "plan", "text_extract", "--input", calls)
    for column in ("doc_class", "doc_embedding", "faithfulness"):
        assert column_line(replan.stdout, column)[3:6] == [str(CALLS), "0", "0"], column

    again = weave_stream(
        workdir,
        server,
        "run",
        "text_extract",
        "--input",
        calls,
        "--out",
        str(workdir / "again.csv"),
        "--store",
        "--store-url",
        str(workdir / "store"),
    )
    assert again.returncode == 0, again.stderr
    # --store: the calls and values land in the call store, as a worker's sink writes them.
    stored = call_query(
        store=str(workdir / "store"),
        op="text-extract",
        columns={"score": "text_extract.faithfulness.score"},
    ).to_pandas()
    assert len(stored) == CALLS and stored["score"].notna().all()
    # The topic column's errors are not cached: a map fitted since would be used.
    assert f"= {3 * CALLS} cached + 0 deduplicated + {CALLS} computed + 0 not" in again.stderr
    assert len(server.requests) == CALLS  # nothing asked of the judge again
    assert len(pd.read_csv(workdir / "again.csv")) == CALLS

    forced = weave_stream(
        workdir, server, "run", "topologies/text_extract.py", "--input", calls,
        "--out", str(workdir / "forced.jsonl"), "--no-cache", "--quiet",
    )  # fmt: skip
    assert forced.returncode == 0, forced.stderr
    assert f"= 0 cached + 0 deduplicated + {4 * CALLS} computed" in forced.stderr
    assert len(server.requests) == 2 * CALLS


def test_a_budget_below_the_plan_refuses_to_start_and_shows_the_plan(
    workdir: Path, server: FakeOpenAI
) -> None:
    out = workdir / "never.jsonl"
    before = len(server.requests)
    refused = weave_stream(
        workdir, server, "run", "text_extract", "--input", str(workdir / "calls.jsonl"),
        "--out", str(out), "--budget", "0.0000001", "--no-cache",
    )  # fmt: skip
    assert refused.returncode == 1
    assert "not starting: the plan costs an estimated $" in refused.stderr
    assert "over the $1e-07 budget" in refused.stderr
    assert "faithfulness" in refused.stderr and "to compute" in refused.stderr  # the plan itself
    assert not out.exists() and len(server.requests) == before


def test_mistakes_are_reported_with_what_to_fix(workdir: Path, server: FakeOpenAI) -> None:
    broken = workdir / "broken.yaml"
    broken.write_text(
        "name: broken\ncolumns:\n"
        "  - name: doc_class\n    op: clasify\n    args: {text: inputs.document}\n"
    )
    result = weave_stream(
        workdir, server, "plan", str(broken), "--input", str(workdir / "calls.jsonl")
    )
    assert result.returncode == 1
    assert (
        "topology 'broken'" in result.stderr and "column 'doc_class', field 'op'" in result.stderr
    )
    assert "did you mean 'classify'?" in result.stderr
    wrong_out = weave_stream(
        workdir,
        server,
        "run",
        "text_extract",
        "--input",
        str(workdir / "calls.jsonl"),
        "--out",
        "x.xlsx",
    )
    assert wrong_out.returncode == 1 and "must end in .jsonl, .csv, .parquet" in wrong_out.stderr
