"""Never commit a source offset that was not processed: Faust's commit rule, made strict.

Faust commits, per partition, the end of the first run of consecutive acknowledged
offsets. Two of its rules let that run start past an offset no agent processed:

* a single missing offset at the head (committed ``N``, acknowledged ``N+1, N+2``)
  is taken for a compacted-topic gap and committed over (faust-streaming#606);
* offsets the fetch loop sees skipped (a record ``N+k`` read right after ``N``) are
  recorded as a gap and committed over as if acknowledged.

Both happen after a restart, when Faust's recovery resumes partitions and fetching
before it seeks them back to their committed offsets (faust-streaming#596): records
of the first fetch race the seek, some are dropped as already read, and a gap opens.
Measured here: after a SIGKILL and restart, a call now and then never reached the
aggregates (159 of 160), or commits stopped for good at the gap.

The topics weave-stream's agents read are neither compacted nor written in
transactions under ``at_least_once``, so they have no real gaps: there, a partition
commits only up to its first offset not acknowledged. A dropped record then holds its
partition's commits back instead of vanishing; the stall watchdog
(:mod:`~weave_stream.runners.streaming.watchdog`) sees the lag and restarts the
worker, which reads again from the committed offset. Under ``exactly_once`` (real
Kafka, transaction markers make real gaps) Faust's own rule stays.
"""

from __future__ import annotations

from typing import Any

from faust.transport.consumer import Consumer
from faust.types import TP
from faust.utils.functional import consecutive_numbers

__all__ = ["commit_only_processed_offsets", "next_commit"]


def next_commit(acked: list[int], committed: int | None) -> tuple[int | None, list[int]]:
    """The offset to commit after ``acked`` (the next one to read), and the offsets it
    covers; None if the next offset to read (``committed``) is not acknowledged yet.

    >>> next_commit([12, 10, 11], committed=10)
    (13, [10, 11, 12])
    >>> next_commit([11, 12], committed=10)  # offset 10 was never processed
    (None, [])
    >>> next_commit([10, 11, 13], committed=10)
    (12, [10, 11])
    >>> next_commit([8, 9, 10], committed=10)  # 8 and 9 are committed: drop them
    (None, [8, 9])
    """
    acked.sort()
    stale = [offset for offset in acked if committed is not None and offset < committed]
    if stale:
        return None, stale
    if not acked or (committed is not None and acked[0] != committed):
        return None, []
    run = next(consecutive_numbers(acked))
    return run[-1] + 1, list(run)


def commit_only_processed_offsets() -> None:
    """Make every Faust consumer in this process commit only processed offsets."""

    def _new_offset(self: Any, tp: TP) -> int | None:
        acked: list[int] = self._acked[tp]
        if not acked:
            return None
        offset, covered = next_commit(acked, self._committed_offset[tp])
        if covered:
            del acked[: len(covered)]
            self._acked_index[tp].difference_update(covered)
        return offset

    async def _add_gap(self: Any, tp: TP, offset_from: int, offset_to: int) -> None:
        """A skipped offset is one not processed yet, never a gap to commit over."""

    Consumer._new_offset = _new_offset  # type: ignore[method-assign]
    Consumer._add_gap = _add_gap  # type: ignore[method-assign]
