"""The windowed-aggregate topology of the streaming and CLI tests, its calls, its state.

The topology (:func:`windows_topology`) is wordy's two cheap columns (a word count, and
a size class that fails on 13-word documents) plus a third over the output, with one
aggregate; the calls are real documents with event times near now.
"""

from __future__ import annotations

import asyncio
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any

import yaml

from tests.support.waiting import wait_until
from weave_stream.aggregates.source import read_snapshots
from weave_stream.config import Settings
from weave_stream.demo.samples import corpus_documents, sample_calls
from weave_stream.topology.registrations import registered_topology
from weave_stream.windows import AggregatePartials, AggregatePlan

__all__ = [
    "NAME",
    "WORDS",
    "make_calls",
    "rows_seen",
    "snapshots_now",
    "wait_for_rows",
    "windows_topology",
]

NAME = "wordy_windows"
WORDS = ["count", "sum", "mean", "std", "ci95", "p50", "p90", "p99"]


def windows_topology(folder: Path, **aggregate: Any) -> Path:
    """The wordy columns with one aggregate (``aggregate`` overrides the defaults)."""
    entry = {
        "name": "by_size",
        "window": {"size": "10m", "step": "5m"},
        "grace": "30m",
        "retention": "1d",
        "group_by": ["size", "attributes.model"],
        "metrics": {
            "words": WORDS,
            "summary_words": ["mean"],
            "size": ["counts", "error_rate"],
            "duration_seconds": ["mean"],
        },
        "drill_down": {"sample_size": 5, "worst_k": 3, "score": "words", "worst": "highest"},
        **aggregate,
    }
    spec = {
        "name": NAME,
        "source": {"op_name": "text-extract"},
        "columns": [
            {
                "name": "words",
                "op": "tests.assets.wordy:word_count",
                "args": {"text": "inputs.document"},
            },
            {
                "name": "summary_words",
                "op": "tests.assets.wordy:word_count",
                "args": {"text": "output.summary"},
            },
            {
                "name": "size",
                "op": "tests.assets.wordy:size_class",
                "args": {"words": "columns.words"},
            },
        ],
        "aggregates": [entry],
    }
    path = folder / f"{NAME}.yaml"
    path.write_text(yaml.safe_dump(spec, sort_keys=False))
    return path


def make_calls(seed: str, start: datetime, count: int, spacing: float = 7.0) -> list[dict]:
    """Calls from real documents from ``start``, two models, one 13-word (failing) document."""
    docs = corpus_documents("english", ["money", "food", "humor", "science"])[:count]
    calls = sample_calls(docs, start=start, spacing=timedelta(seconds=spacing), seed=seed)
    for index, call in enumerate(calls):
        call["attributes"]["model"] = "gpt-4o" if index % 3 == 0 else "gpt-4o-mini"
    calls[len(calls) // 2]["inputs"]["document"] = " ".join(["thirteen"] * 13)
    return calls


def snapshots_now(
    settings: Settings,
) -> tuple[list[AggregatePlan], dict[str, list[AggregatePartials]]]:
    """The registered aggregates of ``NAME`` and every partition's state, from the changelog."""
    topology = asyncio.run(registered_topology(settings, NAME))
    return asyncio.run(read_snapshots(settings, topology))


def rows_seen(snapshots: dict[str, list[AggregatePartials]], plan: AggregatePlan) -> int:
    """Rows counted in any window of ``plan``'s aggregate, or refused as late."""
    parts = snapshots[plan.name]
    return sum(b.rows for s in parts for b in s.panes.values()) + sum(s.late_rows for s in parts)


def wait_for_rows(
    settings: Settings, expected: int, timeout: float = 90.0
) -> tuple[list[AggregatePlan], dict[str, list[AggregatePartials]]]:
    """Poll the changelog until ``expected`` rows are counted or refused as late."""
    return wait_until(
        lambda: snapshots_now(settings),
        timeout,
        f"{expected} rows in the aggregates of {NAME}",
        until=lambda state: rows_seen(state[1], state[0][0]) >= expected,
        interval=0.5,
        describe=lambda state: f"{rows_seen(state[1], state[0][0])} rows",
    )
