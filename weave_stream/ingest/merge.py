"""The merge of a start event and an end event of one call into the complete call.

Every field of both halves is kept. A field only one half has comes from it; a field
both have with the same value is taken once. A field both have with *different*
values is a conflict: the end's value wins for what the end reports (``ended_at``,
``exception``, ``output``, ``summary``, ``wb_run_step_end``, ``is_eval``), the start's
for everything else (``project_id``, ``trace_id``, ``started_at``, ...), and the kept
and the dropped value are written into the call's ``attributes.weave_stream
.merge_conflicts``, so a reader sees the disagreement. The merged call then passes the
checks a complete call passes (``ended_at`` not before ``started_at``, ...).

>>> from weave_stream.ingest.call import parse_call
>>> start = parse_call(b'{"start": {"id": "c1", "trace_id": "t1", "started_at": 1795662000,'
...                    b' "inputs": {"q": "hi"}}}')
>>> end = parse_call(b'{"end": {"id": "c1", "trace_id": "t2", "started_at": 1795662000,'
...                  b' "ended_at": 1795662001, "output": "hello"}}')
>>> merged = merge_halves(start, end)
>>> merged.call.kind, merged.call.inputs, merged.call.output, merged.call.trace_id
('complete', {'q': 'hi'}, 'hello', 't1')
>>> merged.conflicts
(FieldConflict(field='trace_id', kept='t1', dropped='t2'),)
>>> merged.call.attributes["weave_stream"]["merge_conflicts"]
{'trace_id': {'kept': 't1', 'dropped': 't2'}}
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from weave_stream.errors import IngestError
from weave_stream.ingest.call import MARKER, Call, build_call, mark

__all__ = ["END_FIELDS", "FieldConflict", "Merged", "merge", "merge_halves", "merged_fields"]

END_FIELDS = frozenset({"ended_at", "exception", "output", "summary", "wb_run_step_end", "is_eval"})
"""Fields the end event reports: on a conflict its value is kept."""


@dataclass(frozen=True)
class FieldConflict:
    """A field the two halves of a call disagree on (JSON values)."""

    field: str
    kept: Any
    dropped: Any


@dataclass(frozen=True)
class Merged:
    """The complete call and the fields its halves disagreed on."""

    call: Call
    conflicts: tuple[FieldConflict, ...]


def merged_fields(start: Call, end: Call) -> tuple[dict[str, Any], tuple[FieldConflict, ...]]:
    """The merged call's fields (JSON values, conflicts marked) and the conflicts."""
    if start.id != end.id:
        raise IngestError(
            f"cannot merge calls {start.id!r} and {end.id!r}: ids differ; merge the start and "
            "end events of one call"
        )
    fields = start.model_dump(mode="json", exclude_none=True)
    ended = end.model_dump(mode="json", exclude_none=True)
    notes = _take_notes(ended, into=_take_notes(fields))
    conflicts = []
    for name, value in ended.items():
        held = fields.get(name)
        if held is None:
            fields[name] = value
        elif held != value:
            if name in END_FIELDS:
                fields[name] = value
                conflicts.append(FieldConflict(name, value, held))
            else:
                conflicts.append(FieldConflict(name, held, value))
    if conflicts:
        notes["merge_conflicts"] = {
            c.field: {"kept": c.kept, "dropped": c.dropped} for c in conflicts
        }
    if notes:
        fields = mark(fields, **notes)
    return fields, tuple(conflicts)


def _take_notes(fields: dict[str, Any], into: dict[str, Any] | None = None) -> dict[str, Any]:
    """Remove weave-stream's notes from ``fields``' attributes; add them to ``into``.

    Each half may carry notes (e.g. the numbers replaced in it); they describe the
    merged call together, so they are combined instead of compared. ``half`` is dropped:
    the merged call is complete.
    """
    notes = {} if into is None else into
    attributes = fields.get("attributes")
    if not isinstance(attributes, dict) or not isinstance(attributes.get(MARKER), dict):
        return notes
    attributes = {k: v for k, v in attributes.items() if k != MARKER}
    for name, value in fields["attributes"][MARKER].items():
        if name == "half":
            continue
        if isinstance(value, list):
            notes[name] = [*notes.get(name, []), *value]
        elif isinstance(value, dict):
            notes[name] = {**notes.get(name, {}), **value}
        else:
            notes[name] = value
    if attributes:
        fields["attributes"] = attributes
    else:
        del fields["attributes"]
    return notes


def merge_halves(start: Call, end: Call) -> Merged:
    """Join the halves; raise ``CallValidationError`` if the result is not a valid call."""
    fields, conflicts = merged_fields(start, end)
    return Merged(build_call(fields, "complete"), conflicts)


def merge(start: Call, end: Call) -> Call:
    """The complete call of ``start`` and ``end`` (see :func:`merge_halves`)."""
    return merge_halves(start, end).call
