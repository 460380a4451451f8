"""A new topology's consumer group starts at the calls written since its registration,
and none written while those offsets are looked up is skipped."""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator, Callable
from typing import Any

import pytest

from tests.support.records import produce_records
from weave_stream.broker import kafka
from weave_stream.broker.kafka import read_topic, start_group_at
from weave_stream.config import Settings


def keys(settings: Settings, topic: str, start: dict[int, int] | None = None) -> set[str]:
    async def collect() -> set[str]:
        found = read_topic(settings, topic, start_offsets=start)
        return {(record.key or b"").decode() async for record in found}

    return asyncio.run(collect())


def test_a_new_group_starts_at_its_registration_and_skips_none_written_meanwhile(
    make_settings: Callable[..., Settings], monkeypatch: pytest.MonkeyPatch
) -> None:
    settings = make_settings()
    topic = settings.topics.valid
    produce_records(settings, [(f"before-{i}".encode(), b"{}") for i in range(4)], topic)
    time.sleep(0.01)  # record timestamps are milliseconds: the moment lies after these
    moment = time.time()
    produce_records(settings, [(b"after-0", b"{}")], topic)  # one partition has a new call
    # Calls arrive while the group's offsets are looked up (a topology registered just
    # before its first calls): here, on every partition, once the records are scanned.
    scanning = kafka.read_topic

    async def calls_arrive_meanwhile(*args: Any, **options: Any) -> AsyncIterator[Any]:
        async for record in scanning(*args, **options):
            yield record
        records = [(f"meanwhile-{i}".encode(), b"{}", ()) for i in range(6)]
        await kafka.produce(settings, topic, records)

    monkeypatch.setattr(kafka, "read_topic", calls_arrive_meanwhile)
    group = settings.topics.topology_group("fresh")
    offsets = asyncio.run(start_group_at(settings, group, topic, moment))
    monkeypatch.undo()
    assert offsets is not None
    meanwhile = {f"meanwhile-{i}" for i in range(6)}
    assert len(keys(settings, topic)) == 11
    assert keys(settings, topic, offsets) == {"after-0", *meanwhile}
    # A group with offsets of its own resumes from them.
    assert asyncio.run(start_group_at(settings, group, topic, time.time())) is None
