"""A call store written by the local runner, and the same data in pandas, for query tests.

The calls form real trace trees over three days: a ``predict`` root (a Weave op
ref) with an ``openai.chat`` child and a ``retrieve`` child, which has ``embed``
children of its own. The topology derives, for every predict call, a word count,
a label (a classifier's ``{"label", "confidence"}``) and a score (a judge's
``{"score", "reason"}``, failing for some documents).
"""

from __future__ import annotations

import hashlib
import os
import subprocess
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pandas as pd

from weave_stream.demo.samples import corpus_documents
from weave_stream.ops import op
from weave_stream.topology.spec import Column, Source, Topology

START = datetime(2026, 11, 24, 0, 0, tzinfo=UTC)
PREDICT = "weave:///acme/support/op/predict:v7"


def _unit(text: str) -> float:
    return int.from_bytes(hashlib.sha256(text.encode()).digest()[:4], "big") / 2**32


@op
def words(text: str) -> int:
    return len(text.split())


@op
def topic(text: str) -> dict[str, Any]:
    money = any(w in text.lower() for w in ("money", "bank", "pay", "price", "cost", "dollar"))
    return {"label": "money" if money else "other", "confidence": round(0.5 + _unit(text) / 2, 4)}


@op
def judge(text: str, words: int) -> dict[str, Any]:
    if words % 7 == 0:
        raise ValueError(f"the judge refused a document of {words} words")
    return {"score": round(_unit("score" + text), 4), "reason": f"{words} words read"}


TOPOLOGY = Topology(
    name="support",
    source=Source(op_name="predict"),
    columns=[
        Column("words", words, args={"text": "inputs.document"}),
        Column("topic", topic, args={"text": "inputs.document"}),
        Column("quality", judge, args={"text": "inputs.document", "words": "columns.words"}),
    ],
)


def trace_calls(count: int = 120) -> list[dict[str, Any]]:
    """``count`` predict traces (with 4 descendants each) spread over three days."""
    documents = corpus_documents("english", ["money", "food", "computers", "science"])
    documents.sort(key=lambda d: _unit(d.text))  # categories mixed over time
    calls = []
    for index in range(count):
        started = START + timedelta(minutes=37 * index)  # ~3 days for 120 traces
        root = f"p{index:04d}"
        document = documents[index % len(documents)].text
        calls.append(
            {
                "id": root,
                "trace_id": f"t{index:04d}",
                "op_name": PREDICT,
                "started_at": started.isoformat(),
                "ended_at": (started + timedelta(seconds=1 + index % 5)).isoformat(),
                "inputs": {"document": document, "tags": ["prod" if index % 3 else "beta"]},
                "output": {"answer": document[:20]},
                "summary": {
                    "usage": {"gpt-4o-mini": {"prompt_tokens": 10 + index, "completion_tokens": 5}}
                },
                **({"exception": "boom"} if index % 11 == 5 else {}),
            }
        )
        for child, op_name in (("c", "openai.chat"), ("r", "retrieve")):
            calls.append(
                {
                    "id": f"{child}{index:04d}",
                    "trace_id": f"t{index:04d}",
                    "parent_id": root,
                    "op_name": op_name,
                    "started_at": (started + timedelta(milliseconds=100)).isoformat(),
                    "ended_at": (started + timedelta(milliseconds=900)).isoformat(),
                    "inputs": {"query": document[:40]},
                    "output": "ok",
                }
            )
        for leaf in range(2):
            calls.append(
                {
                    "id": f"e{index:04d}{leaf}",
                    "trace_id": f"t{index:04d}",
                    "parent_id": f"r{index:04d}",
                    "op_name": "embed",
                    "started_at": (started + timedelta(milliseconds=200)).isoformat(),
                    "ended_at": (started + timedelta(milliseconds=300)).isoformat(),
                    "inputs": {"text": document[:10]},
                    "output": [0.5, 0.25],
                }
            )
    return calls


def truth(calls: list[dict[str, Any]], values: list[Any]) -> pd.DataFrame:
    """One row per call with its derived fields, computed in pandas from the inputs."""
    frame = pd.DataFrame(calls)
    frame["started_at"] = pd.to_datetime(frame["started_at"], utc=True, format="ISO8601")
    frame["op"] = frame["op_name"].str.rsplit("/op/", n=1).str[-1].str.split(":").str[0]
    frame["document"] = frame["inputs"].map(lambda i: i.get("document"))
    by_call: dict[tuple[str, str], Any] = {(v.call_id, v.column): v for v in values}
    frame["words"] = frame["id"].map(lambda c: _value(by_call.get((c, "words"))))
    frame["label"] = frame["id"].map(lambda c: _field(by_call.get((c, "topic")), "label"))
    frame["score"] = frame["id"].map(lambda c: _field(by_call.get((c, "quality")), "score"))
    frame["score_error"] = frame["id"].map(
        lambda c: getattr(by_call.get((c, "quality")), "error", None)
    )
    return frame


def _value(value: Any) -> Any:
    return None if value is None or value.error else value.value


def _field(value: Any, name: str) -> Any:
    return None if value is None or value.error else value.value[name]


@contextmanager
def unwritable(folder: Path) -> Iterator[None]:
    """Deny writes under ``folder``: file modes for a user, the immutable flag for root."""
    targets = [folder, *[p for p in folder.rglob("*") if p.is_dir()]]
    if os.geteuid() != 0:
        for target in targets:
            target.chmod(0o555)
        try:
            yield
        finally:
            for target in targets:
                target.chmod(0o755)
        return
    subprocess.run(["chattr", "+i", *map(str, targets)], check=True)
    try:
        yield
    finally:
        subprocess.run(["chattr", "-i", *map(str, targets)], check=True)
