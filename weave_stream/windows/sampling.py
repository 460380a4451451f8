"""The calls behind a bucket: a bounded uniform sample of calls and the worst ``k`` by a score.

Both follow the :class:`~weave_stream.windows.aggregators.Aggregator` contract, with
rows as inputs and compact entries (see :mod:`weave_stream.windows.rows`) as output;
an entry is built only for a row that is kept, so a row that is not costs a hash
or a comparison.

* :class:`CallSample` keeps ``size`` calls, each call equally likely to be among
  them: the calls whose stable id hash is lowest (bottom-k sampling, as a reservoir
  with hashed priorities). Unlike a classic reservoir (Vitter's R, whose merge must
  draw from each side in proportion to the rows it saw) it merges exactly, gives
  the same sample however the rows were split or replayed, and keeps every trial of
  a sampled call together -- what the per-call error bars across trials need.
* :class:`WorstK` keeps the ``k`` rows with the lowest (or highest) score, ties
  broken by call id, so merging in any order gives the same answer.

>>> sample = CallSample(3, call_id=lambda row: row[0], entry=lambda row: list(row))
>>> calls = [f"c{i}" for i in range(100)]
>>> state = sample.add(sample.initialize(), [(call, trial) for call in calls for trial in (0, 1)])
>>> sorted(state) == sorted(sorted(calls, key=priority_of)[:3])   # the 3 lowest hashes
True
>>> [len(entries) for _, entries in state.values()]                 # with both trials each
[2, 2, 2]
>>> worst = WorstK(2, "lowest", score=lambda row: row[1], entry=lambda row: [row[0]])
>>> worst.result(worst.add(worst.initialize(), [("a", 0.9), ("b", 0.1), ("c", 0.5), ("d", None)]))
[[0.1, ['b']], [0.5, ['c']]]
"""

from __future__ import annotations

import heapq
from collections.abc import Callable, Sequence
from typing import Any, Generic, Literal, TypeVar

from weave_stream.windows.dedupe import stable_hash64
from weave_stream.windows.rows import Entry

__all__ = ["MAX_ROWS_PER_CALL", "CallSample", "WorstK", "priority_of"]

T = TypeVar("T")
MAX_ROWS_PER_CALL = 32


class CallSample(Generic[T]):
    """A uniform sample of at most ``size`` calls, each with all its rows; bottom-k by hash.

    State ``{call_id: [priority, entries]}``. A call's priority is a stable 64-bit hash
    of its id; the sample holds the ``size`` calls of lowest priority, and every row of
    a held call (up to ``max_rows_per_call``: trials, columns), so a call's trials stay
    together. Merging keeps the lowest priorities of the union: exact, whatever the
    order or the split, and a redelivered row changes nothing.
    """

    def __init__(
        self,
        size: int,
        call_id: Callable[[T], str],
        entry: Callable[[T], Entry],
        max_rows_per_call: int = MAX_ROWS_PER_CALL,
    ) -> None:
        if size < 0 or max_rows_per_call < 1:
            raise ValueError(
                f"sample size must be >= 0 and rows per call >= 1, got {size}, {max_rows_per_call}"
            )
        self.size = size
        self.call_id = call_id
        self.entry = entry
        self.max_rows_per_call = max_rows_per_call

    def initialize(self) -> dict[str, list[Any]]:
        return {}

    def add(self, state: dict[str, list[Any]], batch: Sequence[T]) -> dict[str, list[Any]]:
        size, cap, entry = self.size, self.max_rows_per_call, self.entry
        if not size:
            return state
        largest = _largest(state) if len(state) >= size else None
        for row in batch:
            call = self.call_id(row)
            held = state.get(call)
            if held is not None:
                if len(held[1]) < cap:
                    held[1].append(entry(row))
                continue
            priority = priority_of(call)
            if largest is None:
                state[call] = [priority, [entry(row)]]
                if len(state) >= size:
                    largest = _largest(state)
            elif (priority, call) < largest:
                state[call] = [priority, [entry(row)]]
                del state[largest[1]]
                largest = _largest(state)
        return state

    def merge(
        self, state: dict[str, list[Any]], other: dict[str, list[Any]]
    ) -> dict[str, list[Any]]:
        for call, (priority, entries) in other.items():
            held = state.get(call)
            if held is None:
                state[call] = [priority, list(entries[: self.max_rows_per_call])]
            else:
                room = self.max_rows_per_call - len(held[1])
                held[1] = held[1] + list(entries[: max(room, 0)])
        if len(state) > self.size:
            kept = sorted(state.items(), key=lambda item: (item[1][0], item[0]))[: self.size]
            state = dict(kept)
        return state

    def result(self, state: dict[str, list[Any]]) -> list[Entry]:
        ordered = sorted(state.items(), key=lambda item: (item[1][0], item[0]))
        return [entry for _, (_, entries) in ordered for entry in entries]

    def encode(self, state: dict[str, list[Any]]) -> Any:
        return state

    def decode(self, data: Any) -> dict[str, list[Any]]:
        return {
            str(call): [int(priority), list(entries)] for call, (priority, entries) in data.items()
        }


def priority_of(call_id: str) -> int:
    """The stable 64-bit sampling priority of a call (independent of its dedupe hashes)."""
    return stable_hash64("\x1d" + call_id)


def _largest(state: dict[str, list[Any]]) -> tuple[int, str]:
    return max((held[0], call) for call, held in state.items())


class WorstK(Generic[T]):
    """The ``k`` rows with the ``lowest`` (or ``highest``) score; state ``[[score, entry], ...]``.

    ``score(row)`` gives ``None`` for rows without a usable score; they are skipped.
    """

    def __init__(
        self,
        k: int,
        direction: Literal["lowest", "highest"],
        score: Callable[[T], float | None],
        entry: Callable[[T], Entry],
    ) -> None:
        if direction not in ("lowest", "highest"):
            raise ValueError(f"direction must be 'lowest' or 'highest', got {direction!r}")
        self.k = k
        self.direction = direction
        self.sign = 1.0 if direction == "lowest" else -1.0
        self.score = score
        self.entry = entry

    def initialize(self) -> list[Any]:
        return []

    def add(self, state: list[Any], batch: Sequence[T]) -> list[Any]:
        if not self.k:
            return state
        sign, score = self.sign, self.score
        threshold = sign * state[-1][0] if len(state) >= self.k else float("inf")
        candidates = []
        for index, row in enumerate(batch):
            value = score(row)
            if value is not None and sign * value <= threshold:
                candidates.append((sign * value, index))
        if not candidates:
            return state
        chosen = heapq.nsmallest(self.k, candidates)
        fresh = [[key * sign, self.entry(batch[index])] for key, index in chosen]
        return self._best(state + fresh)

    def merge(self, state: list[Any], other: list[Any]) -> list[Any]:
        return self._best(state + list(other)) if other else state

    def _best(self, pairs: list[Any]) -> list[Any]:
        sign = self.sign
        pairs.sort(key=lambda pair: (sign * pair[0], str(pair[1][0])))
        return pairs[: self.k]

    def result(self, state: list[Any]) -> list[Any]:
        return [list(pair) for pair in state]

    def encode(self, state: list[Any]) -> Any:
        return state

    def decode(self, data: Any) -> list[Any]:
        return [[float(score), entry] for score, entry in data]
