"""Produce to and read from the session broker's topics, as a test needs them.

Every test has its own topic prefix (the ``make_settings`` fixture), so these read and
write only that test's records.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable

import orjson

from tests.support.waiting import wait_until
from weave_stream.broker.kafka import Record, ensure_topics, group_progress, produce, read_topic
from weave_stream.config import Settings

__all__ = [
    "group_progress_now",
    "produce_calls",
    "produce_records",
    "read_all",
    "table_key",
    "wait_for_records",
    "wait_until_committed",
]


def produce_records(
    settings: Settings, records: list[tuple[bytes | None, bytes]], topic: str | None = None
) -> int:
    """Produce ``(key, value)`` records to the calls topic (or ``topic``)."""
    topic = topic or settings.topics.calls
    asyncio.run(ensure_topics(settings, [topic]))
    return asyncio.run(produce(settings, topic, ((k, v, ()) for k, v in records)))


def produce_calls(settings: Settings, calls: list[dict]) -> None:
    """Produce call records to the calls topic, keyed by call id (as a Weave exporter does)."""
    produce_records(settings, [(c["id"].encode(), orjson.dumps(c)) for c in calls])


def read_all(settings: Settings, topic: str) -> list[Record]:
    """Every record of ``topic`` now."""

    async def collect() -> list[Record]:
        return [record async for record in read_topic(settings, topic)]

    return asyncio.run(collect())


def table_key(raw: bytes) -> str:
    """The key of a Faust table's changelog record, as the table's code wrote it.

    Faust writes some string keys JSON-encoded (``b'"abc"'``), others raw (``b'abc'``).

    >>> table_key(b'"0/call-1"'), table_key(b"0/call-1")
    ('0/call-1', '0/call-1')
    """
    return str(orjson.loads(raw)) if raw[:1] == b'"' else raw.decode()


def wait_for_records(
    settings: Settings,
    topic: str,
    done: Callable[[list[Record]], bool],
    timeout: float = 60.0,
) -> list[Record]:
    """Poll ``topic`` until ``done(records)``; fail with how many were there if it never is."""
    return wait_until(
        lambda: read_all(settings, topic),
        timeout,
        f"the records awaited on {topic}",
        until=done,
        describe=lambda records: f"{len(records)} records",
    )


def group_progress_now(settings: Settings, group: str, topic: str) -> tuple[int, int]:
    """``(records committed, lag)`` of consumer ``group`` on ``topic``, from the broker."""
    return asyncio.run(group_progress(settings, group, topic))


def wait_until_committed(
    settings: Settings, group: str, topic: str | None = None, timeout: float = 60.0
) -> tuple[int, int]:
    """Until ``group`` has committed every record of ``topic`` (default: valid calls)."""
    topic = topic or settings.topics.valid
    return wait_until(
        lambda: group_progress_now(settings, group, topic),
        timeout,
        f"{group} to commit every record of {topic} (committed, lag)",
        until=lambda progress: progress[1] == 0,
        interval=0.5,
    )
