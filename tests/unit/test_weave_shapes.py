"""Records as the real weave client sends them (tests/assets/weave_client_captured.jsonl).

The capture is every request weave 0.54.0 made against a stub trace server: the
default run (``calls/complete`` batches, an eager op through ``call/start`` and
``call/end``) and the legacy run (``call/upsert_batch``).
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import orjson
import pytest

from weave_stream.ingest.call import parse_call
from weave_stream.ingest.outcomes import ForwardedWindow, expire_held, ingest_record

CAPTURE = Path(__file__).parent.parent / "assets" / "weave_client_captured.jsonl"


def _requests(run: str) -> list[dict[str, Any]]:
    return [r for r in map(json.loads, CAPTURE.read_text().splitlines()) if r["run"] == run]


def _records(run: str) -> list[bytes]:
    """What the collector puts on the calls topic for each call the client sent."""
    records = []
    for request in _requests(run):
        path, body = request["path"], request["body"]
        if path.endswith("/calls/complete"):
            records += [orjson.dumps(call) for call in body["batch"]]
        elif path.endswith(("/call/start", "/call/end")):
            records.append(orjson.dumps(body))
        elif path.endswith("/call/upsert_batch"):
            records += [orjson.dumps(item["req"]) for item in body["batch"]]
    return records


def _sent_fields(run: str) -> dict[str, dict[str, Any]]:
    """Every field the client sent, per call id, from every request that carried it."""
    fields: dict[str, dict[str, Any]] = {}
    for raw in _records(run):
        data = orjson.loads(raw)
        data = data.get("start") or data.get("end") or data
        fields.setdefault(data["id"], {}).update(data)
    return fields


def test_the_end_half_is_an_end_event_though_it_carries_started_at() -> None:
    (end_request,) = [r for r in _requests("default") if r["path"].endswith("/call/end")]
    assert "started_at" in end_request["body"]["end"]  # what made it look complete before
    assert parse_call(orjson.dumps(end_request["body"])).kind == "end"
    items = [i for r in _requests("legacy") if "upsert" in r["path"] for i in r["body"]["batch"]]
    kinds = {item["mode"]: parse_call(orjson.dumps(item["req"])).kind for item in items}
    assert kinds == {"start": "start", "end": "end"}


@pytest.mark.parametrize("run", ["default", "legacy"])
def test_every_call_comes_out_once_whole_with_every_field_the_client_sent(run: str) -> None:
    pending: dict[str, Any] = {}
    window = ForwardedWindow(1000)
    results = [ingest_record(raw, pending, now=0.0, window=window) for raw in _records(run)]
    forwarded = [r.call for r in results if r.call is not None]
    out = {call.id: call for call in forwarded}
    assert len(forwarded) == len(out)  # each call once
    assert not [r for r in results if r.dead_letter is not None]
    assert list(expire_held(pending, now=1e12, timeout=1.0, windows={None: window})) == []
    sent = _sent_fields(run)
    assert set(out) == set(sent)
    for call_id, fields in sent.items():
        call = out[call_id]
        assert call.kind == "complete"
        again = orjson.loads(call.to_json())
        for name, value in fields.items():
            if value is None:
                assert getattr(call, name) is None
            elif name in ("started_at", "ended_at"):
                assert again[name].rstrip("Z") == value.rstrip("Z")
            else:
                assert again[name] == value, (call_id, name)


def test_the_facts_of_the_capture_survive_parsing() -> None:
    calls = {c["op_name"].split("/")[-1].split(":")[0]: c for c in _sent_fields("default").values()}
    failed = parse_call(orjson.dumps(calls["fails"]))
    assert (
        isinstance(failed.exception, str) and json.loads(failed.exception)["type"] == "ValueError"
    )
    chat = parse_call(orjson.dumps(calls["chat"]))
    assert chat.summary is not None and chat.summary.usage is not None
    usage = chat.summary.usage["gpt-4o-mini-2024-07-18"]
    assert (usage.requests, usage.prompt_tokens, usage.completion_tokens) == (1, 12, 3)
    assert chat.summary.status_counts == {"success": 1, "error": 0}
    threaded = [c for c in calls.values() if c.get("thread_id")]
    assert threaded and all(parse_call(orjson.dumps(c)).turn_id for c in threaded)
    eager = parse_call(orjson.dumps({"end": calls["long_running"]}))
    assert eager.is_eval is False
