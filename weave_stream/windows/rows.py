"""What aggregates read per call (:class:`AggregateRow`); what drill-down lists (:class:`CallRef`).

A row is built by the runner from a call and its derived values: the event time
(the call's ``started_at``), the group-by fields, and per metric column its value,
whether its op failed, its cost and its op ref. Rows are plain slotted objects, not
pydantic models: they are made and read once per call on the hot path.

>>> row = AggregateRow("c1", 1795662000.0, {"doc_class": "invoice"},
...                    values={"score": 0.8}, op_refs={"score": "judge:v1"})
>>> ref = CallRef.from_entry(entry_of(row, ("invoice",), ("score",)))
>>> ref.call_id, ref.group, ref.values, ref.op_refs
('c1', ('invoice',), {'score': 0.8}, {'score': 'judge:v1'})
"""

from __future__ import annotations

from collections.abc import Collection, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

from weave_stream.ingest.call import parse_timestamp

__all__ = ["AggregateRow", "CallRef", "Entry", "entry_of"]

# A sampled call as kept in a bucket (compact, JSON-ready):
# [call_id, trace_id, event_time, trial, group, values, op_refs, errors]
Entry = list[Any]


@dataclass(slots=True)
class AggregateRow:
    """One call's inputs to the aggregates of a topology (treat as immutable).

    ``fields`` holds the group-by keys (derived columns or dotted call fields such as
    ``op_name`` or ``attributes.model``); ``values`` the metric columns (numbers for
    numeric metrics, anything for ``counts``; ``None`` means "not computed"); ``errors``
    the columns whose op failed on this call; ``costs`` the dollars spent per column.
    A row is identified by ``(call_id, column, op_ref, trial)`` per column it carries.
    """

    call_id: str
    event_time: float
    fields: Mapping[str, Any] = field(default_factory=dict)
    values: Mapping[str, Any] = field(default_factory=dict)
    errors: Collection[str] = ()
    costs: Mapping[str, float] = field(default_factory=dict)
    op_refs: Mapping[str, str] = field(default_factory=dict)
    trace_id: str | None = None
    trial: int = 0

    def columns(self) -> set[str]:
        """Every column this row says something about (a value or an error)."""
        carried = {name for name, value in self.values.items() if value is not None}
        carried.update(self.errors)
        return carried

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> AggregateRow:
        """A row from plain data (a JSONL line); ``event_time`` is ISO-8601 or epoch seconds.

        >>> row = AggregateRow.from_dict({"call_id": "c", "event_time": "2026-11-26T03:00:00Z"})
        >>> row.event_time
        1795662000.0
        """
        return cls(
            call_id=str(data["call_id"]),
            event_time=parse_timestamp(data["event_time"]).timestamp(),
            fields=dict(data.get("fields") or {}),
            values=dict(data.get("values") or {}),
            errors=tuple(data.get("errors") or ()),
            costs=dict(data.get("costs") or {}),
            op_refs=dict(data.get("op_refs") or {}),
            trace_id=data.get("trace_id"),
            trial=int(data.get("trial") or 0),
        )


def entry_of(row: AggregateRow, group: Sequence[Any], columns: Sequence[str]) -> Entry:
    """The compact drill-down record of ``row`` in a bucket of ``group``, keeping ``columns``."""
    values = row.values
    kept = {name: values[name] for name in columns if values.get(name) is not None}
    refs = {name: row.op_refs[name] for name in columns if name in row.op_refs}
    errors = [name for name in columns if name in row.errors]
    return [row.call_id, row.trace_id, row.event_time, row.trial, list(group), kept, refs, errors]


@dataclass(frozen=True)
class CallRef:
    """A call behind a bucket, as drill-down lists it."""

    call_id: str
    trace_id: str | None
    event_time: float
    trial: int
    group: tuple[Any, ...]
    values: dict[str, Any]
    op_refs: dict[str, str]
    errors: tuple[str, ...] = ()
    score: float | None = None

    @classmethod
    def from_entry(cls, entry: Entry, score: float | None = None) -> CallRef:
        """Rebuild from a bucket's compact entry."""
        call_id, trace_id, event_time, trial, group, values, refs, errors = entry
        return cls(
            call_id,
            trace_id,
            float(event_time),
            int(trial),
            tuple(group),
            dict(values),
            dict(refs),
            tuple(errors),
            score,
        )

    @property
    def started_at(self) -> datetime:
        """The event time as an aware UTC datetime."""
        return datetime.fromtimestamp(self.event_time, tz=UTC)

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready form (event time as ISO-8601 UTC)."""
        return {
            "call_id": self.call_id,
            "trace_id": self.trace_id,
            "started_at": self.started_at.isoformat(),
            "trial": self.trial,
            "group": list(self.group),
            "values": self.values,
            "op_refs": self.op_refs,
            "errors": list(self.errors),
            "score": self.score,
        }
