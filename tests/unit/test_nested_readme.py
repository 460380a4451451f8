"""The README's "Ops that call ops" example runs as written: ``summarise`` calling
``embed`` (the real model) and ``judge`` (the stand-in judge on loopback, through
``WEAVE_STREAM_JUDGE_BASE_URL`` as a user would set theirs), on real corpus text.
"""

from __future__ import annotations

import asyncio
import re
import runpy
from pathlib import Path

import orjson
import pytest

from weave_stream.demo.judge_standin import StandInJudge
from weave_stream.demo.samples import corpus_documents, sample_calls
from weave_stream.runners.local import plan_local

README = Path(__file__).resolve().parents[2] / "README.md"


def readme_example() -> str:
    """The first Python block of the README's "Ops that call ops" section."""
    section = README.read_text().split("\n### Ops that call ops\n", 1)[1].split("\n### ", 1)[0]
    match = re.search(r"```python\n(.*?)```", section, re.S)
    assert match is not None, "the section has a Python example"
    return match.group(1)


def test_the_readme_example_runs_and_shows_the_tree_then_a_run_that_computes_nothing(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    documents = corpus_documents("english", categories=["science", "money"])
    calls = sample_calls(list({d.text: d for d in documents}.values())[:4])
    (tmp_path / "calls.jsonl").write_bytes(b"\n".join(orjson.dumps(c) for c in calls[:3]))
    (tmp_path / "summaries.py").write_text(readme_example())  # a file: ops need their source
    monkeypatch.chdir(tmp_path)
    with StandInJudge() as judge:
        monkeypatch.setenv("WEAVE_STREAM_JUDGE_BASE_URL", judge.base_url)
        example = runpy.run_path(str(tmp_path / "summaries.py"))
        printed = capsys.readouterr().out.splitlines()

        table = example["table"]
        assert [v.error for v in table.values] == [None] * 3
        assert {v.value["dims"] for v in table.values} == {384}  # all-MiniLM-L6-v2's vectors
        assert all(0.0 <= v.value["score"] <= 1.0 for v in table.values)
        summarise, embed, judge_op = (example[n] for n in ("summarise", "embed", "judge"))
        assert printed[0].startswith(f"summary: {summarise.ref}  ")
        assert printed[1].startswith(f"    └─ {embed.ref}  ")
        assert printed[2].startswith(f"    └─ {judge_op.ref}  ") and "$" in printed[2]
        assert printed[3] == (
            "3 values = 3 cached + 0 deduplicated + 0 computed + 0 not computable; 0 errors"
        )

        # The README's plan: one new call; the cached parents and their sub-steps are free.
        with (tmp_path / "calls.jsonl").open("ab") as lines:
            lines.write(b"\n" + orjson.dumps(calls[3]) + b"\n")
        plan, _ = asyncio.run(
            plan_local(example["topology"], "calls.jsonl", example["SqliteCache"]("cache.sqlite"))
        )
    (column,) = plan.columns
    assert (column.matched, column.cache_hits, column.to_compute) == (4, 3, 1)
    steps = {
        step.op_ref: (step.calls, step.cache_hits, step.to_compute) for step in column.sub_steps
    }
    assert steps == {embed.ref: (1, 0, 1), judge_op.ref: (1, 0, 1)}
    assert column.total.tokens > 0 and column.total.usd is not None and column.total.usd > 0
