"""Plan and run count the same things, and every summary line adds up to its total.

Words (README, "What plan and run count"): matched = cached + deduplicated + computed
(to compute, in a plan) + not computable; errors are counted apart (values with an
error, whatever the cause).
"""

from __future__ import annotations

import re
from pathlib import Path

import orjson
from click.testing import CliRunner

from weave_stream.cli import cli
from weave_stream.demo.samples import corpus_documents, sample_calls

TOPOLOGY = """\
name: counted
source: {op_name: text-extract}
columns:
  - name: shout
    op: counted_ops:shout
    args: {text: inputs.document}
  - name: label
    op: counted_ops:label
    args: {text: inputs.label}
"""
OPS = """\
from weave_stream.ops import op


@op
def shout(text: str) -> str:
    if "FAIL" in text:
        raise ValueError("told to fail")
    return text.upper()


@op
def label(text: str) -> int:
    return len(text)
"""
WORDS = ("matched", "cached", "deduplicated", "to compute", "computed", "not computable")


def _calls() -> list[dict]:
    documents = corpus_documents("english", ["food"])[:6]
    calls = sample_calls(documents)
    # The same six documents again under new call ids (duplicates within and across
    # batches), calls without inputs.label (label cannot be computed for them), and
    # one call whose op fails. (A plan cannot foresee a failure, and a failed input is
    # tried again in a later batch: that one input occurs once.)
    again = sample_calls(documents, seed="again")
    failing = sample_calls(documents[:1], seed="failing")
    failing[0]["inputs"]["document"] = "this one will FAIL"
    for index, call in enumerate(calls + again + failing):
        if index % 3:
            call["inputs"]["label"] = ["red", "green"][index % 2]
    return calls + again + failing


def _table(output: str, header_word: str) -> dict[str, dict[str, int]]:
    """The rows of the counts table: {column: {word: n}} (the total row as 'total')."""
    lines = output.splitlines()
    start = next(i for i, line in enumerate(lines) if line.startswith("column"))
    headers = re.split(r"\s{2,}", lines[start].strip())
    rows = {}
    for line in lines[start + 1 :]:
        if not line.strip() or set(line.strip()) == {"-"}:
            continue
        cells = re.split(r"\s{2,}", line.strip())
        if cells[0] == "total":
            cells = [cells[0], "", *cells[1:]]
        if len(cells) != len(headers):
            break
        rows[cells[0]] = {
            h: int(c.replace(",", "")) for h, c in zip(headers, cells, strict=True) if h in WORDS
        }
    assert header_word in headers, headers
    return rows


def test_plan_and_run_count_the_same_things_and_each_line_adds_up(tmp_path: Path) -> None:
    (tmp_path / "counted.yaml").write_text(TOPOLOGY)
    (tmp_path / "counted_ops.py").write_text(OPS)
    calls = tmp_path / "calls.jsonl"
    calls.write_bytes(b"\n".join(orjson.dumps(c) for c in _calls()) + b"\n")
    common = [
        str(tmp_path / "counted.yaml"),
        "--input",
        str(calls),
        "--batch-size",
        "8",
        "--cache-dir",
        str(tmp_path / "cache"),
    ]
    runner = CliRunner()
    planned = runner.invoke(cli, ["plan", *common], env={"WEAVE_STREAM_DATA_DIR": str(tmp_path)})
    assert planned.exit_code == 0, planned.output
    ran = runner.invoke(
        cli,
        ["run", *common, "--out", str(tmp_path / "out.jsonl"), "--quiet"],
        env={"WEAVE_STREAM_DATA_DIR": str(tmp_path)},
    )
    assert ran.exit_code == 0, ran.output
    plan, run = _table(planned.output, "to compute"), _table(ran.output, "computed")

    for rows in (plan, run):
        for name, row in rows.items():
            done = row.get("to compute", row.get("computed"))
            parts = row["cached"] + row["deduplicated"] + done + row["not computable"]
            assert row["matched"] == parts, (name, row)
        for word in rows["total"]:
            assert rows["total"][word] == sum(r[word] for n, r in rows.items() if n != "total")
    for name in ("shout", "label"):
        assert plan[name]["to compute"] == run[name]["computed"], name
        for word in ("matched", "cached", "deduplicated", "not computable"):
            assert plan[name][word] == run[name][word], (name, word)
    assert run["shout"]["deduplicated"] > 0 and run["label"]["not computable"] > 0

    # The one-line summary adds up too, and says how many values are errors.
    summary = re.search(
        r"(\d+) values = (\d+) cached \+ (\d+) deduplicated \+ (\d+) computed \+ "
        r"(\d+) not computable; (\d+) errors",
        ran.output,
    )
    assert summary, ran.output
    total, *parts, errors = (int(g) for g in summary.groups())
    assert total == sum(parts) == run["total"]["matched"]
    assert errors == 1 + run["total"]["not computable"]

    # Run again: everything comes from the cache, and the plan says so first.
    again = runner.invoke(cli, ["plan", *common], env={"WEAVE_STREAM_DATA_DIR": str(tmp_path)})
    second = _table(again.output, "to compute")
    assert second["total"]["to compute"] == 1  # the failure is tried again
    assert second["total"]["cached"] == run["total"]["matched"] - run["total"]["not computable"] - 1
