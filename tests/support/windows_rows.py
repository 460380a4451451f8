"""Rows for the windowed-aggregate tests, a pandas ground truth written independently, and
the aggregate (:func:`spec_for`) those tests compute over them.

The classes are real categories of the chatterbot corpus; scores, latencies and costs
are drawn from seeded distributions with a few errors, non-numbers and repeats mixed in.
"""

from __future__ import annotations

import math
import random
from collections.abc import Sequence
from typing import Any

import numpy as np
import pandas as pd

from weave_stream.aggregates import aggregate_table
from weave_stream.topology.aggregates import parse_aggregates
from weave_stream.windows import AggregateRow

T0 = 1_795_662_000.0  # 2026-11-26T03:00:00Z, a multiple of one hour
CLASSES = ("food", "history", "science", "sports", "money")
MODELS = ("gpt-4o-mini", "llama-3-8b")


def make_rows(
    count: int,
    *,
    seed: int = 7,
    span: float = 7200.0,
    jitter: float = 0.0,
    error_rate: float = 0.05,
    trials: int = 1,
) -> list[AggregateRow]:
    """``count`` calls over ``span`` seconds from :data:`T0`, in arrival order.

    ``jitter`` moves each event time back by up to that many seconds, so rows arrive
    out of order by at most ``jitter``.
    """
    rng = random.Random(seed)
    rows = []
    for index in range(count):
        base = T0 + span * index / count
        event_time = base - rng.random() * jitter
        doc_class = rng.choice(CLASSES)
        model = rng.choice(MODELS)
        for trial in range(trials):
            failed = rng.random() < error_rate
            score = min(1.0, max(0.0, rng.gauss(0.3 + 0.1 * CLASSES.index(doc_class), 0.15)))
            values: dict[str, Any] = {
                "latency_ms": rng.lognormvariate(5.5, 0.8),
                "label": rng.choice(["ok", "ok", "ok", "refusal", "off_topic"]),
                "drift": rng.gauss(0.0, 2.0),  # negative values too
            }
            if not failed:
                values["score"] = score
            rows.append(
                AggregateRow(
                    call_id=f"call-{seed}-{index:06d}",
                    event_time=event_time,
                    fields={"doc_class": doc_class, "attributes.model": model},
                    values=values,
                    errors=("score",) if failed else (),
                    costs={"score": 0.0004 + 0.0001 * (index % 3)},
                    op_refs={"score": "judge:7f3a9c", "label": "classify:01bc22"},
                    trace_id=f"trace-{index // 3:06d}",
                    trial=trial,
                )
            )
    return rows


def late_flags(rows: Sequence[AggregateRow], step: int, grace: int) -> list[bool]:
    """Which rows arrive after their pane closed, in arrival order (the rule, written plainly)."""
    clock = -math.inf
    flags = []
    for row in rows:
        pane = math.floor(row.event_time / step) * step
        flags.append(pane + step + grace <= clock)
        clock = max(clock, row.event_time)
    return flags


def long_frame(
    rows: Sequence[AggregateRow], size: int, step: int, group_by: Sequence[str]
) -> pd.DataFrame:
    """One line per (row, window containing it), with the group keys and values."""
    records = []
    for row in rows:
        first = math.floor(row.event_time / step) * step - size + step
        for start in range(int(first), int(row.event_time) + 1, step):
            if start <= row.event_time < start + size:
                record = {"window_start": start, "call_id": row.call_id, "trial": row.trial}
                record.update({key: row.fields.get(key) for key in group_by})
                record.update(row.values)
                record["score_error"] = "score" in row.errors
                record["score_cost"] = row.costs.get("score", 0.0)
                records.append(record)
    return pd.DataFrame.from_records(records)


def truth(
    rows: Sequence[AggregateRow], size: int, step: int, group_by: Sequence[str]
) -> pd.DataFrame:
    """Ground truth per (window, group) with pandas: score moments, lower quantiles, rates."""
    frame = long_frame(rows, size, step, group_by)
    keys = ["window_start", *group_by]
    grouped = frame.groupby(keys, dropna=False)
    out = pd.DataFrame(
        {
            "rows": grouped.size(),
            "score.count": grouped["score"].count(),
            "score.sum": grouped["score"].sum(),
            "score.mean": grouped["score"].mean(),
            "score.std": grouped["score"].std(),
            "score.min": grouped["score"].min(),
            "score.max": grouped["score"].max(),
            "score.errors": grouped["score_error"].sum(),
            "score.cost_sum": grouped["score_cost"].sum(),
            "latency_ms.p50": grouped["latency_ms"].quantile(0.5, interpolation="lower"),
            "latency_ms.p99": grouped["latency_ms"].quantile(0.99, interpolation="lower"),
            "drift.p90": grouped["drift"].quantile(0.9, interpolation="lower"),
        }
    )
    out["score.error_rate"] = out["score.errors"] / out["rows"]
    labels = frame.pivot_table(index=keys, columns="label", values="call_id", aggfunc="count")
    for label in labels.columns:
        out[f"label.counts.{label}"] = labels[label].fillna(0).astype(int)
    return out.reset_index()


def lower_quantile(values: Sequence[float], q: float) -> float:
    """numpy's ``method="lower"`` quantile, the value the sketch guarantee refers to."""
    return float(np.quantile(np.asarray(values, dtype=float), q, method="lower"))


# The aggregate the window-state and query tests compute over these rows.
GROUP_BY = ["doc_class", "attributes.model"]
EXACT = [
    "rows",
    "score.count",
    "score.sum",
    "score.mean",
    "score.std",
    "score.min",
    "score.max",
    "score.errors",
    "score.error_rate",
    "score.cost_sum",
]
QUANTILES = ["latency_ms.p50", "latency_ms.p99", "drift.p90"]


def spec_for(window: Any, grace: str = "2m", retention: str = "1d", **extra: Any) -> Any:
    """The ``quality`` aggregate over these rows' columns, with ``window`` and ``extra``."""
    entry = {
        "name": "quality",
        "window": window,
        "grace": grace,
        "retention": retention,
        "group_by": GROUP_BY,
        "metrics": {
            "score": [
                "count",
                "sum",
                "mean",
                "std",
                "ci95",
                "min",
                "max",
                "error_rate",
                "cost_sum",
            ],
            "latency_ms": ["p50", "p99"],
            "drift": ["p90"],
            "label": ["counts"],
        },
        "drill_down": {"sample_size": 8, "worst_k": 3, "score": "score", "worst": "lowest"},
        **extra,
    }
    return parse_aggregates([entry], "test")[0]


def table_frame(spec: Any, snapshots: Any, by: Any = None) -> pd.DataFrame:
    """The aggregate's table as a frame, window starts as epoch seconds (as :func:`truth`)."""
    frame = aggregate_table(spec, snapshots, by=by).frame.copy()
    frame["window_start"] = frame["window_start"].map(lambda t: int(t.timestamp()))
    return frame


def assert_matches_truth(frame: pd.DataFrame, expected: pd.DataFrame, keys: list[str]) -> None:
    """Same windows and groups; exact figures equal, sketched quantiles within 1 %."""
    joined = expected.merge(frame, on=keys, how="outer", suffixes=("_truth", ""), indicator=True)
    assert (joined["_merge"] == "both").all(), joined[joined["_merge"] != "both"][keys]
    for column in EXACT:
        np.testing.assert_allclose(
            joined[column].astype(float),
            joined[f"{column}_truth"].astype(float),
            rtol=1e-9,
            atol=1e-12,
            equal_nan=True,
            err_msg=column,
        )
    for column in QUANTILES:
        exact, sketched = joined[f"{column}_truth"], joined[column]
        assert (abs(sketched - exact) <= 0.01 * abs(exact) + 1e-12).all(), column
    for column in [c for c in expected.columns if ".counts." in c]:
        assert (joined[column] == joined[f"{column}_truth"]).all(), column
