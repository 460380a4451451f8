"""Storm grouping: at most one alert per monitor, kind and group per cool-down.

The first finding of a quiet key goes out at once and opens a cool-down period.
Findings of the same key during the period are folded into it (counted, a few
call ids kept as samples, the highest-scoring one kept for the excerpt). When the
period ends, the folded findings go out as *one* grouped finding (``count`` = how
many were folded) and a new period starts, so even a long storm yields one alert
per cool-down; a period that ends with nothing folded simply closes.

Time is the findings' own (event time) or the ``now`` passed to :meth:`flush`: the
guard never reads a clock, so replaying a stream groups it the same way.

>>> from datetime import UTC, datetime, timedelta
>>> t0 = datetime(2026, 11, 26, tzinfo=UTC)
>>> def novel(call_id, seconds):
...     return Finding("novel_example", "m", "nearest_neighbours", 1.0, 0.5, (call_id,),
...                    t0 + timedelta(seconds=seconds))
>>> guard = StormGuard(cooldown_seconds=60, sample_size=2)
>>> [f.call_ids for f in guard.offer(novel("a", 0))]
[('a',)]
>>> guard.offer(novel("b", 10)), guard.offer(novel("c", 20)), guard.offer(novel("d", 30))
([], [], [])
>>> [(f.count, f.call_ids) for f in guard.flush(t0 + timedelta(seconds=61))]
[(3, ('b', 'c'))]
"""

from __future__ import annotations

from dataclasses import dataclass, field, replace
from datetime import datetime, timedelta

from weave_stream.drift.findings import Finding, GroupKey

__all__ = ["StormGuard"]

StormKey = tuple[str, str, GroupKey]


@dataclass
class _Period:
    start: datetime
    folded: int = 0
    samples: list[str] = field(default_factory=list)
    strongest: Finding | None = None
    first: datetime | None = None
    last: datetime | None = None


class StormGuard:
    """Groups findings per (monitor, kind, group) and cool-down (see the module docstring)."""

    def __init__(self, cooldown_seconds: float, sample_size: int = 5) -> None:
        self.cooldown = timedelta(seconds=cooldown_seconds)
        self.sample_size = sample_size
        self._periods: dict[StormKey, _Period] = {}

    def __len__(self) -> int:
        """Open cool-down periods."""
        return len(self._periods)

    def offer(self, finding: Finding) -> list[Finding]:
        """Offer one finding; return what to raise now (it, a closed period's group, or nothing)."""
        ready = self.flush(finding.time)
        key = (finding.monitor, finding.kind, finding.group)
        period = self._periods.get(key)
        if period is None:
            self._periods[key] = _Period(start=finding.time)
            ready.append(finding)
            return ready
        period.folded += finding.count
        for call_id in finding.call_ids:
            if len(period.samples) < self.sample_size:
                period.samples.append(call_id)
        if period.strongest is None or finding.score > period.strongest.score:
            period.strongest = finding
        period.first = period.first or finding.time
        period.last = finding.time
        return ready

    def flush(self, now: datetime) -> list[Finding]:
        """Close the periods that ended by ``now``; return their grouped findings."""
        ready = []
        for key, period in list(self._periods.items()):
            end = period.start + self.cooldown
            if now < end:
                continue
            if period.folded == 0 or period.strongest is None:
                del self._periods[key]
                continue
            ready.append(self._grouped(period, period.strongest))
            self._periods[key] = _Period(start=now)  # the grouped alert opens a new period
        return ready

    def _grouped(self, period: _Period, strongest: Finding) -> Finding:
        first, last = period.first or period.start, period.last or period.start
        stats = dict(strongest.stats)
        stats.update(
            grouped=period.folded,
            first_time=first.isoformat(),
            last_time=last.isoformat(),
            cooldown_seconds=self.cooldown.total_seconds(),
        )
        # The strongest finding leads (its excerpt and nearest example go with it).
        leader = strongest.call_ids[:1]
        samples = (*leader, *(cid for cid in period.samples if cid not in leader))
        return replace(
            strongest,
            call_ids=samples[: self.sample_size],
            count=period.folded,
            time=last,
            stats=stats,
        )
