"""Aggregate rows from calls and their derived values: what both runners feed the windows.

A topology's aggregates name, in ``group_by`` and ``metrics``, any of

* a derived column of the topology (``doc_class``, ``faithfulness``): its *primary*
  value -- a mapping with a ``label`` reads as the label (``classify``), one with a
  ``score`` as the score (``judge``), anything else as itself;
* a field inside a column's value (``doc_class.confidence``, ``faithfulness.reason``);
* a field of the call (``op_name``, ``attributes.model``,
  ``summary.usage.gpt-4o-mini.prompt_tokens``), as in column arguments;
* ``duration_seconds``: ``ended_at - started_at`` of the call.

Only the calls the topology's source selects (op name, filter, sample) make rows, one
per call and trial: trial ``t`` carries the values of trial ``t`` of each metric
column that has one, and reads group keys from the nearest trial (``min(t, last)``),
so a deterministic ``doc_class`` groups every trial of a judge but is counted once.
A column whose op failed is an error for that column (``error_rate``), its cost goes
to ``cost_sum``, and its op ref identifies the value for deduplication. The event
time is the call's ``started_at`` (``ended_at`` for an end event whose start never
came).

>>> from weave_stream.topology.spec import Topology
>>> from weave_stream.topology.aggregates import parse_aggregates
>>> specs = parse_aggregates([{"name": "q", "window": "1h", "group_by": ["op_name"],
...                            "metrics": {"duration_seconds": ["mean"]}}], "t")
>>> builder = RowBuilder(Topology("t"), specs)
>>> call = {"id": "c1", "op_name": "extract", "started_at": "2026-11-26T03:00:00Z",
...         "ended_at": "2026-11-26T03:00:02Z"}
>>> [(r.call_id, r.fields, r.values) for r in builder.rows([call], [])]
[('c1', {'op_name': 'extract'}, {'duration_seconds': 2.0})]
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from weave_stream.columns.derive import DerivedValue
from weave_stream.errors import TopologyError
from weave_stream.ingest.call import Call
from weave_stream.topology.aggregates import DURATION, Aggregate, aggregate_key, required_fields
from weave_stream.topology.selection import MISSING, op_name_matches, sampled, walk
from weave_stream.topology.spec import Topology
from weave_stream.windows.rows import AggregateRow

__all__ = ["DURATION", "RowBuilder", "field_of", "primary_value"]

# A call as JSON data (Call.to_dict(), or the valid-calls topic's record decoded).
CallData = Mapping[str, Any]
# (call data, the call's values of one trial by column, its event time) -> a key's value
Reader = Callable[[CallData, Mapping[str, DerivedValue], float], Any]


def primary_value(value: Any) -> Any:
    """What a column's value reads as when named alone: its label, its score, or itself.

    >>> primary_value({"label": "money", "confidence": 0.9}), primary_value({"score": 0.5})
    ('money', 0.5)
    >>> primary_value(3)
    3
    """
    if isinstance(value, Mapping):
        if "label" in value:
            return value["label"]
        if "score" in value:
            return value["score"]
    return value


def field_of(value: Any, path: str) -> Any:
    """The field ``path`` (dotted) of a column's value; its primary value when ``path`` is ``""``.

    >>> field_of({"label": "money", "confidence": 0.9}, "confidence"), field_of({"score": 1}, "")
    (0.9, 1)
    """
    if not path:
        return primary_value(value)
    found = walk(value, path.split("."))
    return None if found is MISSING else found


@dataclass(frozen=True)
class _Key:
    """How one group-by key or metric column is read."""

    text: str
    read: Reader
    column: str | None  # the derived column it comes from, if any


class RowBuilder:
    """Turns calls and their derived values into :class:`AggregateRow` objects for ``specs``.

    Calls are given as :class:`Call` objects or as their JSON data (``Call.to_dict()``,
    or a record of the valid-calls topic decoded): the streaming runner passes data,
    which reads in a few dictionary lookups. Raises :class:`TopologyError` when a key
    is neither a column of the topology nor a call field.
    """

    def __init__(self, topology: Topology, specs: Sequence[Aggregate]) -> None:
        self.topology = topology
        columns = {column.name for column in topology.columns}
        group_keys = {key for spec in specs for key in spec.group_by}
        metric_keys = {key for spec in specs for key in spec.metrics}
        self._fields = [_key(topology, columns, text) for text in sorted(group_keys)]
        self._metrics = [_key(topology, columns, text) for text in sorted(metric_keys)]
        self._costed = {key.text for key in self._metrics if key.text == key.column}
        self._columns = {key.column for key in self._fields + self._metrics if key.column}
        self.keys = required_fields(specs)
        self._op_names: dict[Any, bool] = {}

    def selects(self, call: CallData) -> bool:
        """Whether the topology's source takes ``call`` (op name, filter, sample)."""
        source = self.topology.source
        if source.op_name is not None:
            op_name = call.get("op_name")
            matches = self._op_names.get(op_name)
            if matches is None:
                matches = op_name_matches(source.op_name, op_name)
                if len(self._op_names) < 10_000:  # op names are few; stay bounded anyway
                    self._op_names[op_name] = matches
            if not matches:
                return False
        source_filter = self.topology.source_filter
        if source_filter is not None and not source_filter.matches(call, {}):
            return False
        return sampled(call["id"], source.sample)

    def rows(
        self, calls: Iterable[Call | CallData], values: Iterable[DerivedValue]
    ) -> list[AggregateRow]:
        """The rows of the selected ``calls``, in call order (trials of a call together)."""
        by_call = self.values_by_call(values)
        rows: list[AggregateRow] = []
        for call in calls:
            data = call.to_dict() if isinstance(call, Call) else call
            if self.selects(data):
                rows.extend(self.call_rows(data, by_call.get(data["id"], {})))
        return rows

    def values_by_call(
        self, values: Iterable[DerivedValue]
    ) -> dict[str, dict[str, dict[int, DerivedValue]]]:
        """``{call id: {column: {trial: value}}}`` for the columns the aggregates read."""
        wanted = self._columns
        by_call: dict[str, dict[str, dict[int, DerivedValue]]] = defaultdict(dict)
        for value in values:
            if value.column in wanted:
                by_call[value.call_id].setdefault(value.column, {})[value.trial] = value
        return by_call

    def call_rows(
        self, call: CallData, columns: Mapping[str, Mapping[int, DerivedValue]]
    ) -> list[AggregateRow]:
        """One row per trial of ``call`` (its values by column and trial)."""
        event_time = _event_time(call)
        if event_time is None:
            return []
        if not columns:  # no derived values: the common case of call-field aggregates
            fields = {key.text: key.read(call, {}, event_time) for key in self._fields}
            values = {
                key.text: key.read(call, {}, event_time)
                for key in self._metrics
                if key.column is None
            }
            return [
                AggregateRow(call["id"], event_time, fields, values, trace_id=call.get("trace_id"))
            ]
        trials = 1 + max((max(t) for t in columns.values() if t), default=0)
        rows = []
        for trial in range(trials):
            exact = {name: found[trial] for name, found in columns.items() if trial in found}
            nearest = {
                name: found.get(trial) or found[max(found)]
                for name, found in columns.items()
                if found
            }
            fields = {key.text: key.read(call, nearest, event_time) for key in self._fields}
            values = {}
            errors: list[str] = []
            costs: dict[str, float] = {}
            op_refs: dict[str, str] = {}
            for key in self._metrics:
                if key.column is not None:
                    derived = exact.get(key.column)
                    if derived is None:
                        continue  # no value of this trial (filtered, or fewer trials)
                    op_refs[key.text] = derived.op_ref
                    if key.text in self._costed and derived.cost is not None:
                        costs[key.text] = derived.cost
                    if derived.error is not None:
                        errors.append(key.text)
                        continue
                elif trial:
                    continue  # call fields are counted with trial 0 only
                values[key.text] = key.read(call, exact, event_time)
            rows.append(
                AggregateRow(
                    call["id"],
                    event_time,
                    fields,
                    values,
                    tuple(errors),
                    costs,
                    op_refs,
                    call.get("trace_id"),
                    trial,
                )
            )
        return rows


def _timestamp(value: Any) -> float | None:
    if value is None:
        return None
    if isinstance(value, datetime):
        return value.timestamp()
    if isinstance(value, str):
        return datetime.fromisoformat(value).timestamp()
    return float(value)


def _event_time(call: CallData) -> float | None:
    started = call.get("started_at")
    return _timestamp(started if started is not None else call.get("ended_at"))


def _key(topology: Topology, columns: set[str], text: str) -> _Key:
    try:
        column, parts = aggregate_key(text, columns)
    except ValueError as exc:
        raise TopologyError(f"topology {topology.name!r}, aggregates: {exc}") from None
    if column is not None:
        return _Key(text, _column_reader(column, parts), column)
    if not parts:
        return _Key(text, _duration, None)
    return _Key(text, _call_reader(parts), None)


def _column_reader(column: str, parts: tuple[str, ...]) -> Reader:
    def read(call: CallData, values: Mapping[str, DerivedValue], event_time: float) -> Any:
        derived = values.get(column)
        if derived is None or derived.error is not None:
            return None
        value = derived.value
        if not parts:
            return primary_value(value)
        found = walk(value, parts)
        return None if found is MISSING else found

    return read


def _call_reader(parts: tuple[str, ...]) -> Reader:
    head, rest = parts[0], parts[1:]
    if not rest:
        return lambda call, values, event_time: call.get(head)

    def read(call: CallData, values: Mapping[str, DerivedValue], event_time: float) -> Any:
        found = walk(call.get(head), rest)
        return None if found is MISSING else found

    return read


def _duration(call: CallData, values: Mapping[str, DerivedValue], event_time: float) -> Any:
    started, ended = call.get("started_at"), call.get("ended_at")
    if started is None or ended is None:
        return None
    if isinstance(started, str) and isinstance(ended, str):
        # Subtract the times, not two epoch floats: exact to the microsecond.
        return (datetime.fromisoformat(ended) - datetime.fromisoformat(started)).total_seconds()
    if isinstance(started, datetime) and isinstance(ended, datetime):
        return (ended - started).total_seconds()
    end = _timestamp(ended)
    return None if end is None else end - event_time
