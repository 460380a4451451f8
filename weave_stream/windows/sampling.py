"""The calls behind a bucket: a bounded uniform sample and the worst ``k`` by a score.

Both follow the :class:`~weave_stream.windows.aggregators.Aggregator` contract, with
rows as inputs and compact entries (see :mod:`weave_stream.windows.rows`) as output;
an entry is built only for a row that is kept, so a row that is not costs a random
draw or a comparison.

* :class:`Reservoir` keeps ``size`` entries, each row seen so far equally likely to be
  among them (Vitter's algorithm R). Two reservoirs merge into a uniform sample of
  the union: each slot is drawn from one side with probability proportional to the
  rows that side has left (a sequential hypergeometric draw).
* :class:`WorstK` keeps the ``k`` rows with the lowest (or highest) score, ties
  broken by call id, so merging in any order gives the same answer.

>>> import random
>>> reservoir = Reservoir(3, entry=lambda row: [row], rng=random.Random(7))
>>> state = reservoir.add(reservoir.initialize(), list(range(100)))
>>> state[0], len(state[1])
(100, 3)
>>> worst = WorstK(2, "lowest", score=lambda row: row[1], entry=lambda row: [row[0]])
>>> worst.result(worst.add(worst.initialize(), [("a", 0.9), ("b", 0.1), ("c", 0.5), ("d", None)]))
[[0.1, ['b']], [0.5, ['c']]]
"""

from __future__ import annotations

import heapq
import random
from collections.abc import Callable, Sequence
from typing import Any, Generic, Literal, TypeVar

from weave_stream.windows.rows import Entry

__all__ = ["Reservoir", "WorstK"]

T = TypeVar("T")


class Reservoir(Generic[T]):
    """A uniform sample of at most ``size`` rows; state ``[rows_seen, entries]``."""

    def __init__(
        self, size: int, entry: Callable[[T], Entry], rng: random.Random | None = None
    ) -> None:
        if size < 0:
            raise ValueError(f"reservoir size must be non-negative, got {size}")
        self.size = size
        self.entry = entry
        self.rng = rng or random.Random()

    def initialize(self) -> list[Any]:
        return [0, []]

    def add(self, state: list[Any], batch: Sequence[T]) -> list[Any]:
        seen, entries = state[0], state[1]
        size, entry, draw = self.size, self.entry, self.rng.random
        for row in batch:
            seen += 1
            if len(entries) < size:
                entries.append(entry(row))
            else:
                slot = int(draw() * seen)
                if slot < size:
                    entries[slot] = entry(row)
        state[0] = seen
        return state

    def merge(self, state: list[Any], other: list[Any]) -> list[Any]:
        seen_a, seen_b = state[0], other[0]
        if not seen_b:
            return state
        if seen_a + seen_b <= self.size or not seen_a:
            state[1] = state[1] + list(other[1])
            state[0] = seen_a + seen_b
            return state
        pool_a, pool_b = list(state[1]), list(other[1])
        self.rng.shuffle(pool_a)
        self.rng.shuffle(pool_b)
        left_a, left_b = seen_a, seen_b
        merged = []
        for _ in range(min(self.size, len(pool_a) + len(pool_b))):
            if pool_a and (not pool_b or self.rng.random() * (left_a + left_b) < left_a):
                merged.append(pool_a.pop())
                left_a -= 1
            else:
                merged.append(pool_b.pop())
                left_b -= 1
        return [seen_a + seen_b, merged]

    def result(self, state: list[Any]) -> list[Entry]:
        return list(state[1])

    def encode(self, state: list[Any]) -> Any:
        return state

    def decode(self, data: Any) -> list[Any]:
        return [int(data[0]), list(data[1])]


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
