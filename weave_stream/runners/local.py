"""The local runner: a topology in-process over a JSONL file, a list of calls or a DataFrame.

It reads the calls the way the ingest stage does (start and end events are
merged; a record that is not a call becomes a dead letter with its line number;
a half whose partner never comes is kept as an incomplete call), cuts them into
batches, and runs each through :func:`~weave_stream.columns.derive.derive_batch` — the
same function, cache keys and rules as the streaming runner, so both give the
same values for the same calls.

>>> from weave_stream.ops import op
>>> from weave_stream.topology.spec import Column, Topology
>>> @op
... def words(text: str) -> int:
...     return len(text.split())
>>> topology = Topology("demo", [Column("words", words, args={"text": "inputs.document"})])
>>> table = run_local(topology, [{"id": "c1", "started_at": 1795662000, "ended_at": 1795662001,
...                               "inputs": {"document": "two words"}}])
>>> table.to_pandas()[["call_id", "words", "words.error"]].values.tolist()
[['c1', 2, None]]
"""

from __future__ import annotations

import asyncio
import math
import sys
import warnings
from collections.abc import Iterable, Iterator, Mapping, Sequence
from pathlib import Path
from typing import Any, Literal

from tqdm import tqdm

from weave_stream.aggregates.in_process import topology_aggregates
from weave_stream.columns.cache import MemoryCache, ResultCache
from weave_stream.columns.derive import DerivedValue, DeriveStats, Trials, derive_batch
from weave_stream.columns.plan import Plan, plan_topology
from weave_stream.datasets.apply import Candidate, apply_candidates, candidates
from weave_stream.datasets.dataset import Dataset
from weave_stream.errors import CallValidationError, ConfigError, WeaveStreamWarning
from weave_stream.ingest.call import Call, parse_call_object
from weave_stream.ingest.files import read_call_file
from weave_stream.ingest.outcomes import DeadLetter
from weave_stream.ops.subops import reachable_ops
from weave_stream.runners.results import ResultTable
from weave_stream.store.tables import StoreLike, open_store
from weave_stream.store.writer import StoreWriter
from weave_stream.topology.calibrate import calibrate
from weave_stream.topology.spec import Topology
from weave_stream.windows.bucket import AggregatePlan
from weave_stream.windows.snapshot import AggregatePartials

__all__ = [
    "arun_local",
    "batches",
    "calibrated",
    "local_aggregates",
    "plan_local",
    "preflight",
    "read_calls",
    "run_local",
]

DEFAULT_BATCH_SIZE = 256


def read_calls(source: Any) -> tuple[list[Call], list[DeadLetter]]:
    """The calls of a JSONL file (path), a DataFrame, an iterable of calls or dicts, or a
    :class:`~weave_stream.datasets.Dataset` (its rows' source calls, from the call store)."""
    if isinstance(source, Dataset):
        return source.source_calls(), []
    if isinstance(source, str | Path):
        return read_call_file(source)
    if hasattr(source, "to_dict") and hasattr(source, "columns"):  # a pandas DataFrame
        records = [_without_missing(row) for row in source.to_dict(orient="records")]
        return _read_objects(records, "dataframe")
    return _read_objects(source, "list")


def preflight(topology: Topology) -> None:
    """Let every op check its configuration (an op may define ``preflight()``) before a run,
    the ops the columns' ops call included (a judge called by an op needs its endpoint)."""
    for column in topology.compiled:
        for checked in (column.op, *reachable_ops(column.op)):
            check = getattr(checked, "preflight", None)
            if callable(check):
                try:
                    check()
                except ConfigError as exc:
                    via = "" if checked is column.op else f", op {checked.name!r} it calls"
                    raise ConfigError(
                        f"topology {topology.name!r}, column {column.name!r}{via}: {exc}"
                    ) from None


def calibrated(topology: Topology, calls: Sequence[Call]) -> Topology:
    """``topology`` with its ``calibration: {first_n: N}`` columns calibrated on the first N
    of ``calls`` in call order (:mod:`weave_stream.topology.calibrate`): the same calls give
    the same op refs. A column short of calls stays uncalibrated, with a warning."""
    if not topology.calibrations:
        return topology
    resolved = calibrate(topology, calls)
    for note in resolved.notes:
        warnings.warn(f"topology {topology.name!r}, {note}", WeaveStreamWarning, stacklevel=3)
    return resolved.topology


def batches(calls: Sequence[Call], batch_size: int) -> Iterator[Sequence[Call]]:
    """``calls`` in consecutive batches of ``batch_size``."""
    for start in range(0, len(calls), batch_size):
        yield calls[start : start + batch_size]


async def arun_local(
    topology: Topology,
    source: Any,
    cache: ResultCache | None = None,
    *,
    trials: Trials = None,
    batch_size: int = DEFAULT_BATCH_SIZE,
    progress: bool = False,
    store: StoreLike | Literal[False] = False,
) -> ResultTable:
    """The async form of :func:`run_local`."""
    preflight(topology)
    calls, dead_letters = read_calls(source)
    topology = calibrated(topology, calls)
    cache = cache if cache is not None else MemoryCache()
    stats = DeriveStats()
    values: list[DerivedValue] = []
    sub_calls: list[DerivedValue] = []
    rules = topology.dataset_rules
    kept: list[list[Candidate]] = []  # per batch: the calls the datasets: rules keep
    with tqdm(
        total=len(calls), unit="call", disable=not progress, file=sys.stderr, desc=topology.name
    ) as bar:
        for batch in batches(calls, batch_size):
            derived = await derive_batch(
                topology, batch, cache, trials=trials, stats=stats, sub_calls=sub_calls
            )
            values.extend(derived)
            if rules and store is not False:
                kept.append(candidates(rules, batch, derived))
            bar.update(len(batch))
    columns = [column.name for column in topology.compiled]
    if store is not False:
        await asyncio.to_thread(_store, store, calls, values, sub_calls, kept)
    return ResultTable(
        topology.name, columns, values, stats, dead_letters, topology, calls, sub_calls
    )


def _store(
    store: StoreLike,
    calls: Sequence[Call],
    values: Sequence[DerivedValue],
    sub_calls: Sequence[DerivedValue] = (),
    kept: Sequence[Sequence[Candidate]] = (),
) -> None:
    """Write the run's calls, values and sub-calls to the store, as the workers' store
    sink does, then add the calls the topology's ``datasets:`` rules keep (a version
    per batch).

    Every identity is looked up first, so running again over the same calls adds
    nothing, and a success supersedes a stored error.
    """
    writer = StoreWriter(open_store(store))
    writer.write_calls(calls)
    writer.write_values(values)
    if sub_calls:
        writer.write_sub_calls(sub_calls)
    for found in kept:
        if found:
            apply_candidates(writer.store, found)


def run_local(
    topology: Topology,
    source: Any,
    cache: ResultCache | None = None,
    *,
    trials: Trials = None,
    batch_size: int = DEFAULT_BATCH_SIZE,
    progress: bool = False,
    store: StoreLike | Literal[False] = False,
) -> ResultTable:
    """Run ``topology`` over a JSONL path, a DataFrame, calls or a dataset (its rows'
    source calls); a :class:`ResultTable`.

    ``cache`` defaults to an in-memory one; pass a :class:`~weave_stream.columns.cache.SqliteCache`
    to keep results between runs. ``store`` (a folder, URL or
    :class:`~weave_stream.store.Store`; None: the settings' store) also writes every
    call, value and sub-call to the call store, for ``calls()`` queries without a broker. From
    inside an event loop, await :func:`arun_local`.
    """
    table: list[ResultTable] = []

    async def run() -> None:
        table.append(
            await arun_local(
                topology,
                source,
                cache,
                trials=trials,
                batch_size=batch_size,
                progress=progress,
                store=store,
            )
        )

    # Not `return asyncio.run(arun_local(...))`: on the main thread asyncio.run formats
    # its task when it restores the SIGINT handler, and the repr of a task holding a
    # big table took 0.4 s for 2,000 values (measured in bench/nested.py).
    asyncio.run(run())
    return table[0]


async def plan_local(
    topology: Topology,
    source: Any,
    cache: ResultCache | None = None,
    *,
    trials: Trials = None,
    batch_size: int = DEFAULT_BATCH_SIZE,
) -> tuple[Plan, list[DeadLetter]]:
    """The cost plan of running ``topology`` over ``source``, and the records that are not calls."""
    calls, dead_letters = read_calls(source)
    topology = calibrated(topology, calls)
    cache = cache if cache is not None else MemoryCache()
    plan = await plan_topology(topology, batches(calls, batch_size), cache, trials=trials)
    return plan, dead_letters


def _read_objects(records: Iterable[Any], where: str) -> tuple[list[Call], list[DeadLetter]]:
    calls, dead_letters = [], []
    for index, record in enumerate(records):
        if isinstance(record, Call):
            calls.append(record)
            continue
        try:
            calls.append(parse_call_object(record))
        except CallValidationError as exc:
            raw = repr(record).encode()
            dead_letters.append(
                DeadLetter(exc.reason, exc.detail, raw, source_topic=where, source_offset=index)
            )
    return calls, dead_letters


def _without_missing(row: Mapping[str, Any]) -> dict[str, Any]:
    return {
        k: v for k, v in row.items() if not (v is None or (isinstance(v, float) and math.isnan(v)))
    }


def local_aggregates(
    topology: Topology,
    calls: Any,
    values: Iterable[Any] | None = None,
    *,
    as_streamed: int | None = None,
) -> tuple[list[AggregatePlan], dict[str, AggregatePartials | list[AggregatePartials]]]:
    """The aggregates of ``topology`` over ``calls`` in-process (the local runner).

    ``calls`` is a JSONL path, a DataFrame or calls (as :func:`~weave_stream.runners.local.
    run_local` takes them); without ``values`` the topology's columns are computed first.
    Calls count by event time, so none is late; with ``as_streamed`` (the number of
    partitions of the stream) they are taken in their order, as the stream takes them,
    and late ones are left out as it leaves them out (see the README, "Late calls").
    """
    loaded, _ = read_calls(calls)
    if values is None:
        values = run_local(topology, loaded).values
    return topology_aggregates(topology, loaded, values, as_streamed=as_streamed)
