"""What a query returns: :class:`AggregateTable` and :class:`DrillDown`, in table, CSV or JSON.

The same objects serve the CLI (``--format table|csv|json``), a worker's HTTP API
(JSON) and the local runner, so all three print the same figures.

>>> import pandas as pd
>>> frame = pd.DataFrame({"window_start": pd.to_datetime([0], unit="s", utc=True),
...                       "window_end": pd.to_datetime([60], unit="s", utc=True),
...                       "rows": [3], "s.mean": [0.5]})
>>> table = AggregateTable("q", frame, (), late_rows=1, duplicates=0, watermark=90.0)
>>> table.to_records()[0]["window_end"], table.to_records()[0]["s.mean"]
('1970-01-01T00:01:00+00:00', 0.5)
>>> print(table.format("csv").strip())
window_start,window_end,rows,s.mean
1970-01-01T00:00:00+00:00,1970-01-01T00:01:00+00:00,3,0.5
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any, Literal

import orjson
import pandas as pd

from weave_stream.errors import OutputError
from weave_stream.windows.rows import CallRef

__all__ = ["AggregateTable", "DrillDown", "OutputFormat"]

OutputFormat = Literal["table", "csv", "json"]


def _plain(value: Any) -> Any:
    if isinstance(value, pd.Timestamp):
        return value.isoformat()
    if hasattr(value, "item"):  # numpy scalars
        value = value.item()
    if isinstance(value, float) and math.isnan(value):
        return None
    return value


def _iso(seconds: float | None) -> str | None:
    return None if seconds is None else datetime.fromtimestamp(seconds, tz=UTC).isoformat()


@dataclass
class AggregateTable:
    """One row per (window, group) of one aggregate, merged over every partition and worker."""

    aggregate: str
    frame: pd.DataFrame
    group_keys: tuple[str, ...]
    late_rows: int = 0
    duplicates: int = 0
    watermark: float | None = None
    relative_accuracy: float = 0.01
    sources: int = 1

    def to_records(self) -> list[dict[str, Any]]:
        """Rows as JSON-ready dicts (times as ISO-8601 UTC, NaN as ``None``)."""
        return [
            {str(key): _plain(value) for key, value in record.items()}
            for record in self.frame.to_dict("records")
        ]

    def to_dict(self) -> dict[str, Any]:
        """The table and its footnotes, JSON-ready (what the HTTP API returns)."""
        return {
            "aggregate": self.aggregate,
            "group_by": list(self.group_keys),
            "late_rows": self.late_rows,
            "duplicates": self.duplicates,
            "watermark": _iso(self.watermark),
            "sources": self.sources,
            "quantile_relative_accuracy": self.relative_accuracy,
            "windows": self.to_records(),
        }

    def notes(self) -> list[str]:
        """Footnotes a reader of the table needs."""
        notes = [
            f"{self.late_rows} late row(s) not counted (their window had closed)",
            f"quantiles within ±{self.relative_accuracy:.2%} relative error (DDSketch)",
            f"merged from {self.sources} partition(s); watermark {_iso(self.watermark) or '-'}",
        ]
        if self.duplicates:
            notes.append(f"{self.duplicates} redelivered row(s) counted once")
        return notes

    def format(self, output: OutputFormat = "table") -> str:
        """The table as ``table`` (aligned text), ``csv`` or ``json``."""
        if output == "json":
            return orjson.dumps(self.to_dict(), option=orjson.OPT_INDENT_2).decode()
        frame = self.frame.copy()
        for column in ("window_start", "window_end"):
            if column in frame and not frame.empty:
                frame[column] = frame[column].map(lambda t: t.isoformat())
        if output == "csv":
            return str(frame.to_csv(index=False))
        if output != "table":
            raise OutputError(f"unknown format {output!r}; use table, csv or json")
        if frame.empty:
            body = f"aggregate {self.aggregate}: no windows"
        else:
            for column in ("window_start", "window_end"):
                frame[column] = frame[column].str.slice(0, 16).str.replace("T", " ")
            body = frame.to_string(index=False, float_format=lambda x: f"{x:.4g}", na_rep="-")
        return body + "\n" + "\n".join(f"# {note}" for note in self.notes()) + "\n"


@dataclass
class DrillDown:
    """The calls behind one window (and group): a uniform sample and the worst ``k``."""

    aggregate: str
    window_start: int
    window_end: int
    group: dict[str, Any]
    rows: int
    sample: list[CallRef] = field(default_factory=list)
    worst: list[CallRef] = field(default_factory=list)
    score: str | None = None
    direction: str = "lowest"
    direction_reason: str = ""

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready form."""
        return {
            "aggregate": self.aggregate,
            "window_start": _iso(self.window_start),
            "window_end": _iso(self.window_end),
            "group": self.group,
            "rows": self.rows,
            "score": self.score,
            "worst_direction": self.direction,
            "worst_direction_reason": self.direction_reason,
            "sample": [ref.to_dict() for ref in self.sample],
            "worst": [ref.to_dict() for ref in self.worst],
        }

    def format(self, output: OutputFormat = "table") -> str:
        """As aligned text, CSV (one line per listed call) or JSON."""
        if output == "json":
            return orjson.dumps(self.to_dict(), option=orjson.OPT_INDENT_2).decode()
        lines = [
            {"list": name, **{k: v for k, v in ref.to_dict().items() if k != "group"}}
            for name, refs in (("worst", self.worst), ("sample", self.sample))
            for ref in refs
        ]
        frame = pd.DataFrame(
            lines,
            columns=[
                "list",
                "call_id",
                "trace_id",
                "started_at",
                "trial",
                "score",
                "values",
                "op_refs",
                "errors",
            ],
        )
        if output == "csv":
            return str(frame.to_csv(index=False))
        where = ", ".join(f"{k}={v}" for k, v in self.group.items()) or "all groups"
        head = (
            f"{self.aggregate} [{_iso(self.window_start)}, {_iso(self.window_end)}) {where}: "
            f"{self.rows} row(s); worst {len(self.worst)} by {self.score} ({self.direction} "
            f"first: {self.direction_reason or 'the default'}), sample of {len(self.sample)}"
        )
        return (
            head + "\n" + (frame.to_string(index=False, na_rep="-") if lines else "(none)") + "\n"
        )
