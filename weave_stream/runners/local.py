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
from collections.abc import Iterable, Iterator, Mapping, Sequence
from pathlib import Path
from typing import Any

from tqdm import tqdm

from weave_stream.aggregates.in_process import topology_aggregates
from weave_stream.columns.cache import MemoryCache, ResultCache
from weave_stream.columns.derive import DerivedValue, DeriveStats, Trials, derive_batch
from weave_stream.columns.plan import Plan, plan_topology
from weave_stream.errors import CallValidationError, ConfigError
from weave_stream.ingest.call import Call, parse_call_object
from weave_stream.ingest.files import read_call_file
from weave_stream.ingest.outcomes import DeadLetter
from weave_stream.runners.results import ResultTable
from weave_stream.topology.spec import Topology
from weave_stream.windows.bucket import AggregatePlan
from weave_stream.windows.snapshot import AggregatePartials

__all__ = [
    "arun_local",
    "batches",
    "local_aggregates",
    "plan_local",
    "preflight",
    "read_calls",
    "run_local",
]

DEFAULT_BATCH_SIZE = 256


def read_calls(source: Any) -> tuple[list[Call], list[DeadLetter]]:
    """The calls of a JSONL file (path), a DataFrame, or an iterable of calls or dicts."""
    if isinstance(source, str | Path):
        return read_call_file(source)
    if hasattr(source, "to_dict") and hasattr(source, "columns"):  # a pandas DataFrame
        records = [_without_missing(row) for row in source.to_dict(orient="records")]
        return _read_objects(records, "dataframe")
    return _read_objects(source, "list")


def preflight(topology: Topology) -> None:
    """Let every op check its configuration (an op may define ``preflight()``) before a run."""
    for column in topology.compiled:
        check = getattr(column.op, "preflight", None)
        if callable(check):
            try:
                check()
            except ConfigError as exc:
                raise ConfigError(
                    f"topology {topology.name!r}, column {column.name!r}: {exc}"
                ) from None


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
) -> ResultTable:
    """The async form of :func:`run_local`."""
    preflight(topology)
    calls, dead_letters = read_calls(source)
    cache = cache if cache is not None else MemoryCache()
    stats = DeriveStats()
    values: list[DerivedValue] = []
    with tqdm(
        total=len(calls), unit="call", disable=not progress, file=sys.stderr, desc=topology.name
    ) as bar:
        for batch in batches(calls, batch_size):
            values.extend(await derive_batch(topology, batch, cache, trials=trials, stats=stats))
            bar.update(len(batch))
    columns = [column.name for column in topology.compiled]
    return ResultTable(topology.name, columns, values, stats, dead_letters, topology, calls)


def run_local(
    topology: Topology,
    source: Any,
    cache: ResultCache | None = None,
    *,
    trials: Trials = None,
    batch_size: int = DEFAULT_BATCH_SIZE,
    progress: bool = False,
) -> ResultTable:
    """Run ``topology`` over a JSONL path, a DataFrame or calls; a :class:`ResultTable`.

    ``cache`` defaults to an in-memory one; pass a :class:`~weave_stream.columns.cache.SqliteCache`
    to keep results between runs. From inside an event loop, await :func:`arun_local`.
    """
    return asyncio.run(
        arun_local(topology, source, cache, trials=trials, batch_size=batch_size, progress=progress)
    )


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
    topology: Topology, calls: Any, values: Iterable[Any] | None = None
) -> tuple[list[AggregatePlan], dict[str, AggregatePartials]]:
    """The aggregates of ``topology`` over ``calls`` in-process (the local runner).

    ``calls`` is a JSONL path, a DataFrame or calls (as :func:`~weave_stream.runners.local.
    run_local` takes them); without ``values`` the topology's columns are computed first.
    """
    loaded, _ = read_calls(calls)
    if values is None:
        values = run_local(topology, loaded).values
    return topology_aggregates(topology, loaded, values)
