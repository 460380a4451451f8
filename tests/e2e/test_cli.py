"""The command line as a user runs it: broker, ingest, dlq, worker errors, demo."""

from __future__ import annotations

import json
import re
import signal
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path

import orjson

from tests.support.cli import weave_stream
from tests.support.processes import wait_gone
from tests.support.records import read_all, wait_for_records
from weave_stream.broker.embedded import wait_for_broker
from weave_stream.config import Settings
from weave_stream.demo.samples import (
    MALFORMED_REASONS,
    corpus_documents,
    malformed_records,
    sample_calls,
)
from weave_stream.runners.workers import WorkerProcess


def test_broker_command_prints_its_address_and_stops_on_sigterm(tmp_path: Path) -> None:
    process = subprocess.Popen(
        [sys.executable, "-m", "weave_stream", "broker", "--log", str(tmp_path / "b.log")],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    assert process.stdout is not None
    url = process.stdout.readline().strip()
    assert url.startswith("kafka://127.0.0.1:")
    wait_for_broker(url.removeprefix("kafka://"), timeout=5)
    broker_pids = [
        int(p) for p in Path(f"/proc/{process.pid}/task/{process.pid}/children").read_text().split()
    ]
    process.send_signal(signal.SIGTERM)
    assert process.wait(timeout=15) == 0
    assert broker_pids
    for pid in broker_pids:
        wait_gone(pid, what="the broker of the stopped command")
    assert "memory only" in (process.stderr.read() if process.stderr else "")


def test_bad_settings_are_refused_with_a_clear_message() -> None:
    result = weave_stream("worker", "--broker", "localhost:9092")
    assert result.returncode == 2
    assert "kafka://host:port" in result.stderr
    result = weave_stream("worker", env={"WEAVE_STREAM_PARTITIONS": "zero"})
    assert result.returncode == 2
    assert "WEAVE_STREAM_PARTITIONS" in result.stderr


def test_ingest_then_dlq_lists_by_reason_and_reingests_only_new_dead_letters(
    tmp_path: Path,
    make_settings: Callable[..., Settings],
    start_worker: Callable[..., WorkerProcess],
) -> None:
    settings = make_settings(max_payload_bytes=16 * 1024)
    start_worker(settings)
    good = sample_calls(corpus_documents("english", ["movies"]))
    bad = malformed_records(settings.max_payload_bytes)
    lines = [orjson.dumps(call) for call in good] + [raw for _, raw in bad]
    calls_file = tmp_path / "calls.jsonl"
    calls_file.write_bytes(b"\n".join(lines) + b"\n")
    flags = ["--broker", settings.broker or "", "--prefix", settings.topic_prefix]

    result = weave_stream("ingest", str(calls_file), *flags)
    assert result.returncode == 0, result.stderr
    assert f"{len(lines)} records produced" in result.stdout
    wait_for_records(settings, settings.topics.dlq, lambda r: len(r) >= len(bad))
    wait_for_records(settings, settings.topics.valid, lambda r: len(r) >= len(good))

    listed = json.loads(weave_stream("dlq", "--format", "json", *flags).stdout)
    assert listed["total"] == len(bad)
    assert {reason: v["count"] for reason, v in listed["reasons"].items()} == dict.fromkeys(
        MALFORMED_REASONS, 1
    )
    assert listed["reasons"]["invalid_json"]["examples"][0]["source"].startswith(
        f"{settings.topics.calls}["
    )

    first = weave_stream("dlq", "--reingest", *flags)
    assert f"re-ingested {len(bad)} dead letters" in first.stdout, first.stderr
    # Still bad: each comes back once more, and a second re-ingest sends only those.
    wait_for_records(settings, settings.topics.dlq, lambda r: len(r) >= 2 * len(bad))
    second = weave_stream("dlq", "--reingest", "--reason", "too_large", *flags)
    assert "re-ingested 1 dead letters" in second.stdout, second.stderr
    reingested = [r for r in read_all(settings, settings.topics.calls) if r.headers]
    assert len(reingested) == len(bad) + 1
    assert all(name == "weave-stream.reingested-from" for r in reingested for name, _ in r.headers)


def test_demo_runs_end_to_end_and_the_books_balance(tmp_path: Path) -> None:
    result = weave_stream(
        "demo", "--calls", "60", "--rate", "1000", "--out", str(tmp_path), timeout=400
    )
    assert result.returncode == 0, result.stdout[-3000:] + result.stderr[-3000:]
    assert "keeps everything in memory" in result.stderr
    assert "books balance" in result.stdout
    for reason in MALFORMED_REASONS:
        assert reason in result.stdout
    assert "the judge column uses the built-in stand-in" in result.stdout
    assert "registered text_extract version" in result.stdout
    assert "drift and topic alerts received by the demo's webhook" in result.stdout
    assert "aggregate quality_by_class of text_extract" in result.stdout
    assert list(tmp_path.glob("*.png")), "the demo writes its plots to its output folder"
    # Topics: fitted on the first 30 stored calls, named by the stand-in (which says it is
    # no LLM); the worker's topic column then assigns exactly the 30 calls that came after.
    assert "topics fitted on the first 30 calls" in result.stdout
    assert "stand-in namer (word counts, not an LLM)" in result.stdout
    assert "the worker's topic column assigned the 30 calls that came after the map" in (
        result.stdout
    )
    # The call whose end never came is not selected: it has no output to judge yet.
    assert "(30 calls came before it" in result.stdout
    assert "the worker checked 1 window(s) of assigned calls" in result.stdout  # for alerts
    assert ".topics('text_extract', 'doc_embedding').summary()" in result.stdout
    assert (tmp_path / "topics.png").is_file()
    # Step 7, a calls() query over the store: the five lowest judge scores, ascending.
    assert ">>> from weave_stream import calls" in result.stdout
    after = result.stdout.split("limit=5).to_pandas()")[1]
    table = re.split(r"\n\[\d+/\d+\]", after)[0].strip().splitlines()
    assert table[0].split() == ["id", "document", "class", "score"]
    scores = [float(line.split()[-1]) for line in table[1:]]
    assert len(scores) == 5 and scores == sorted(scores)
    # Then the "from now on" dataset of the scores below 0.4, as the store sink filled it.
    shown = result.stdout.split("dataset low-faithfulness (from now on: ")[1].splitlines()
    assert shown[0].startswith("text_extract/low-faithfulness): ")
    rows = int(shown[0].split("): ")[1].split()[0])
    assert rows == sum(score < 0.4 for score in scores) or (rows > 0 and max(scores) < 0.4)
    assert shown[1].split() == ["id", "class", "score", "document", "source_call"]
