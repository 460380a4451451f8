"""Reading derived values back: each (call, column, op ref, trial) counted once.

:func:`derived_values` (public: ``weave_stream.derived_values``, and ``weave-stream
values``) returns them as a DataFrame with their calls' identifying fields.

Processing is at-least-once (the embedded broker has no transactions), so a derived
topic can hold the same value twice: re-emitted after a crash or a replay, or — in
the one window where a revoked worker finishes a batch its successor also computes
— a second value of a non-deterministic op. Every reader keeps the *first
successful* value of each identity in topic order (an error value only while no
success exists: a retry that succeeds, e.g. by a backfill, supersedes the error),
so all readers agree on one value.

>>> from datetime import UTC, datetime
>>> now = datetime(2026, 11, 26, tzinfo=UTC)
>>> a = DerivedValue(call_id="c", topology="t", column="s", op_ref="s:1", value=1, computed_at=now)
>>> b = a.model_copy(update={"value": 2})
>>> [v.value for v in first_values([a, b])]
[1]
>>> failed = a.model_copy(update={"value": None, "error": "timeout"})
>>> [v.value for v in first_values([failed, b, a])]
[2]
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import contextlib
from collections.abc import Iterable, Sequence
from datetime import UTC, datetime, timedelta

import pandas as pd
from aiokafka import AIOKafkaConsumer

from weave_stream.broker.kafka import read_topic
from weave_stream.columns.derive import DerivedValue
from weave_stream.config import Settings, load_settings
from weave_stream.durations import parse_duration
from weave_stream.errors import BrokerError, DurationError, TimestampError, TopologyError
from weave_stream.ingest.call import Call, call_from_json, parse_timestamp

__all__ = [
    "VALUE_FIELDS",
    "ValueIdentity",
    "derived_columns",
    "derived_key",
    "derived_values",
    "first_values",
    "identity",
    "read_derived",
]

ValueIdentity = tuple[str, str, str, int]


def derived_key(call_id: str, trial: int) -> bytes:
    """The Kafka key of a derived value: ``<call id>/<trial>`` ('/' never occurs in ids).

    >>> derived_key("019a-c1", 2)
    b'019a-c1/2'
    """
    return f"{call_id}/{trial}".encode()


def identity(value: DerivedValue) -> ValueIdentity:
    """What makes a derived value one value: call, column, op ref and trial."""
    return (value.call_id, value.column, value.op_ref, value.trial)


def first_values(values: Iterable[DerivedValue]) -> list[DerivedValue]:
    """One value per identity: the first success, else the first error (in input order)."""
    kept: dict[ValueIdentity, DerivedValue] = {}
    for value in values:
        key = identity(value)
        held = kept.get(key)
        if held is None or (held.error is not None and value.error is None):
            kept[key] = value
    return list(kept.values())


async def read_derived(
    settings: Settings, topology: str, columns: Sequence[str], *, deduplicate: bool = True
) -> list[DerivedValue]:
    """Every value of ``columns`` of ``topology`` now on Kafka (first of each identity)."""
    values = []
    for column in columns:
        async for record in read_topic(settings, settings.topics.derived(topology, column)):
            if record.value is not None:
                values.append(DerivedValue.from_json(record.value))
    return first_values(values) if deduplicate else values


VALUE_FIELDS = (
    "call_id",
    "trace_id",
    "parent_id",
    "project_id",
    "op_name",
    "started_at",
    "topology",
    "column",
    "op_ref",
    "trial",
    "value",
    "error",
    "latency_ms",
    "cost",
    "computed_at",
)
"""The columns of :func:`derived_values`' frame: the call's identity, then the value's."""


def derived_values(
    topology: str,
    column: str | None = None,
    since: str | float | datetime | None = None,
    settings: Settings | None = None,
) -> pd.DataFrame:
    """The derived values of ``topology`` (or of one ``column``) as a DataFrame, one row each.

    Each row carries its call's identifying fields (call id, trace and parent ids,
    project, op name, start time) and the value's (column, op ref, trial, value,
    error, latency, cost, when computed), each (call, column, op ref, trial) once
    (:func:`first_values`). ``since`` keeps the calls started from then on: a time
    (datetime, epoch seconds, ISO-8601) or a duration back from now (``"6h"``, ``"2d"``).
    Without ``settings`` the running broker is found as the commands find it
    (:mod:`weave_stream.broker.discovery`). The columns are :data:`VALUE_FIELDS`.
    """
    if settings is None:
        settings = _running_settings()
    reading = _derived_values(settings, topology, column, _since(since))
    try:
        asyncio.get_running_loop()
    except RuntimeError:
        return asyncio.run(reading)
    with concurrent.futures.ThreadPoolExecutor(1) as pool:  # a notebook's loop runs here
        return pool.submit(asyncio.run, reading).result()


async def _derived_values(
    settings: Settings, topology: str, column: str | None, start: datetime | None
) -> pd.DataFrame:
    columns = await derived_columns(settings, topology)
    if column is not None:
        if column not in columns:
            raise TopologyError(
                f"topology {topology!r} has no values of column {column!r} (its columns with "
                f"values: {', '.join(columns) or 'none yet'})"
            )
        columns = [column]
    values = [
        v
        for v in await read_derived(settings, topology, columns)
        if start is None or (v.started_at or v.computed_at) >= start
    ]
    calls = await _calls_of(settings, {v.call_id for v in values})
    rows = []
    for value in values:
        call = calls.get(value.call_id)
        rows.append(
            {
                "call_id": value.call_id,
                "trace_id": value.trace_id or (call.trace_id if call else None),
                "parent_id": call.parent_id if call else None,
                "project_id": call.project_id if call else None,
                "op_name": call.op_name if call else None,
                "started_at": value.started_at,
                "topology": value.topology,
                "column": value.column,
                "op_ref": value.op_ref,
                "trial": value.trial,
                "value": value.value,
                "error": value.error,
                "latency_ms": value.latency_ms,
                "cost": value.cost,
                "computed_at": value.computed_at,
            }
        )
    frame = pd.DataFrame(rows, columns=list(VALUE_FIELDS))
    if frame.empty:
        return frame
    order = ["started_at", "call_id", "column", "trial"]
    return frame.sort_values(order, kind="stable", na_position="last").reset_index(drop=True)


async def derived_columns(settings: Settings, topology: str) -> list[str]:
    """The columns (and monitors) of ``topology`` that have a derived topic, sorted.

    Raises :class:`TopologyError` naming the topologies that have values when it has none.
    """
    consumer = AIOKafkaConsumer(bootstrap_servers=settings.broker_address)
    await consumer.start()
    try:
        topics = await consumer.topics()
    finally:
        await consumer.stop()
    marker = f"{settings.topics.prefix}.derived."
    found: dict[str, list[str]] = {}
    for name in topics:
        if name.startswith(marker):
            owner, _, column = name.removeprefix(marker).rpartition(".")
            found.setdefault(owner, []).append(column)
    if topology not in found:
        raise TopologyError(
            f"no derived values of topology {topology!r} on prefix {settings.topic_prefix!r} "
            f"(topologies with values: {', '.join(sorted(found)) or 'none'}); register it "
            "with `weave-stream register FILE` and send calls, or check --prefix"
        )
    return sorted(found[topology])


async def _calls_of(settings: Settings, call_ids: set[str]) -> dict[str, Call]:
    """The valid calls with these ids (their identifying fields), read from the stream."""
    calls: dict[str, Call] = {}
    if not call_ids:
        return calls
    async for record in read_topic(settings, settings.topics.valid):
        key = record.key.decode() if record.key else None
        if key in call_ids and key not in calls and record.value is not None:
            with contextlib.suppress(ValueError):  # not a call: the value keeps its own ids
                calls[key] = call_from_json(record.value)
    return calls


def _since(since: str | float | datetime | None) -> datetime | None:
    """``since`` as an aware time.

    >>> _since("2026-11-26T00:00:00Z").isoformat()
    '2026-11-26T00:00:00+00:00'
    >>> round((datetime.now(UTC) - _since("2h")).total_seconds() / 60)
    120
    """
    if since is None:
        return None
    if isinstance(since, str) and not _looks_like_time(since):
        try:
            return datetime.now(UTC) - timedelta(seconds=parse_duration(since))
        except DurationError as exc:
            raise DurationError(f"since: {exc}; or give a time (ISO-8601)") from None
    try:
        return parse_timestamp(since)
    except TimestampError as exc:
        raise TimestampError(f"since {since!r}: {exc}") from None


def _looks_like_time(text: str) -> bool:
    return "-" in text or ":" in text or text.replace(".", "", 1).isdigit()


def _running_settings() -> Settings:
    settings = load_settings()
    if settings.broker is not None:
        return settings
    from weave_stream.broker.discovery import find_broker  # the commands' way to find one

    found = find_broker(settings)
    if found is None:
        raise BrokerError(
            "no broker is running and none is set: start one with `weave-stream broker` or "
            "`weave-stream worker`, or pass settings=load_settings(broker='kafka://host:port')"
        )
    return settings.model_copy(update={"broker": found.url})
