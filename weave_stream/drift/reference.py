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
>>> from weave_stream.drift.spec import FirstNReference
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
import json
from collections.abc import Sequence
from datetime import datetime

import numpy as np

from weave_stream.drift.spec import (
    FirstNReference,
    JsonlReference,
    MonitorSpec,
    ReferenceSpec,
    TimeRangeReference,
)
from weave_stream.errors import TopologyError
from weave_stream.ingest.call import Call
from weave_stream.ingest.outcomes import expire_pending, ingest_record

__all__ = ["ReferenceCollector", "read_reference_calls", "reference_fingerprint"]

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
        lines = spec.path.read_bytes().splitlines()
    except OSError as exc:
        raise TopologyError(
            f"{where}: reference file {spec.path} cannot be read ({exc.strerror}); "
            "fix reference.path"
        ) from None
    pending: dict[str, object] = {}
    calls: list[Call] = []
    for number, line in enumerate(lines, start=1):
        if not line.strip():
            continue
        result = ingest_record(line, pending, now=0.0)
        if result.dead_letter is not None:
            letter = result.dead_letter
            raise TopologyError(
                f"{where}: reference file {spec.path}, line {number}: {letter.reason}: "
                f"{letter.detail}; fix or remove the line"
            )
        if result.call is not None:
            calls.append(result.call)
    calls.extend(expire_pending(pending, now=1.0, timeout=0.0))  # unmatched halves, as they are
    return calls


def reference_fingerprint(spec: MonitorSpec, ids: Sequence[str], source: str = "") -> str:
    """A digest of the monitor spec and the reference ids (plus the caller's ``source``).

    >>> from weave_stream.drift.spec import MonitorSpec
    >>> spec = MonitorSpec(name="m", column="e", reference={"first_n": 2})
    >>> reference_fingerprint(spec, ["a", "b"]) == reference_fingerprint(spec, ["a", "c"])
    False
    """
    digest = hashlib.sha256(spec.model_dump_json().encode())
    digest.update(json.dumps([source, *ids]).encode())
    return digest.hexdigest()[:32]
