"""What ingest forwards: each id once, merged halves checked, conflicts found and kept.

The cases of issue 19's malformed corpus: a call sent twice, a second version under
one id, halves that end before they start or disagree on a field, tombstones, and
the numbers Python's json.dumps writes but JSON has not.
"""

from __future__ import annotations

import json
import math
from pathlib import Path
from typing import Any

import orjson
import pytest

from weave_stream.demo.samples import corpus_documents, sample_calls, weave_client_events
from weave_stream.ingest.call import canonical_json, decode_object
from weave_stream.ingest.outcomes import (
    DeadLetter,
    ForwardedWindow,
    expire_held,
    ingest_record,
)
from weave_stream.ingest.window import digest
from weave_stream.runners.local import read_calls


def _call(index: int = 0) -> dict[str, Any]:
    return sample_calls(corpus_documents("english", ["food"]), seed="integrity")[index]


def _run(records: list[bytes | None], window: ForwardedWindow | None = None) -> list[Any]:
    pending: dict[str, Any] = {}
    window = window or ForwardedWindow(1000)
    return [
        ingest_record(raw, pending, now=float(i), window=window) for i, raw in enumerate(records)
    ]


def test_a_call_delivered_twice_is_forwarded_once() -> None:
    call = _call()
    results = _run([orjson.dumps(call), json.dumps(call, indent=2).encode()])
    assert [r.outcome for r in results] == ["valid", "duplicate"]


def test_a_second_version_under_one_id_is_a_conflict_dead_lettered_with_both_digests() -> None:
    first, second = _call(), {**_call(), "output": "CONFLICTING second version"}
    results = _run([orjson.dumps(first), orjson.dumps(second), orjson.dumps(first)])
    assert [r.outcome for r in results] == ["valid", "conflict", "duplicate"]
    letter = results[1].dead_letter
    assert letter is not None and letter.reason == "conflict" and results[1].call is None
    notes = dict(letter.notes)
    assert notes["kept-digest"] == digest(results[0].payload).hex()
    assert notes["digest"] == digest(canonical_json(*decode_object(second))).hex()
    assert notes["kept-digest"] in letter.detail and notes["digest"] in letter.detail
    assert DeadLetter.from_record(letter.raw, letter.key, letter.headers()) == letter


def test_halves_of_a_call_already_forwarded_are_duplicates_or_conflicts() -> None:
    call = {**_call(), "is_eval": False}  # the same content the halves carry
    start, end = weave_client_events(call)
    results = _run([orjson.dumps(start), orjson.dumps(end), orjson.dumps(call), orjson.dumps(end)])
    assert [r.outcome for r in results] == ["pending", "merged", "duplicate", "duplicate"]
    changed = {"end": {**end["end"], "output": "another answer"}}
    assert _run([orjson.dumps(start), orjson.dumps(end), orjson.dumps(changed)])[2].outcome == (
        "conflict"
    )
    # Once the merge marker expired, the window still knows the halves.
    window, pending = ForwardedWindow(100), {}
    for now, raw in enumerate([orjson.dumps(start), orjson.dumps(end)]):
        ingest_record(raw, pending, now=float(now), window=window)
    assert list(expire_held(pending, now=1000.0, timeout=10.0)) == [] and pending == {}
    again = ingest_record(orjson.dumps(start), pending, now=1001.0, window=window)
    assert again.outcome == "duplicate" and pending == {}


def test_merged_halves_pass_the_checks_of_a_complete_call() -> None:
    start, end = weave_client_events(_call())
    end["end"]["ended_at"] = "2020-01-01T00:00:00Z"  # before started_at
    end["end"].pop("started_at")
    as_one = {**start["start"], **end["end"]}
    assert _run([orjson.dumps(as_one)])[0].dead_letter.reason == "bad_timestamp"
    results = _run([orjson.dumps(end), orjson.dumps(start)])
    assert [r.outcome for r in results] == ["pending", "dead_letter"]
    letter = results[1].dead_letter
    assert letter.reason == "bad_timestamp" and "merged start and end" in letter.detail
    assert orjson.loads(letter.raw)["inputs"] == start["start"]["inputs"]  # re-ingestable whole


def test_fields_the_halves_disagree_on_are_counted_conflicts_with_both_values_kept() -> None:
    start, end = weave_client_events(_call())
    end["end"].update(project_id="other/project", trace_id="another-trace", output="out")
    result = _run([orjson.dumps(start), orjson.dumps(end)])[1]
    assert result.outcome == "merged" and result.call is not None
    found = {c.field: (c.kept, c.dropped) for c in result.conflicts}
    assert found == {
        "project_id": (start["start"]["project_id"], "other/project"),
        "trace_id": (start["start"]["trace_id"], "another-trace"),
    }
    assert result.call.project_id == start["start"]["project_id"] and result.call.output == "out"
    noted = result.call.attributes["weave_stream"]["merge_conflicts"]
    assert noted["trace_id"] == {"kept": start["start"]["trace_id"], "dropped": "another-trace"}


def test_a_tombstone_is_dead_lettered_as_it_came() -> None:
    (result,) = _run([None])
    letter = result.dead_letter
    assert result.outcome == "dead_letter" and letter.reason == "tombstone"
    assert letter.raw is None
    assert DeadLetter.from_record(None, letter.key, letter.headers()).raw is None


@pytest.mark.parametrize("number", [math.nan, math.inf, -math.inf, 1e400])
def test_non_finite_numbers_become_null_counted_and_marked(number: float) -> None:
    call = {**_call(), "output": {"score": number, "ok": 1.5}}
    raw = json.dumps(call).encode()  # what Python writes by default
    (result,) = _run([raw])
    assert result.outcome == "valid" and result.non_finite == 1
    assert result.call.output == {"score": None, "ok": 1.5}
    assert result.call.attributes["weave_stream"]["non_finite_numbers"] == ["output.score"]
    start, end = weave_client_events(call)
    merged = _run([orjson.dumps(start), json.dumps(end).encode()])[1]
    assert merged.call.attributes["weave_stream"]["non_finite_numbers"] == ["output.score"]


def test_a_record_that_is_not_json_for_another_reason_is_still_invalid() -> None:
    (result,) = _run([b'{"id": "c1", "started_at": NaN, "output": "\\ud800"}'])
    assert result.dead_letter.reason == "invalid_json"


def test_the_window_is_bounded_and_forgets_the_oldest_ids() -> None:
    window = ForwardedWindow(capacity=100)
    for index in range(10_000):
        window.add(f"call-{index}", digest(str(index).encode()))
        assert len(window) <= 100
    assert window.get("call-9999") is not None and window.get("call-0") is None


def test_a_file_read_by_the_local_runner_gives_each_id_once_as_the_stream_does(
    tmp_path: Path,
) -> None:
    call = _call()
    lines = [orjson.dumps(call), orjson.dumps(call), orjson.dumps({**call, "output": "other"})]
    path = tmp_path / "calls.jsonl"
    path.write_bytes(b"\n".join(lines) + b"\n")
    calls, letters = read_calls(path)
    assert [c.id for c in calls] == [call["id"]]
    assert [letter.reason for letter in letters] == ["conflict"]
