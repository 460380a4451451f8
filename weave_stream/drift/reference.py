"""The reference of a monitor: which examples are known, gathered from the stream or a file.

``first_n`` takes the first N calls *in call order* (``started_at``, then id), not
the first N to arrive: with a partitioned source, a monitor sees calls of one
partition before earlier calls of another. So the collector keeps every offered
embedding and tracks how far each source partition has progressed in event time
(each partition is read in order); the reference is complete once it holds N
calls and every partition has passed the N-th one's ``started_at``: no earlier
call can still come. ``time_range`` takes the calls started in the range and is
complete once every partition has passed its end. ``jsonl`` reads known calls
from a file (the runner embeds them with the monitor's column, then
:meth:`ReferenceCollector.add` s them).

A partition that sends nothing would hold the reference back for ever, so the
wait is bounded: once ``wait_calls`` more calls than the reference needs have
been offered (by default as many again, at least 1,000), the collector completes
with what it has, still in call order among them, and :attr:`how` says so.
The calls offered but not chosen are :meth:`ReferenceCollector.rest` : the
runner scores them once the monitor is built.

The *fingerprint* of a reference (its spec and ids) names the snapshot built from
it, so a worker rebuilds its index when the reference changed.

>>> import numpy as np
>>> from datetime import UTC, datetime
>>> from weave_stream.topology.monitors import FirstNReference
>>> at = lambda minute: datetime(2026, 11, 26, 3, minute, tzinfo=UTC)
>>> collector = ReferenceCollector(FirstNReference(n=2), partitions=2)
>>> for call_id, minute, partition in [("c", 3, 0), ("d", 4, 0), ("a", 1, 1)]:
...     collector.offer(call_id, np.ones(3), at(minute), partition)
>>> collector.is_complete()  # partition 1 has not passed minute 3 yet
False
>>> collector.offer("b", np.ones(3), at(2), 1); collector.progress(1, at(5))
>>> collector.is_complete(), collector.ids, collector.rest()
(True, ['a', 'b'], ['c', 'd'])
"""

from __future__ import annotations

import hashlib
import heapq
import json
from collections.abc import Sequence
from datetime import datetime

import numpy as np

from weave_stream.drift.observation import Observation
from weave_stream.errors import IngestError, TopologyError
from weave_stream.ingest.call import Call
from weave_stream.ingest.files import read_call_file
from weave_stream.topology.monitors import (
    FirstNReference,
    JsonlReference,
    Monitor,
    ReferenceSpec,
    TimeRangeReference,
)

__all__ = [
    "CallOrderBuffer",
    "ReferenceCollector",
    "read_reference_calls",
    "reference_fingerprint",
]

_MIN_WAIT = 1_000


class ReferenceCollector:
    """Gathers reference embeddings (see the module docstring); repeated ids count once."""

    def __init__(
        self, spec: ReferenceSpec, *, partitions: int = 1, wait_calls: int | None = None
    ) -> None:
        self.spec = spec
        self.partitions = partitions
        needed = spec.n if isinstance(spec, FirstNReference) else 0
        self.wait_calls = wait_calls if wait_calls is not None else max(needed, _MIN_WAIT)
        self.how = ""
        self._offered: dict[str, tuple[datetime | None, np.ndarray]] = {}
        self._progress: dict[int, datetime] = {}
        self._after_range = 0  # calls offered after some partition passed the range's end
        self._chosen: list[str] | None = None
        self._loaded = False

    def offer(
        self,
        call_id: str,
        vector: np.ndarray,
        started_at: datetime | None = None,
        partition: int | None = None,
    ) -> None:
        """Offer one streamed embedding (before the reference is complete)."""
        if self._chosen is not None or isinstance(self.spec, JsonlReference):
            return
        if call_id not in self._offered:
            self._offered[call_id] = (started_at, np.asarray(vector, dtype=np.float32))
            spec = self.spec
            if isinstance(spec, TimeRangeReference) and self._progress:
                self._after_range += int(max(self._progress.values()) >= spec.end)
        if started_at is not None and partition is not None:
            self.progress(partition, started_at)

    def progress(self, partition: int, time: datetime) -> None:
        """Source ``partition`` has been read up to a call started at ``time``."""
        if partition not in self._progress or self._progress[partition] < time:
            self._progress[partition] = time

    def add(self, call_ids: Sequence[str], vectors: np.ndarray) -> None:
        """Add embeddings of the reference file's calls (``jsonl`` references)."""
        for call_id, vector in zip(call_ids, np.asarray(vectors), strict=True):
            self._offered.setdefault(call_id, (None, np.asarray(vector, dtype=np.float32)))
        self._chosen = list(dict.fromkeys(call_ids))
        self.how = f"the {len(self._chosen)} calls of {getattr(self.spec, 'path', 'the file')}"
        self._loaded = True

    def restore(self, call_ids: Sequence[str], how: str) -> None:
        """The reference was chosen before (by a worker that kept ``call_ids``)."""
        self._chosen = [cid for cid in call_ids if cid in self._offered]
        self.how = how

    def is_complete(self) -> bool:
        """True once the reference is chosen (see the module docstring); chooses it then."""
        if self._chosen is not None:
            return True
        spec = self.spec
        if isinstance(spec, JsonlReference):
            return self._loaded
        passed = self._passed()
        if isinstance(spec, FirstNReference):
            ordered = self._in_order(self._offered)
            if len(ordered) < spec.n:
                return False
            boundary = self._offered[ordered[spec.n - 1]][0]
            caught_up = boundary is not None and passed is not None and passed >= boundary
            if caught_up or len(self._offered) >= spec.n + self.wait_calls:
                self._choose(ordered[: spec.n], caught_up, boundary)
        elif isinstance(spec, TimeRangeReference):
            inside = [cid for cid, (t, _) in self._offered.items() if t and spec.contains(t)]
            caught_up = passed is not None and passed >= spec.end
            if caught_up or self._after_range >= self.wait_calls:
                self._choose(self._in_order({cid: self._offered[cid] for cid in inside}),
                             caught_up, spec.end)  # fmt: skip
        return self._chosen is not None

    def settle(self, reason: str) -> bool:
        """Choose now with what has been offered, if it is enough (the stream went quiet).

        A partition with no more calls never passes the boundary; when nothing arrives
        for a while, a call still to come would be late data anyway.
        """
        if self._chosen is not None or isinstance(self.spec, JsonlReference):
            return self._chosen is not None
        if isinstance(self.spec, FirstNReference):
            ordered = self._in_order(self._offered)
            if len(ordered) < self.spec.n:
                return False
            self._chosen = ordered[: self.spec.n]
        else:
            spec = self.spec
            if not self._progress or max(self._progress.values()) < spec.end:
                return False
            inside = {
                c: item for c, item in self._offered.items() if item[0] and spec.contains(item[0])
            }
            self._chosen = self._in_order(inside)
        self.how = (
            f"call order (started_at, then id) among the {len(self._offered)} calls seen; {reason}"
        )
        return True

    def _passed(self) -> datetime | None:
        """The event time every source partition has passed (None while one sent nothing)."""
        if len(self._progress) < self.partitions:
            return None
        return min(self._progress.values())

    def _in_order(self, offered: dict[str, tuple[datetime | None, np.ndarray]]) -> list[str]:
        timed = [(t, cid) for cid, (t, _) in offered.items() if t is not None]
        return [cid for _, cid in sorted(timed)]

    def _choose(self, ids: list[str], caught_up: bool, boundary: datetime | None) -> None:
        self._chosen = ids
        if caught_up:
            self.how = (
                f"call order (started_at, then id): the {len(ids)} earliest calls; every one of "
                f"{self.partitions} source partitions had passed {boundary}"
            )
        else:
            behind = sorted(set(range(self.partitions)) - {
                p for p, t in self._progress.items() if boundary is not None and t >= boundary
            })  # fmt: skip
            self.how = (
                f"call order among the {len(self._offered)} calls seen: source partitions "
                f"{behind} had not passed {boundary} after {self.wait_calls} more calls "
                "than needed; a later, earlier call is scored, not known"
            )

    @property
    def ids(self) -> list[str]:
        """The reference's call ids, in call order (empty until complete)."""
        return list(self._chosen or [])

    @property
    def vectors(self) -> np.ndarray:
        """The reference embeddings, one row per id."""
        if not self._chosen:
            return np.empty((0, 0), dtype=np.float32)
        return np.vstack([self._offered[cid][1] for cid in self._chosen])

    def rest(self) -> list[str]:
        """Calls offered but not chosen (in call order; to be scored once built)."""
        chosen = set(self._chosen or [])
        rest = {cid: item for cid, item in self._offered.items() if cid not in chosen}
        return self._in_order(rest) + [cid for cid, (t, _) in rest.items() if t is None]


def read_reference_calls(spec: JsonlReference, where: str = "monitor") -> list[Call]:
    """Read a JSONL file of known calls (complete calls, or start and end events).

    Raises :class:`TopologyError` naming the file, the line and the reason for the
    first bad line: a broken reference must fail at load, not drift silently.
    """
    try:
        calls, dead_letters = read_call_file(spec.path)
    except IngestError as exc:
        raise TopologyError(f"{where}: reference {exc}; fix reference.path") from None
    if dead_letters:
        letter = dead_letters[0]
        raise TopologyError(
            f"{where}: reference file {spec.path}, line {letter.source_offset}: "
            f"{letter.reason}: {letter.detail}; fix or remove the line"
        )
    return calls


def reference_fingerprint(spec: Monitor, ids: Sequence[str], source: str = "") -> str:
    """A digest of the monitor spec and the reference ids (plus the caller's ``source``).

    >>> from weave_stream.topology.monitors import Monitor
    >>> spec = Monitor(name="m", column="e", reference={"first_n": 2})
    >>> reference_fingerprint(spec, ["a", "b"]) == reference_fingerprint(spec, ["a", "c"])
    False
    """
    digest = hashlib.sha256(spec.model_dump_json().encode())
    digest.update(json.dumps([source, *ids]).encode())
    return digest.hexdigest()[:32]


class CallOrderBuffer:
    """Releases observations in call order (``started_at``, then id) across source partitions.

    An observation is released once every source partition has passed its time, so
    the monitor scores and tests calls in the order they were made, as the local
    runner does, whichever partition was read first. A partition that sent nothing
    for ``idle_seconds`` (wall clock, as :meth:`release` is told) no longer holds the
    others back, and at most ``max_pending`` observations wait.

    >>> from datetime import UTC, datetime
    >>> at = lambda second: datetime(2026, 11, 26, 3, 0, second, tzinfo=UTC)
    >>> buffer = CallOrderBuffer(partitions=2)
    >>> buffer.add(Observation("b", np.ones(2), at(2), partition=0), now=0.0)
    >>> buffer.release(now=0.0)  # partition 1 may still send an earlier call
    []
    >>> buffer.add(Observation("a", np.ones(2), at(1), partition=1), now=0.0)
    >>> buffer.progress(1, at(3), now=0.0)
    >>> [seen.call_id for seen in buffer.release(now=0.0)]
    ['a', 'b']
    """

    def __init__(
        self, partitions: int, *, idle_seconds: float = 5.0, max_pending: int = 10_000
    ) -> None:
        self.partitions = partitions
        self.idle_seconds = idle_seconds
        self.max_pending = max_pending
        self._pending: list[tuple[datetime, str, Observation]] = []
        self._progress: dict[int, tuple[datetime, float]] = {}  # event time, wall clock
        self._started: float | None = None

    def __len__(self) -> int:
        return len(self._pending)

    def add(self, observation: Observation, *, now: float) -> None:
        """Hold ``observation`` until every partition has passed its time."""
        self._started = now if self._started is None else self._started
        heapq.heappush(self._pending, (observation.time, observation.call_id, observation))
        if observation.partition is not None:
            self.progress(observation.partition, observation.time, now=now)

    def progress(self, partition: int, time: datetime, *, now: float) -> None:
        """Source ``partition`` has been read up to a call started at ``time``."""
        self._started = now if self._started is None else self._started
        known = self._progress.get(partition)
        self._progress[partition] = (max(time, known[0]) if known else time, now)

    def release(self, *, now: float, everything: bool = False) -> list[Observation]:
        """The observations no partition can still precede, in call order."""
        bound = None if everything else self._bound(now)
        released = []
        while self._pending and (
            everything
            or len(self._pending) > self.max_pending
            or (bound is not None and self._pending[0][0] <= bound)
        ):
            released.append(heapq.heappop(self._pending)[2])
        return released

    def _bound(self, now: float) -> datetime | None:
        active = [t for t, seen in self._progress.values() if now - seen < self.idle_seconds]
        waiting_for_unseen = len(self._progress) < self.partitions and (
            self._started is None or now - self._started < self.idle_seconds
        )
        if waiting_for_unseen or not self._progress:
            return None
        if not active:  # every partition idle: nothing earlier is coming
            return max(t for t, _ in self._progress.values())
        return min(active)
