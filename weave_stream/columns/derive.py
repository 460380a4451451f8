"""Compute the columns of a topology for a batch of calls: the core both runners share.

:func:`derive_batch` selects the calls of the topology's source (op name, filter,
deterministic sample), then walks the column DAG level by level (the columns of
one level run concurrently). For each column it resolves every in-scope call's
arguments, looks up all keys (op ref, input digest, trial) in the cache in one
batch, runs only the misses — each distinct input once — through the op with its
policy, stores the successes, and returns one :class:`DerivedValue` per (call,
column, trial). Failures are values with an ``error``, never gaps; a call outside a
column's filter or sample gets no value for it (and is counted as filtered).

Rules the streaming runner relies on too:

* a column's sample is relative to the source's: a call is kept when its fixed
  point (:func:`~weave_stream.topology.selection.sample_point`) is below source x column rate;
* trial ``t`` of a column reads trial ``min(t, trials - 1)`` of each column it
  depends on; a column filter reads trial 0;
* a dependency that failed makes the dependent value an error (the op is not run);
  a dependency with no value (filtered) leaves the dependent without one;
* deterministic ops have one trial of their own, whatever is asked; a deterministic
  column that reads a column with trials gets one value per trial of what it reads (a
  scorer of a judge's trials scores every trial), keyed as trial 0 in the cache (the
  inputs decide its value, so two trials with the same inputs are computed once).

Pass a :class:`DeriveStats` to learn, per column, where each value came from. Every
value in scope (*matched*) is exactly one of: *cached* (found in the cache),
*deduplicated* (the same op input as another value of its batch: computed once,
shared), *computed* (an op evaluation ran for it; in a survey: *to compute*) or *not
computable* (an argument missing, or a column it reads failed: the op never ran).
*Errors* are counted apart: values with an error, whatever the cause (a computed
evaluation that failed, its shared copies, every not computable value).

The walk is a *run* for ops that call ops: their sub-calls go through the same cache
and are batched across parents by a :class:`~weave_stream.columns.subcalls.SubCallScheduler`.
Pass ``sub_calls=[]`` to receive them as :class:`DerivedValue` records of the column
whose op made them (``parent_ref`` and ``position`` place each in its tree); what
they cost is counted in the column's cost. A computed parent's direct sub-calls are
also noted in the cache (:func:`~weave_stream.columns.subcalls.call_index`) for cost plans.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

from pydantic import BaseModel, ConfigDict

from weave_stream.columns.cache import CachedValue, CacheKey, ResultCache, cache_key
from weave_stream.columns.subcalls import (
    SubCallScheduler,
    SubOpStats,
    call_index,
    flatten,
    spent_usd,
)
from weave_stream.errors import MissingFieldError, TopologyError
from weave_stream.ingest.call import Call
from weave_stream.metrics import DERIVED_COST_USD, DERIVED_VALUES
from weave_stream.ops.base import OpResult
from weave_stream.ops.execute import run_op
from weave_stream.topology.selection import op_name_matches, sampled
from weave_stream.topology.spec import CompiledColumn, Topology

__all__ = [
    "ColumnStats",
    "DeriveStats",
    "DerivedValue",
    "Trials",
    "derive_batch",
    "expected_values",
    "survey_batch",
]

Trials = int | Mapping[str, int] | None


class DerivedValue(BaseModel):
    """One value of one column for one call and trial, with how it was obtained.

    >>> v = DerivedValue(call_id="c1", topology="t", column="n", op_ref="n:abc", value=3,
    ...                  computed_at=datetime(2026, 1, 1, tzinfo=UTC))
    >>> DerivedValue.from_json(v.to_json()) == v
    True
    """

    model_config = ConfigDict(frozen=True)

    call_id: str
    trace_id: str | None = None
    topology: str
    column: str
    op_ref: str
    trial: int = 0
    value: Any = None
    error: str | None = None
    latency_ms: float | None = None
    cost: float | None = None
    computed_at: datetime
    started_at: datetime | None = None
    details: dict[str, Any] = {}
    cached: bool = False
    # The digest of the op's inputs: with op_ref and trial, the value's cache key. None
    # when the op never ran (an upstream column failed, or an argument was missing).
    input_digest: str | None = None
    # A sub-call (an op called by the column's op, see columns/subcalls.py): the ref of
    # the op that called it and its place in the tree ("1.0": the first call made by the
    # column op's second call). None for the column's own value.
    parent_ref: str | None = None
    position: str | None = None

    def to_json(self) -> bytes:
        """JSON, as the derived topics carry it."""
        return self.model_dump_json().encode()

    @classmethod
    def from_json(cls, raw: bytes | str) -> DerivedValue:
        """Inverse of :meth:`to_json`."""
        return cls.model_validate_json(raw)

    def cache_entry(self) -> tuple[CacheKey, CachedValue] | None:
        """The result cache's entry for this value, as the runners' caches key it; None
        for an error or a value whose op never ran (nothing to reuse)."""
        if self.error is not None or self.input_digest is None:
            return None
        key = CacheKey(self.op_ref, self.input_digest, self.trial)
        found = CachedValue(
            self.value, self.latency_ms, self.cost, self.details, self.computed_at.timestamp()
        )
        return key, found


@dataclass
class ColumnStats:
    """What happened to one column (see the module docstring for the words).

    ``values`` (matched) = ``cache_hits`` + ``deduplicated`` + ``computed`` +
    ``not_computable``; ``errors`` and ``failed`` are counted apart.
    """

    values: int = 0
    filtered: int = 0
    cache_hits: int = 0
    deduplicated: int = 0  # same input as another value of the batch: computed once
    computed: int = 0  # distinct op evaluations run (in a survey: that would run)
    not_computable: int = 0  # the op could not run: an argument missing, a dependency failed
    errors: int = 0  # values with an error, whatever the cause
    failed: int = 0  # evaluations that returned an error (part of computed)
    cost_usd: float = 0.0
    pending_inputs: list[dict[str, Any]] = field(default_factory=list, repr=False)  # survey only
    pending_keys: list[CacheKey | None] = field(default_factory=list, repr=False)  # the same's
    sub_calls: int = 0  # calls its op made of other ops (records)


@dataclass
class DeriveStats:
    """Counts over one or more batches, per column."""

    calls: int = 0
    matched: int = 0
    columns: dict[str, ColumnStats] = field(default_factory=dict)
    sub_ops: dict[str, SubOpStats] = field(default_factory=dict)  # by the called op's ref
    # Survey only: keys an earlier batch would compute (a later batch finds them cached).
    planned: set[CacheKey] = field(default_factory=set, repr=False)

    @property
    def values(self) -> int:
        """Values in scope, over all columns."""
        return sum(c.values for c in self.columns.values())

    @property
    def computed(self) -> int:
        """Op evaluations run, over all columns."""
        return sum(c.computed for c in self.columns.values())

    @property
    def cache_hits(self) -> int:
        """Values found in the cache, over all columns."""
        return sum(c.cache_hits for c in self.columns.values())

    @property
    def deduplicated(self) -> int:
        """Values that shared an evaluation within their batch, over all columns."""
        return sum(c.deduplicated for c in self.columns.values())

    @property
    def not_computable(self) -> int:
        """Values whose op could not run, over all columns."""
        return sum(c.not_computable for c in self.columns.values())

    @property
    def errors(self) -> int:
        """Values with an error, over all columns."""
        return sum(c.errors for c in self.columns.values())

    def summary(self) -> str:
        """One line that adds up: values = cached + deduplicated + computed + not computable.

        >>> stats = DeriveStats()
        >>> stats.column("n").values, stats.column("n").cache_hits = 5, 2
        >>> stats.column("n").computed, stats.column("n").deduplicated = 2, 1
        >>> stats.summary()
        '5 values = 2 cached + 1 deduplicated + 2 computed + 0 not computable; 0 errors'
        """
        return (
            f"{self.values} values = {self.cache_hits} cached + {self.deduplicated} "
            f"deduplicated + {self.computed} computed + {self.not_computable} not computable; "
            f"{self.errors} errors"
        )

    def column(self, name: str) -> ColumnStats:
        """The stats of column ``name`` (created empty)."""
        return self.columns.setdefault(name, ColumnStats())


async def derive_batch(
    topology: Topology,
    calls: Sequence[Call],
    cache: ResultCache,
    *,
    trials: Trials = None,
    stats: DeriveStats | None = None,
    sub_calls: list[DerivedValue] | None = None,
) -> list[DerivedValue]:
    """Every value of every column of ``topology`` for ``calls``; see the module docstring.

    ``sub_calls``, when given, receives the records of the calls the ops made of ops.
    """
    walk = _Walk(topology, calls, cache, trials, stats or DeriveStats(), dry_run=False)
    async with SubCallScheduler.open(cache, walk.stats.sub_ops) as scheduler:
        walk.scheduler = scheduler
        values = await walk.run()
    if sub_calls is not None:
        sub_calls.extend(walk.children)
    return values


async def survey_batch(
    topology: Topology,
    calls: Sequence[Call],
    cache: ResultCache,
    *,
    trials: Trials = None,
    stats: DeriveStats | None = None,
) -> DeriveStats:
    """What :func:`derive_batch` would do, without running any op (for cost plans).

    Each column's ``pending_inputs`` are the distinct inputs it would compute; a
    column reading a value not computed yet counts every such input as to compute.
    """
    stats = stats or DeriveStats()
    await _Walk(topology, calls, cache, trials, stats, dry_run=True).run()
    return stats


async def expected_values(
    topology: Topology, calls: Sequence[Call], cache: ResultCache, *, trials: Trials = None
) -> list[DerivedValue]:
    """One value per (call, column, trial) that :func:`derive_batch` would return, without
    running any op: a value not in ``cache`` is a placeholder with the error ``pending``.

    A column filter that reads a pending value is assumed to pass, so the set can be a
    little larger than what a real run gives, never smaller.
    """
    return await _Walk(topology, calls, cache, trials, DeriveStats(), dry_run=True).run()


@dataclass
class _Task:
    call: Call
    trial: int
    arguments: dict[str, Any] | None = None
    error: str | None = None
    pending: bool = False  # survey: reads a value that would only be computed now
    key: CacheKey | None = None


class _Walk:
    def __init__(
        self,
        topology: Topology,
        calls: Sequence[Call],
        cache: ResultCache,
        trials: Trials,
        stats: DeriveStats,
        dry_run: bool,
    ) -> None:
        self.topology, self.cache, self.trials, self.stats, self.dry_run = (
            topology,
            cache,
            trials,
            stats,
            dry_run,
        )
        seen: set[str] = set()
        self.calls = []  # a call id seen twice in a batch is derived once (the first)
        for call in calls:
            if call.id not in seen:
                seen.add(call.id)
                self.calls.append(call)
        self.data: dict[str, dict[str, Any]] = {}
        self.values: dict[tuple[str, str, int], DerivedValue] = {}
        self.pending: set[tuple[str, str, int]] = set()
        self.scheduler: SubCallScheduler | None = None
        self.children: list[DerivedValue] = []

    async def run(self) -> list[DerivedValue]:
        source = self.topology.source
        self.stats.calls += len(self.calls)
        selected = []
        for call in self.calls:
            if source.op_name is not None and not op_name_matches(source.op_name, call.op_name):
                continue
            data = call.to_dict()
            if self.topology.source_filter and not self.topology.source_filter.matches(data, {}):
                continue
            if sampled(call.id, source.sample):
                self.data[call.id] = data
                selected.append(call)
        self.stats.matched += len(selected)
        for level in self.topology.levels:
            columns = [self.topology.column(name) for name in level]
            await asyncio.gather(*(self._column(column, selected) for column in columns))
        order = {name: i for i, name in enumerate(c.name for c in self.topology.compiled)}
        position = {call.id: i for i, call in enumerate(self.calls)}
        keys = sorted(self.values, key=lambda k: (position[k[0]], order[k[1]], k[2]))
        return [self.values[k] for k in keys]

    def trials_of(self, column: CompiledColumn) -> int:
        if column.op.deterministic:
            deps = (self.trials_of(self.topology.column(d)) for d in column.depends_on)
            return max(deps, default=1)
        asked = self.trials if isinstance(self.trials, int | None) else self.trials.get(column.name)
        count = column.trials if asked is None else asked
        if count < 1:
            raise TopologyError(
                f"topology {self.topology.name!r}, column {column.name!r}: trials must be a "
                f"whole number >= 1, got {count!r}; fix the trials asked for this run"
            )
        return count

    async def _column(self, column: CompiledColumn, calls: Sequence[Call]) -> None:
        stats = self.stats.column(column.name)
        op_ref = column.op.ref
        tasks = self._tasks(column, op_ref, calls)
        filtered = len(calls) - len({t.call.id for t in tasks})
        stats.filtered += filtered
        keyed = [t for t in tasks if t.key is not None]
        hits = await self.cache.get_many(list({t.key: None for t in keyed if t.key}))
        misses: dict[CacheKey, dict[str, Any]] = {}
        for task in keyed:
            if task.key not in hits and task.key is not None and task.arguments is not None:
                misses.setdefault(task.key, task.arguments)
        pending = [t for t in tasks if t.pending]
        if self.dry_run:  # what an earlier batch computes, a later one finds in the cache
            planned = {key for key in misses if key in self.stats.planned}
            for key in planned:
                del misses[key]
            self.stats.planned.update(misses)
            hit_keys = set(hits) | planned
        else:
            hit_keys = set(hits)
        cached = sum(1 for t in keyed if t.key in hit_keys)
        stats.cache_hits += cached
        stats.computed += len(misses) + len(pending)
        stats.deduplicated += len(keyed) - cached - len(misses)
        stats.not_computable += len(tasks) - len(keyed) - len(pending)
        if self.dry_run:
            stats.values += len(tasks)
            stats.errors += sum(1 for t in tasks if t.error is not None)
            stats.pending_inputs.extend(misses.values())
            stats.pending_keys.extend(misses)
            stats.pending_inputs.extend(t.arguments or {} for t in pending)
            stats.pending_keys.extend(None for _ in pending)
            for task in tasks:
                if task.pending or (task.key is not None and task.key not in hits):
                    self.pending.add((task.call.id, column.name, task.trial))
                self._store(column, op_ref, task, hits.get(task.key) if task.key else None)
            return
        results = await self._compute(column, misses)
        now = time.time()
        fresh = {
            key: CachedValue(r.value, r.latency_ms, r.cost, dict(r.details), now)
            for key, r in results.items()
            if r.ok
        }
        index = {}
        for key, result in results.items():
            if result.children:
                index.update(call_index(column.op.name, key, result.children))
        await self.cache.put_many({**fresh, **index})
        stats.failed += len(results) - len(fresh)
        spent = sum((r.cost or 0.0) + spent_usd(r.children) for r in results.values())
        stats.cost_usd += spent
        DERIVED_COST_USD.labels(self.topology.name, column.name).inc(spent)
        for task in tasks:
            hit = hits.get(task.key) if task.key else None
            if hit is not None:
                self._store(column, op_ref, task, hit, cached=True)
            elif task.key is not None:
                result = results[task.key]
                self._children(column, op_ref, task, result)
                cached_value = fresh.get(task.key)
                if cached_value is None:
                    task.error = result.error
                    self._store(
                        column,
                        op_ref,
                        task,
                        None,
                        details=dict(result.details),
                        latency_ms=result.latency_ms,
                        cost=result.cost,
                    )
                else:
                    self._store(column, op_ref, task, cached_value)
            else:
                self._store(column, op_ref, task, None)
        self._count(column, stats, filtered)

    async def _compute(
        self, column: CompiledColumn, misses: dict[CacheKey, dict[str, Any]]
    ) -> dict[CacheKey, OpResult]:
        inputs = list(misses.values())
        if self.scheduler is None:
            return dict(zip(misses, await run_op(column.op, inputs), strict=True))
        with self.scheduler.trials(inputs, [key.trial for key in misses]):
            return dict(zip(misses, await run_op(column.op, inputs), strict=True))

    def _children(self, column: CompiledColumn, op_ref: str, task: _Task, result: OpResult) -> None:
        """The records of the sub-calls the column's op made computing ``task``."""
        if not result.children:
            return
        call = task.call
        now = datetime.now(UTC)
        for position, parent_ref, child in flatten(result.children, op_ref):
            details = dict(child.details)
            if not child.declared:
                details["undeclared"] = True  # the parent's version does not cover it
            self.children.append(
                DerivedValue(
                    call_id=call.id,
                    trace_id=call.trace_id,
                    topology=self.topology.name,
                    column=column.name,
                    op_ref=child.op_ref,
                    trial=task.trial,
                    value=child.value,
                    error=child.error,
                    latency_ms=child.latency_ms,
                    cost=child.cost,
                    computed_at=now,
                    started_at=call.started_at,
                    details=details,
                    cached=child.cached,
                    input_digest=child.input_digest,
                    parent_ref=parent_ref,
                    position=position,
                )
            )
        self.stats.column(column.name).sub_calls += len(result.children)

    def _tasks(self, column: CompiledColumn, op_ref: str, calls: Sequence[Call]) -> list[_Task]:
        tasks = []
        rate = self.topology.source.sample * column.sample
        trials_of = {name: self.trials_of(self.topology.column(name)) for name in column.depends_on}
        for call in calls:
            data = self.data[call.id]
            first = {dep: self.values.get((call.id, dep, 0)) for dep in column.depends_on}
            if not sampled(call.id, rate) or any(v is None for v in first.values()):
                continue
            # A survey cannot know a value not computed yet: it assumes the filter passes.
            unknown = any((call.id, dep, 0) in self.pending for dep in first)
            column_values = {d: v.value for d, v in first.items() if v}
            if column.filter and not unknown and not column.filter.matches(data, column_values):
                continue
            for trial in range(self.trials_of(column)):
                deps = {
                    dep: self.values[(call.id, dep, min(trial, trials_of[dep] - 1))]
                    for dep in first
                }
                tasks.append(self._task(column, op_ref, call, trial, data, deps))
        return tasks

    def _task(
        self,
        column: CompiledColumn,
        op_ref: str,
        call: Call,
        trial: int,
        data: dict[str, Any],
        deps: dict[str, DerivedValue],
    ) -> _Task:
        task = _Task(call, trial)
        waiting = {
            dep for dep, value in deps.items() if (call.id, dep, value.trial) in self.pending
        }
        failed = sorted(d for d, v in deps.items() if v.error is not None and d not in waiting)
        if failed:
            task.error = f"column {failed[0]!r} failed for this call: {deps[failed[0]].error}"
            return task
        pending = bool(waiting)
        arguments: dict[str, Any] = {}
        for name, path in column.args.items():
            try:
                arguments[name] = path.resolve(
                    data, {dep: value.value for dep, value in deps.items()}
                )
            except MissingFieldError as exc:
                if not pending:
                    task.error = (
                        f"argument {name!r} reads {path.text}, which this call lacks ({exc}); "
                        f"filter such calls out with {{{path.text}: {{exists: true}}}}"
                    )
                    return task
                arguments[name] = None
        task.arguments = arguments
        if pending:
            task.pending = True
        else:
            task.key = cache_key(op_ref, arguments, 0 if column.op.deterministic else trial)
        return task

    def _store(
        self,
        column: CompiledColumn,
        op_ref: str,
        task: _Task,
        found: CachedValue | None,
        *,
        cached: bool = False,
        details: dict[str, Any] | None = None,
        latency_ms: float | None = None,
        cost: float | None = None,
    ) -> None:
        call = task.call
        value = DerivedValue(
            call_id=call.id,
            trace_id=call.trace_id,
            topology=self.topology.name,
            column=column.name,
            op_ref=op_ref,
            trial=task.trial,
            value=found.value if found else None,
            error=None if found else (task.error or ("pending" if self.dry_run else "no value")),
            latency_ms=found.latency_ms if found else latency_ms,
            cost=found.cost if found else cost,
            computed_at=datetime.fromtimestamp(found.computed_at, UTC)
            if found
            else datetime.now(UTC),
            started_at=call.started_at,
            details=dict(found.details) if found else (details or {}),
            cached=cached,
            input_digest=task.key.input_digest if task.key else None,
        )
        self.values[(call.id, column.name, task.trial)] = value

    def _count(self, column: CompiledColumn, stats: ColumnStats, filtered: int) -> None:
        made = [v for (_, name, _), v in self.values.items() if name == column.name]
        errors = sum(1 for v in made if v.error is not None)
        cached = sum(1 for v in made if v.cached)
        stats.values += len(made)
        stats.errors += errors
        name = self.topology.name
        DERIVED_VALUES.labels(name, column.name, "error").inc(errors)
        DERIVED_VALUES.labels(name, column.name, "cached").inc(cached)
        DERIVED_VALUES.labels(name, column.name, "computed").inc(len(made) - errors - cached)
        DERIVED_VALUES.labels(name, column.name, "filtered").inc(filtered)
