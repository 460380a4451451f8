"""Datasets "from now on", running: match calls to rules, add them once, capped, batched.

::

    topology worker: each batch's calls + values ─► candidates(rules, ...) ─► <prefix>.datasets
    store sink: <prefix>.datasets ─► apply_candidates(...) ─► one version per dataset and batch,
                committed with the source offsets (Delta app transactions)

The sink's offsets and the rows commit together, and a call already in a dataset is
never added again, so a SIGKILL, a restart or a replay leaves each call in a dataset
at most once. The cap counts what the table holds; a dataset's versions are fenced
against concurrent writers (see :mod:`weave_stream.datasets.events`), so it holds with
several workers. A writer may keep the datasets' states between batches
(:class:`StateCache`): a state another writer has moved on is caught by that fence,
dropped and read again.
"""

from __future__ import annotations

import logging
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

import orjson

from weave_stream.columns.derive import DerivedValue
from weave_stream.datasets.events import (
    ATTEMPTS,
    DatasetConflictError,
    DatasetState,
    NewRow,
    backoff,
    commit_changes,
    load_states,
    version_events,
)
from weave_stream.errors import FencedError
from weave_stream.ingest.call import Call
from weave_stream.metrics import DATASET_CANDIDATES
from weave_stream.store.tables import Store
from weave_stream.topology.datasets import DatasetRule
from weave_stream.topology.selection import FieldPath, MissingFieldError

__all__ = ["Candidate", "StateCache", "apply_candidates", "candidates"]

log = logging.getLogger(__name__)

StateCache = dict[str, DatasetState]
"""Datasets' states kept between batches by one writer (the sink's)."""


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
    cache: StateCache | None = None,
) -> dict[str, int]:
    """Add ``found`` to their datasets: one version per dataset, one Delta commit, with
    ``txns`` (the sink's offsets; ``expect``: the versions it last saw, else
    :class:`FencedError`). ``cache`` keeps the states between calls. Returns rows added
    per dataset."""
    names = sorted({c.dataset for c in found})
    cache = {} if cache is None else cache
    for attempt in range(ATTEMPTS):
        missing = [name for name in names if name not in cache]
        cache.update(load_states(store, missing))
        states = {name: cache[name] for name in names}
        changes: dict[str, tuple[int | None, list[dict[str, Any]]]] = {}
        outcomes: dict[tuple[str, str], int] = {}
        for name in names:
            mine = [c for c in found if c.dataset == name]
            planned = _plan(states[name], mine, outcomes)
            if planned is not None:
                changes[name] = planned
        try:
            commit_changes(store, changes, txns, expect)
        except (DatasetConflictError, FencedError) as exc:
            for name in names:  # planned as if committed: read them again
                cache.pop(name, None)
            if isinstance(exc, FencedError):
                raise
            backoff(attempt)
            continue  # another worker made a version of one of them: plan again
        for (dataset, outcome), count in outcomes.items():
            DATASET_CANDIDATES.labels(dataset, outcome).inc(count)
        return {name: outcomes.get((name, "added"), 0) for name in names}
    raise FencedError(f"datasets {names}: {ATTEMPTS} commits in a row lost to other writers")


def _plan(
    state: DatasetState, found: list[Candidate], outcomes: dict[tuple[str, str], int]
) -> tuple[int | None, list[dict[str, Any]]] | None:
    name = state.name

    def count(outcome: str, n: int = 1) -> None:
        outcomes[(name, outcome)] = outcomes.get((name, outcome), 0) + n

    mapping = state.mapping if state.exists else dict(found[0].mapping)
    refused = [c for c in found if dict(c.mapping) != mapping]
    if refused:
        log.error(
            "dataset %r remembers the mapping %s; rule %s maps %s: %d calls not added "
            "(rename the rule's dataset, or make the mappings agree)",
            name,
            mapping,
            refused[0].rule,
            dict(refused[0].mapping),
            len(refused),
        )
        count("refused", len(refused))
        found = [c for c in found if dict(c.mapping) == mapping]
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
    if not rows:
        return None  # nothing new (and a dataset is made with its first row)
    built_on = state.version
    first = next(c for c in found if c.call_id == rows[0].call_id)
    source = {"kind": "rule", "rule": first.rule, "cap": first.cap}
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
