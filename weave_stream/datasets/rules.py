"""Datasets "from now on": a topology's ``datasets:`` rules, matched and applied exactly once.

A topology may declare, in YAML::

    datasets:
      - name: low-judge-scores                # the dataset (made with its first rows)
        filter: {columns.faithfulness.score: {lt: 0.4}}   # over the call and its columns
        sample: 0.5                           # deterministic by call id (and dataset)
        cap: {rows: 50, per: 1d}              # at most 50 rows per day of the calls' time
        mapping:                              # row field -> call path or columns.<name>...
          document: inputs.document
          score: columns.faithfulness.score

Where it runs::

    topology worker: each batch's calls + values ─► candidates(rules, ...) ─► <prefix>.datasets
    store sink: <prefix>.datasets ─► apply_candidates(...) ─► one version per dataset and batch,
                committed with the source offsets (Delta app transactions)

The sink's offsets and the rows commit together, and a call already in a dataset is
never added again, so a SIGKILL, a restart or a replay leaves each call in a dataset
at most once; the cap counts what the table holds (a dataset's versions are fenced
against concurrent writers, see :mod:`weave_stream.datasets.events`). The dataset
remembers the mapping in the store's vocabulary (``columns.faithfulness.score`` of
topology ``text_extract`` is ``text_extract.faithfulness.score``), so
``weave-stream dataset add NAME --from-calls ...`` reuses it.

>>> rules = parse_rules("t", [{"name": "low", "filter": {"columns.s": {"lt": 0.4}},
...                            "cap": {"rows": 2, "per": "1d"},
...                            "mapping": {"text": "inputs.text", "s": "columns.s"}}], {"s"})
>>> rules[0].stored_mapping, rules[0].cap
({'text': 'inputs.text', 's': 't.s'}, (2, 86400))
>>> parse_rules("t", [{"name": "x", "sample": 2, "mapping": {"a": "columns.nope"}}], {"s"})
Traceback (most recent call last):
...
weave_stream.errors.TopologyError: topology 't' has invalid datasets:
  dataset 'x', field sample: a sampling rate is a number in (0, 1], got 2
  dataset 'x', field mapping.a: reads column 'nope'; the topology's columns: s
"""

from __future__ import annotations

import logging
from collections.abc import Collection, Iterable, Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

import orjson

from weave_stream import metrics
from weave_stream.columns.derive import DerivedValue
from weave_stream.datasets.events import (
    RESERVED_FIELDS,
    DatasetConflict,
    DatasetState,
    NewRow,
    check_name,
    commit_changes,
    load_states,
    version_events,
)
from weave_stream.errors import DatasetError, TopologyError
from weave_stream.ingest.call import Call
from weave_stream.store.tables import Store
from weave_stream.store.writer import FencedError
from weave_stream.topology.selection import (
    FieldPath,
    Filter,
    MissingFieldError,
    compile_filter,
    sample_point,
)
from weave_stream.windows.spec import parse_duration

__all__ = ["Candidate", "DatasetRule", "apply_candidates", "candidates", "parse_rules"]

log = logging.getLogger(__name__)

_KEYS = frozenset({"name", "filter", "sample", "cap", "mapping"})
ATTEMPTS = 8


@dataclass(frozen=True)
class DatasetRule:
    """One validated ``datasets:`` entry of a topology."""

    topology: str
    name: str
    filter: Filter | None
    sample: float
    cap: tuple[int, int] | None  # (rows, per seconds)
    mapping: Mapping[str, FieldPath]
    stored_mapping: Mapping[str, str]  # the same, in the calls() vocabulary

    @property
    def rule(self) -> str:
        """``<topology>/<dataset>``: what the rows it adds are marked with."""
        return f"{self.topology}/{self.name}"

    def sampled(self, call_id: str) -> bool:
        """Deterministic by call id; salted by the dataset, so two datasets (or a dataset
        and the topology's own sampling) at the same rate keep independent calls."""
        return self.sample >= 1.0 or sample_point(f"{self.name}\0{call_id}") < self.sample


def parse_rules(
    topology: str, entries: Iterable[Mapping[str, Any]], columns: Collection[str]
) -> tuple[DatasetRule, ...]:
    """Validate ``datasets:`` entries against the topology's ``columns``; one
    :class:`TopologyError` lists every problem (names the dataset and the field)."""
    problems: list[str] = []
    rules = []
    seen: set[str] = set()
    for index, entry in enumerate(entries):
        rule = _parse(topology, index, entry, set(columns), problems)
        if rule is not None:
            if rule.name in seen:
                problems.append(f"dataset {rule.name!r}: declared twice; merge the entries")
            seen.add(rule.name)
            rules.append(rule)
    if problems:
        listing = "\n  ".join(problems)
        raise TopologyError(f"topology {topology!r} has invalid datasets:\n  {listing}")
    return tuple(rules)


def _parse(
    topology: str, index: int, entry: Any, columns: set[str], problems: list[str]
) -> DatasetRule | None:
    if not isinstance(entry, Mapping):
        problems.append(f"datasets[{index}]: must be a mapping, got {entry!r:.80}")
        return None
    where = f"dataset {entry.get('name', index)!r}"
    count = len(problems)
    unknown = sorted(set(entry) - _KEYS)
    if unknown:
        problems.append(f"{where}: unknown fields {unknown}; a dataset has {sorted(_KEYS)}")
    try:
        name = check_name(entry.get("name"))
    except DatasetError as exc:
        problems.append(f"{where}, field name: {exc}")
        name = ""
    rate = entry.get("sample", 1.0)
    if isinstance(rate, bool) or not isinstance(rate, int | float) or not 0 < rate <= 1:
        problems.append(
            f"{where}, field sample: a sampling rate is a number in (0, 1], got {rate!r}"
        )
    cap = _cap(entry.get("cap"), where, problems)
    rule_filter = None
    if entry.get("filter") is not None:
        try:
            rule_filter = compile_filter(entry["filter"])
        except ValueError as exc:
            problems.append(f"{where}, field filter: {exc}")
        else:
            for path in rule_filter.paths:
                _known_column(path, f"{where}, field filter", columns, problems)
    mapping: dict[str, FieldPath] = {}
    raw = entry.get("mapping")
    if not isinstance(raw, Mapping) or not raw:
        problems.append(
            f"{where}, field mapping: map each row field to a call path or a column, e.g. "
            "{document: inputs.document, score: columns.faithfulness.score}"
        )
        raw = {}
    for field, text in raw.items():
        if not isinstance(field, str) or not field or field in RESERVED_FIELDS:
            problems.append(
                f"{where}, field mapping: {field!r} cannot name a field (every row has "
                f"{', '.join(sorted(RESERVED_FIELDS))})"
            )
            continue
        try:
            path = FieldPath.parse(text)
        except ValueError as exc:
            problems.append(f"{where}, field mapping.{field}: {exc}")
            continue
        if _known_column(path, f"{where}, field mapping.{field}", columns, problems):
            mapping[field] = path
    if len(problems) > count:
        return None
    stored = {field: _stored(topology, path) for field, path in mapping.items()}
    return DatasetRule(topology, name, rule_filter, float(rate), cap, mapping, stored)


def _cap(value: Any, where: str, problems: list[str]) -> tuple[int, int] | None:
    if value is None:
        return None
    if not isinstance(value, Mapping) or set(value) != {"rows", "per"}:
        problems.append(f"{where}, field cap: write {{rows: 50, per: 1d}}, got {value!r:.80}")
        return None
    rows = value["rows"]
    if isinstance(rows, bool) or not isinstance(rows, int) or rows < 1:
        problems.append(f"{where}, field cap.rows: a whole number >= 1, got {rows!r}")
        return None
    try:
        per = parse_duration(value["per"])
    except ValueError as exc:
        problems.append(f"{where}, field cap.per: {exc}")
        return None
    if per < 1:
        problems.append(f"{where}, field cap.per: at least one second, got {value['per']!r}")
        return None
    return rows, per


def _known_column(path: FieldPath, where: str, columns: set[str], problems: list[str]) -> bool:
    if path.column is not None and path.column not in columns:
        problems.append(
            f"{where}: reads column {path.column!r}; the topology's columns: "
            f"{', '.join(sorted(columns)) or 'none'}"
        )
        return False
    return True


def _stored(topology: str, path: FieldPath) -> str:
    if path.column is None:
        return path.text
    return ".".join([topology, path.column, *path.parts])


@dataclass(frozen=True)
class Candidate:
    """A call a rule matched, with its mapped fields: what ``<prefix>.datasets`` carries."""

    dataset: str
    rule: str
    call_id: str
    fields: Mapping[str, Any]
    mapping: Mapping[str, str]
    cap: tuple[int, int] | None = None
    trace_id: str | None = None
    call_ref: str | None = None
    started_at: datetime | None = None

    def to_json(self) -> bytes:
        """The record's value."""
        data = {
            **vars(self),
            "started_at": self.started_at.isoformat() if self.started_at else None,
        }
        return orjson.dumps(data, option=orjson.OPT_SERIALIZE_NUMPY | orjson.OPT_NON_STR_KEYS)

    @classmethod
    def from_json(cls, raw: bytes | str) -> Candidate:
        """The candidate a record holds."""
        data = orjson.loads(raw)
        started = data.get("started_at")
        return cls(
            dataset=data["dataset"],
            rule=data["rule"],
            call_id=data["call_id"],
            fields=data["fields"],
            mapping=data["mapping"],
            cap=(int(data["cap"][0]), int(data["cap"][1])) if data.get("cap") else None,
            trace_id=data.get("trace_id"),
            call_ref=data.get("call_ref"),
            started_at=datetime.fromisoformat(started) if started else None,
        )


def candidates(
    rules: Sequence[DatasetRule], calls: Sequence[Call], values: Iterable[DerivedValue]
) -> list[Candidate]:
    """The calls each rule keeps (filter, then sampling), with their mapped fields: a
    column's value is its first trial's, when it succeeded."""
    if not rules:
        return []
    by_call: dict[str, dict[str, Any]] = {}
    for value in values:
        if value.trial == 0 and value.error is None:
            by_call.setdefault(value.call_id, {})[value.column] = value.value
    found = []
    for call in calls:
        data = call.to_dict()
        columns = by_call.get(call.id, {})
        for rule in rules:
            if rule.filter is not None and not rule.filter.matches(data, columns):
                continue
            if not rule.sampled(call.id):
                continue
            found.append(
                Candidate(
                    dataset=rule.name,
                    rule=rule.rule,
                    call_id=call.id,
                    fields={f: _resolve(p, data, columns) for f, p in rule.mapping.items()},
                    mapping=rule.stored_mapping,
                    cap=rule.cap,
                    trace_id=call.trace_id,
                    call_ref=f"weave:///{call.project_id}/call/{call.id}"
                    if call.project_id
                    else None,
                    started_at=call.started_at,
                )
            )
    return found


def _resolve(path: FieldPath, call: Mapping[str, Any], columns: Mapping[str, Any]) -> Any:
    try:
        return path.resolve(call, columns)
    except MissingFieldError:
        return None  # this call lacks the field: the row holds null


def apply_candidates(
    store: Store,
    found: Sequence[Candidate],
    *,
    txns: Mapping[str, int] | None = None,
    expect: Mapping[str, int | None] | None = None,
) -> dict[str, int]:
    """Add ``found`` to their datasets: one version per dataset, one Delta commit, with
    ``txns`` (the sink's offsets; ``expect``: the versions it last saw, else
    :class:`FencedError`). Returns rows added per dataset."""
    names = sorted({c.dataset for c in found})
    for _ in range(ATTEMPTS):
        states = load_states(store, names)
        changes: dict[str, tuple[int | None, list[dict[str, Any]]]] = {}
        outcomes: dict[tuple[str, str], int] = {}
        for name in names:
            mine = [c for c in found if c.dataset == name]
            planned = _plan(states[name], mine, outcomes)
            if planned is not None:
                changes[name] = planned
        try:
            commit_changes(store, changes, txns, expect)
        except DatasetConflict:
            continue  # another worker made a version of one of them: plan again
        for (dataset, outcome), count in outcomes.items():
            metrics.DATASET_CANDIDATES.labels(dataset, outcome).inc(count)
        return {name: outcomes.get((name, "added"), 0) for name in names}
    raise FencedError(f"datasets {names}: {ATTEMPTS} commits in a row lost to other writers")


def _plan(
    state: DatasetState, found: list[Candidate], outcomes: dict[tuple[str, str], int]
) -> tuple[int | None, list[dict[str, Any]]] | None:
    name = state.name

    def count(outcome: str, n: int = 1) -> None:
        outcomes[(name, outcome)] = outcomes.get((name, outcome), 0) + n

    mapping = dict(found[0].mapping)
    if state.exists and state.mapping != mapping:
        log.error(
            "dataset %r remembers the mapping %s; rule %s maps %s: %d calls not added "
            "(rename the rule's dataset, or make the mappings agree)",
            name,
            state.mapping,
            found[0].rule,
            mapping,
            len(found),
        )
        count("refused", len(found))
        return None
    rows, seen = [], set(state.call_ids)
    used: dict[tuple[str, int], int] = {}
    for candidate in found:
        if candidate.call_id in seen:
            count("duplicate")
            continue
        if candidate.cap is not None and not _room(state, candidate, used):
            count("capped")
            continue
        seen.add(candidate.call_id)
        rows.append(
            NewRow(
                candidate.call_id,
                candidate.fields,
                candidate.call_ref,
                candidate.trace_id,
                candidate.started_at,
                candidate.rule,
            )
        )
    count("added", len(rows))
    if not rows and state.exists:
        return None
    if not rows:
        return None  # a dataset is made with its first row
    built_on = state.version
    source = {"kind": "rule", "rule": found[0].rule, "cap": found[0].cap}
    planned = version_events(state, rows, mapping=mapping, source=source)
    return None if planned is None else (built_on, planned[0])


def _room(state: DatasetState, candidate: Candidate, used: dict[tuple[str, int], int]) -> bool:
    """Whether the cap of ``candidate``'s period has room (and take it)."""
    assert candidate.cap is not None
    rows, per = candidate.cap
    moment = candidate.started_at or datetime.now(UTC)
    bucket = int(moment.timestamp() // per)
    key = (candidate.rule, bucket)
    if key not in used:
        held = state.started.get(candidate.rule, [])
        used[key] = sum(1 for t in held if int(t.timestamp() // per) == bucket)
    if used[key] >= rows:
        return False
    used[key] += 1
    return True
