"""Reading derived values back: each (call, column, op ref, trial) counted once.

Processing is at-least-once (the embedded broker has no transactions), so a derived
topic can hold the same value twice: re-emitted after a crash or a replay, or — in
the one window where a revoked worker finishes a batch its successor also computes
— a second value of a non-deterministic op. Every reader keeps the *first* value of
each identity in topic order, so all readers agree on one value.

>>> from datetime import UTC, datetime
>>> now = datetime(2026, 11, 26, tzinfo=UTC)
>>> a = DerivedValue(call_id="c", topology="t", column="s", op_ref="s:1", value=1, computed_at=now)
>>> b = a.model_copy(update={"value": 2})
>>> [v.value for v in first_values([a, b])]
[1]
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence

from weave_stream.config import Settings
from weave_stream.derive import DerivedValue
from weave_stream.topics import read_topic

__all__ = ["ValueIdentity", "first_values", "identity", "read_derived"]

ValueIdentity = tuple[str, str, str, int]


def identity(value: DerivedValue) -> ValueIdentity:
    """What makes a derived value one value: call, column, op ref and trial."""
    return (value.call_id, value.column, value.op_ref, value.trial)


def first_values(values: Iterable[DerivedValue]) -> list[DerivedValue]:
    """``values`` without repeats of an identity, keeping the first of each."""
    seen: set[ValueIdentity] = set()
    kept = []
    for value in values:
        key = identity(value)
        if key not in seen:
            seen.add(key)
            kept.append(value)
    return kept


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
