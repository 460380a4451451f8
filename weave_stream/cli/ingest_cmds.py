"""``weave-stream ingest`` (produce calls from a file) and ``weave-stream dlq``."""

from __future__ import annotations

import asyncio
import json
from collections import defaultdict
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import click
import orjson
from aiokafka import AIOKafkaConsumer, AIOKafkaProducer, TopicPartition
from tqdm import tqdm

from weave_stream.broker.kafka import ensure_topics, produce, read_topic
from weave_stream.cli.options import connected, settings_options
from weave_stream.config import Settings
from weave_stream.ingest.outcomes import DeadLetter

__all__ = ["COMMANDS", "call_key", "dlq", "ingest"]


def call_key(raw: bytes) -> bytes | None:
    """The call id of a raw record, as the Kafka key; ``None`` if it has none.

    Records are keyed by call id so that a call's start and end events land in the
    same partition. A record without a readable id is still produced (unkeyed): the
    ingest agent dead-letters it with its reason.

    >>> call_key(b'{"id": "c1", "started_at": 1}'), call_key(b'{"end": {"id": "c2"}}')
    (b'c1', b'c2')
    >>> call_key(b'not json') is None
    True
    """
    try:
        data = orjson.loads(raw)
    except orjson.JSONDecodeError:
        return None
    if isinstance(data, dict) and len(data) == 1 and ("start" in data or "end" in data):
        data = next(iter(data.values()))
    call_id = data.get("id") if isinstance(data, dict) else None
    return call_id.encode() if isinstance(call_id, str) and call_id else None


def _lines(path: Path) -> Iterator[bytes]:
    with open(path, "rb") as handle:
        for line in handle:
            line = line.rstrip(b"\r\n")
            if line.strip():
                yield line


@click.command()
@click.argument("file", type=click.Path(exists=True, dir_okay=False, path_type=Path))
@click.option("--rate", type=float, default=None, help="Records per second (default: as fast).")
@settings_options("partitions")
def ingest(file: Path, rate: float | None, settings: Settings) -> None:
    """Produce the calls in FILE (JSON lines) to <prefix>.calls, keyed by call id.

    Each line is a complete call, a start event or an end event, in Weave's shapes.
    Lines are sent as they are: the ingest agent of a worker validates them and
    sends bad ones to <prefix>.calls.dlq with the reason.
    """
    total = sum(1 for _ in _lines(file))
    with connected(settings) as settings:
        topic = settings.topics.calls
        asyncio.run(ensure_topics(settings, [topic]))
        with tqdm(total=total, unit="call", desc=f"ingest → {topic}") as bar:
            records = ((call_key(raw), raw, ()) for raw in _lines(file))
            sent = asyncio.run(
                produce(settings, topic, records, rate=rate, on_sent=lambda n: bar.update(1))
            )
    click.echo(f"{sent} records produced to {topic} at {settings.broker}")


@click.command()
@click.option("--reingest", is_flag=True, help="Produce dead letters back to <prefix>.calls.")
@click.option("--reason", default=None, help="Only dead letters with this reason.")
@click.option("--format", "output_format", type=click.Choice(["table", "json"]), default="table")
@settings_options()
def dlq(reingest: bool, reason: str | None, output_format: str, settings: Settings) -> None:
    """List dead letters grouped by reason, or re-ingest them (--reingest).

    Re-ingestion remembers (as a consumer group) how far it got, so running it
    again sends only dead letters that arrived since.
    """
    with connected(settings) as settings:
        if reingest:
            sent = asyncio.run(_reingest(settings, reason))
            click.echo(f"re-ingested {sent} dead letters into {settings.topics.calls}")
            return
        letters = asyncio.run(_read_dead_letters(settings))
    if reason:
        letters = [(where, letter) for where, letter in letters if letter.reason == reason]
    _show(letters, output_format)


async def _read_dead_letters(settings: Settings) -> list[tuple[str, DeadLetter]]:
    letters = []
    async for record in read_topic(settings, settings.topics.dlq):
        letter = DeadLetter.from_record(record.value, record.key, record.headers)
        letters.append((f"{record.topic}[{record.partition}]@{record.offset}", letter))
    return letters


def _show(letters: list[tuple[str, DeadLetter]], output_format: str) -> None:
    by_reason: dict[str, list[tuple[str, DeadLetter]]] = defaultdict(list)
    for where, letter in letters:
        by_reason[letter.reason].append((where, letter))
    if output_format == "json":
        summary: dict[str, Any] = {
            reason: {
                "count": len(items),
                "examples": [
                    {
                        "dlq": where,
                        "source": f"{d.source_topic}[{d.source_partition}]@{d.source_offset}",
                        "detail": d.detail,
                        "raw": None if d.raw is None else d.raw[:200].decode(errors="replace"),
                    }
                    for where, d in items[:3]
                ],
            }
            for reason, items in sorted(by_reason.items())
        }
        click.echo(json.dumps({"total": len(letters), "reasons": summary}, indent=2))
        return
    click.echo(f"{len(letters)} dead letters")
    for reason, items in sorted(by_reason.items(), key=lambda kv: -len(kv[1])):
        click.secho(f"\n{reason}: {len(items)}", bold=True)
        for where, letter in items[:3]:
            source = f"{letter.source_topic}[{letter.source_partition}]@{letter.source_offset}"
            click.echo(f"  {source} (dead letter {where}): {letter.detail[:160]}")
        if len(items) > 3:
            click.echo(f"  ... and {len(items) - 3} more")


async def _reingest(settings: Settings, reason: str | None) -> int:
    topics = settings.topics
    consumer = AIOKafkaConsumer(
        bootstrap_servers=settings.broker_address,
        group_id=settings.topics.dlq_reingest_group,
        enable_auto_commit=False,
        auto_offset_reset="earliest",
    )
    producer = AIOKafkaProducer(
        bootstrap_servers=settings.broker_address,
        max_request_size=max(4 * 1024 * 1024, 2 * settings.max_payload_bytes),
    )
    await consumer.start()
    await producer.start()
    sent = 0
    try:
        partitions = consumer.partitions_for_topic(topics.dlq) or set()
        if not partitions:
            await consumer.topics()
            partitions = consumer.partitions_for_topic(topics.dlq) or set()
        tps = [TopicPartition(topics.dlq, p) for p in sorted(partitions)]
        if not tps:
            return 0
        consumer.assign(tps)
        committed = {tp: await consumer.committed(tp) for tp in tps}
        start = {tp.partition: offset for tp, offset in committed.items() if offset is not None}
        async for record in read_topic(settings, topics.dlq, start_offsets=start):
            letter = DeadLetter.from_record(record.value, record.key, record.headers)
            # A tombstone has no call in it to re-ingest: it would only come back here.
            if letter.raw is not None and (reason is None or letter.reason == reason):
                origin = f"{record.topic}[{record.partition}]@{record.offset}"
                headers = [("weave-stream.reingested-from", origin.encode())]
                await producer.send_and_wait(
                    topics.calls, letter.raw, key=letter.key, headers=headers
                )
                sent += 1
            tp = TopicPartition(record.topic, record.partition)
            await consumer.commit({tp: record.offset + 1})
    finally:
        await producer.stop()
        await consumer.stop()
    return sent


COMMANDS = [ingest, dlq]
