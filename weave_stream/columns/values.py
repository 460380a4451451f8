"""Reading derived values back: each (call, column, op ref, trial) counted once.

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

from collections.abc import Iterable, Sequence

from weave_stream.broker.kafka import highwaters, offsets_at, read_topic
from weave_stream.columns.derive import DerivedValue
from weave_stream.config import Settings

__all__ = ["ValueIdentity", "derived_key", "first_values", "identity", "read_derived"]

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
    settings: Settings,
    topology: str,
    columns: Sequence[str],
    *,
    deduplicate: bool = True,
    since: float | None = None,
) -> list[DerivedValue]:
    """Every value of ``columns`` of ``topology`` now on Kafka (first of each identity);
    with ``since`` (Unix seconds), only those written from then on."""
    values = []
    for column in columns:
        topic = settings.topics.derived(topology, column)
        start = None
        if since is not None:  # a partition with nothing written since is read from its end
            start = {
                **await highwaters(settings, topic),
                **await offsets_at(settings, topic, since),
            }
        async for record in read_topic(settings, topic, start_offsets=start):
            if record.value is not None:
                values.append(DerivedValue.from_json(record.value))
    return first_values(values) if deduplicate else values
