"""``weave-stream aggregates``, ``drill`` and ``compare`` as a user runs them."""

from __future__ import annotations

import io
import json
import urllib.request
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import orjson
import pandas as pd

from tests.support.aggregates import NAME, make_calls, wait_for_rows, windows_topology
from tests.support.cli import weave_stream
from tests.support.records import produce_calls
from tests.support.waiting import wait_until
from weave_stream.cli.aggregates_cmds import show_aggregates
from weave_stream.config import Settings
from weave_stream.runners.workers import WorkerProcess


def test_aggregates_drill_and_compare_from_the_stream_and_from_a_file(
    make_settings: Callable[..., Settings],
    start_worker: Callable[..., WorkerProcess],
    tmp_path: Path,
) -> None:
    settings = make_settings()
    worker = start_worker(settings)
    flags = ["--broker", settings.broker or "", "--prefix", settings.topic_prefix]
    path = windows_topology(tmp_path)
    registered = weave_stream("register", str(path), *flags)
    assert registered.returncode == 0, registered.stderr
    calls = make_calls("cli", datetime.now(UTC) - timedelta(minutes=25), 120)
    produce_calls(settings, calls)
    wait_for_rows(settings, len(calls))

    # JSON: the same document as every worker's HTTP API, for the same state. The state
    # can still move once (an idle partition's clock advances to the wall clock), so the
    # CLI's answer is compared with the API's when the API answered the same before and
    # after it.
    def from_api() -> Any:
        with urllib.request.urlopen(f"{worker.url}/aggregates/{NAME}", timeout=30) as answer:
            return json.loads(answer.read())

    def answers() -> tuple[Any, Any, Any]:
        """The API's answer before the CLI's, the CLI's, and the API's after it."""
        before = from_api()
        shown = weave_stream("aggregates", NAME, "--format", "json", *flags)
        assert shown.returncode == 0, shown.stderr
        return before, json.loads(shown.stdout), from_api()

    before, document, _ = wait_until(
        answers,
        120,
        "the API to answer the same before and after the CLI (API, CLI, API)",
        until=lambda three: three[0] == three[2],
        interval=0,
    )
    assert document == before
    (aggregate,) = document["aggregates"]
    assert aggregate["group_by"] == ["size", "attributes.model"] and aggregate["late_rows"] == 0
    assert sum(w["rows"] for w in aggregate["windows"]) == 2 * len(calls)  # 2 windows per call

    # CSV, re-grouped on one key; the table with its footnotes; the plot.
    csv = weave_stream("aggregates", NAME, "--by", "size", "--format", "csv", *flags)
    assert csv.returncode == 0, csv.stderr
    frame = pd.read_csv(io.StringIO(csv.stdout))
    assert "attributes.model" not in frame and frame["rows"].sum() == 2 * len(calls)
    plot = tmp_path / "by_size.png"
    table = weave_stream("aggregates", NAME, "--since", "15m", "--plot", str(plot), *flags)
    assert table.returncode == 0, table.stderr
    assert "late row(s) not counted" in table.stdout and "words.ci95_low" in table.stdout
    assert plot.stat().st_size > 10_000

    # Drill-down into the fullest window of one group: only its calls, worst first.
    window = max(aggregate["windows"], key=lambda w: w["rows"])
    group = ["--group", f"size={window['size']}"]
    group += ["--group", f"attributes.model={window['attributes.model']}"]
    drilled = weave_stream(
        "drill", NAME, "--window-start", window["window_start"], *group, "--format", "json", *flags
    )
    assert drilled.returncode == 0, drilled.stderr
    found = json.loads(drilled.stdout)
    assert found["rows"] == window["rows"]
    start = datetime.fromisoformat(window["window_start"])
    for ref in found["sample"] + found["worst"]:
        assert ref["group"] == [window["size"], window["attributes.model"]]
        assert start <= datetime.fromisoformat(ref["started_at"]) < start + timedelta(minutes=10)
        assert ref["op_refs"]["words"].startswith("word_count:")
    text = weave_stream("drill", NAME, "--window-start", window["window_start"], *group, *flags)
    assert found["sample"][0]["call_id"] in text.stdout

    # Compare two columns per class: both are columns of the same calls, so the test is paired.
    figure = tmp_path / "compare.png"
    compared = weave_stream(
        "compare",
        NAME,
        "words",
        "summary_words",
        "--by",
        "size",
        "--format",
        "json",
        "--plot",
        str(figure),
        *flags,
    )
    assert compared.returncode == 0, compared.stderr
    groups = {g["group"]: g for g in json.loads(compared.stdout)["groups"]}
    assert set(groups) == {"short", "long", "(none)", "all"}  # (none): its size op failed
    assert groups["all"]["n_a"] == groups["all"]["n_b"] == len(calls)
    assert groups["all"]["test"] == "paired t" and 0 <= groups["all"]["p_value"] <= 1
    assert 0 <= groups["all"]["wilcoxon_p"] <= 1 and groups["all"]["welch_p"] is None
    assert figure.stat().st_size > 10_000

    # What the demo ends with: the table printed and the plots written.
    written = show_aggregates(settings, NAME, tmp_path / "demo-output")
    assert [p.name for p in written] == [f"aggregates.{NAME}.png"]
    assert written[0].stat().st_size > 10_000

    # The same aggregates from a file, computed in-process by the local runner.
    jsonl = tmp_path / "calls.jsonl"
    jsonl.write_bytes(b"".join(orjson.dumps(call) + b"\n" for call in calls))
    local = weave_stream("aggregates", str(path), "--input", str(jsonl), "--format", "json")
    assert local.returncode == 0, local.stderr
    computed = pd.DataFrame(json.loads(local.stdout)["aggregates"][0]["windows"])
    streamed = pd.DataFrame(aggregate["windows"])
    assert sorted(computed.columns) == sorted(streamed.columns)
    pd.testing.assert_frame_equal(  # sums merged over partitions differ in the last bits
        computed[streamed.columns], streamed, check_exact=False, rtol=1e-9
    )


def test_a_query_names_what_is_wrong(
    make_settings: Callable[..., Settings], tmp_path: Path
) -> None:
    settings = make_settings()
    flags = ["--broker", settings.broker or "", "--prefix", settings.topic_prefix]
    missing = weave_stream("aggregates", "nothing_here", *flags)
    assert missing.returncode == 1 and "no registered topology 'nothing_here'" in missing.stderr
    path = windows_topology(tmp_path)
    jsonl = tmp_path / "calls.jsonl"
    jsonl.write_bytes(orjson.dumps(make_calls("x", datetime.now(UTC), 3)[0]) + b"\n")
    wrong_key = weave_stream("aggregates", str(path), "--input", str(jsonl), "--by", "model")
    assert wrong_key.returncode == 1 and "no aggregate is grouped by ['model']" in wrong_key.stderr
    not_start = weave_stream(
        "drill", str(path), "--input", str(jsonl), "--window-start", "2026-11-26T03:01:00Z"
    )
    assert not_start.returncode == 1 and "not a window start" in not_start.stderr
