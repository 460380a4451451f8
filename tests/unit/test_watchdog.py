"""The hole watchdog: a partition held at an offset never processed is read again."""

from __future__ import annotations

import asyncio
from types import SimpleNamespace
from typing import Any

from faust.types import TP

from weave_stream.runners.streaming.commit_guard import known_committed
from weave_stream.runners.streaming.watchdog import Holes, _heal_holes

HELD = TP("calls.valid", 0)
FLOWING = TP("calls.valid", 1)
REVOKED = TP("calls.valid", 2)


def test_a_hole_older_than_the_patience_is_read_again_and_nothing_else() -> None:
    sought: list[tuple[TP, int]] = []

    async def seek(tp: TP, offset: int) -> None:
        sought.append((tp, offset))

    consumer: Any = SimpleNamespace(
        _acked={HELD: [25, 26, 27], FLOWING: [7, 8], REVOKED: [90]}, seek=seek
    )
    known_committed(consumer).update({HELD: 24, FLOWING: 7, REVOKED: 80})
    app: Any = SimpleNamespace(
        consumer=consumer,
        assignor=SimpleNamespace(assigned_actives=lambda: {HELD, FLOWING}),
    )
    holes = Holes()
    asyncio.run(_heal_holes(app, holes, patience=3600))  # first seen now: wait
    assert sought == [] and set(holes.since) == {(HELD, 24)}
    holes.since[(HELD, 24)] -= 7200  # the same hole, two hours later
    asyncio.run(_heal_holes(app, holes, patience=3600))
    assert sought == [(HELD, 24)]  # not the flowing one, not the one revoked from us
