"""Storm grouping: one alert per monitor, kind and group per cool-down, nothing dropped."""

from __future__ import annotations

import itertools
from datetime import UTC, datetime, timedelta

from weave_stream.drift.findings import AlertKind, Finding, group_key
from weave_stream.drift.storm import StormGuard

T0 = datetime(2026, 11, 26, tzinfo=UTC)


def finding(
    call_id: str,
    seconds: float,
    *,
    score: float = 1.0,
    kind: AlertKind = "novel_example",
    env: str = "prod",
    monitor: str = "doc_drift",
) -> Finding:
    return Finding(
        kind=kind,
        monitor=monitor,
        detector="nearest_neighbours" if kind == "novel_example" else "sliding_whitened_mean",
        score=score,
        threshold=0.5,
        call_ids=(call_id,),
        time=T0 + timedelta(seconds=seconds),
        group=group_key({"attributes.env": env}),
        nearest_known_call=f"known-{call_id}",
        excerpt=f"text of {call_id}",
    )


def at(seconds: float) -> datetime:
    return T0 + timedelta(seconds=seconds)


def test_a_storm_gives_one_alert_per_cooldown_carrying_the_count_and_samples() -> None:
    guard = StormGuard(cooldown_seconds=60, sample_size=3)
    released: list[Finding] = []

    for i in range(100):  # one novel example per second for 100 s
        released += guard.offer(finding(f"c{i}", i, score=1.0 + (i == 30)))
    released += guard.flush(at(1000))

    assert [f.count for f in released] == [1, 59, 40]
    first, grouped, last = released
    assert first.call_ids == ("c0",)
    assert grouped.call_ids == ("c30", "c1", "c2")  # the strongest leads, then samples
    assert grouped.nearest_known_call == "known-c30" and grouped.excerpt == "text of c30"
    assert grouped.stats["grouped"] == 59 and grouped.stats["first_time"] == at(1).isoformat()
    assert last.count == 40 and last.call_ids[0] == "c60"
    assert sum(f.count for f in released) == 100  # every finding is accounted for


def test_at_most_one_alert_per_key_in_any_cooldown_period() -> None:
    guard = StormGuard(cooldown_seconds=60, sample_size=5)
    released_at: list[float] = []
    total = 0

    for i in range(0, 600, 7):
        for released in guard.offer(finding(f"c{i}", i)):
            released_at.append(i)
            total += released.count
    total += sum(f.count for f in guard.flush(at(10_000)))

    gaps = [b - a for a, b in itertools.pairwise(released_at)]
    assert len(released_at) >= 9 and min(gaps) >= 60
    assert total == len(range(0, 600, 7))


def test_groups_kinds_and_monitors_are_grouped_separately() -> None:
    guard = StormGuard(cooldown_seconds=60)

    released = (
        guard.offer(finding("a", 0, env="prod"))
        + guard.offer(finding("b", 1, env="staging"))
        + guard.offer(finding("c", 2, kind="distribution_shift"))
        + guard.offer(finding("d", 3, monitor="other"))
        + guard.offer(finding("e", 4, env="prod"))
    )

    assert [f.call_ids[0] for f in released] == ["a", "b", "c", "d"]
    assert len(guard) == 4


def test_a_quiet_period_closes_and_the_next_finding_goes_out_at_once() -> None:
    guard = StormGuard(cooldown_seconds=60)
    guard.offer(finding("a", 0))

    assert guard.flush(at(61)) == [] and len(guard) == 0
    assert [f.call_ids for f in guard.offer(finding("b", 62))] == [("b",)]


def test_a_zero_cooldown_lets_every_finding_through() -> None:
    guard = StormGuard(cooldown_seconds=0)

    released = [f for i in range(5) for f in guard.offer(finding(f"c{i}", i))]

    assert [f.call_ids[0] for f in released] == [f"c{i}" for i in range(5)]
