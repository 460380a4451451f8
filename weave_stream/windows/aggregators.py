"""Mergeable partial aggregates: the :class:`Aggregator` contract and the plain-number ones.

An aggregator is configuration; its *state* is the partial aggregate a bucket keeps.
Four methods make the contract (as quix-streams' aggregations), plus a JSON codec:

``initialize()``          the state of no values;
``add(state, batch)``     fold a micro-batch of inputs in, return the state;
``merge(state, other)``   fold another partial in (``other`` is never modified);
``result(state)``         the finished figures;
``encode`` / ``decode``   compact JSON, for changelog tables and the query API.

``merge`` is exact for every aggregator here but the sketch (see
:mod:`weave_stream.windows.sketch`), so partials kept per partition and merged at
query time equal one aggregate over all the values.

>>> moments = Moments()
>>> left = moments.add(moments.initialize(), [1.0, 2.0])
>>> right = moments.add(moments.initialize(), [3.0, 4.0, 5.0])
>>> figures = moments.result(moments.merge(left, right))
>>> figures["count"], figures["mean"], round(figures["std"], 6)
(5, 3.0, 1.581139)
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from functools import lru_cache
from typing import Any, Protocol, TypeVar

from scipy import stats

__all__ = [
    "OTHER",
    "Aggregator",
    "Categories",
    "CostSum",
    "Moments",
    "Outcomes",
    "t_critical",
]

S = TypeVar("S")
I_contra = TypeVar("I_contra", contravariant=True)
R_co = TypeVar("R_co", covariant=True)
OTHER = "__other__"


class Aggregator(Protocol[S, I_contra, R_co]):
    """A mergeable partial aggregate: configuration here, state in the bucket."""

    def initialize(self) -> S:
        """The state of no values."""
        ...

    def add(self, state: S, batch: I_contra) -> S:
        """Fold a micro-batch of inputs into ``state``; may modify and return it."""
        ...

    def merge(self, state: S, other: S) -> S:
        """Fold ``other`` into ``state``; may modify and return ``state``, never ``other``."""
        ...

    def result(self, state: S) -> R_co:
        """The finished figures of ``state``."""
        ...

    def encode(self, state: S) -> Any:
        """``state`` as compact JSON-compatible data."""
        ...

    def decode(self, data: Any) -> S:
        """A state back from :meth:`encode`'s output."""
        ...


@lru_cache(maxsize=4096)
def t_critical(degrees_of_freedom: int, confidence: float = 0.95) -> float:
    """Two-sided Student t critical value (``t.ppf((1 + confidence) / 2, df)``), cached.

    >>> round(t_critical(9), 4), round(t_critical(10**6), 3)
    (2.2622, 1.96)
    """
    return float(stats.t.ppf((1.0 + confidence) / 2.0, degrees_of_freedom))


class Moments:
    """Count, sum, mean, variance (Welford/Chan), min and max: exactly mergeable.

    State ``[n, mean, m2, sum, min, max]``. ``std`` is the sample standard deviation
    (``ddof=1``, as pandas); ``ci95_low``/``ci95_high`` bound the mean with Student's
    t at ``n - 1`` degrees of freedom. Fewer than two values give NaN for those.
    """

    def initialize(self) -> list[float]:
        return [0, 0.0, 0.0, 0.0, math.inf, -math.inf]

    def add(self, state: list[float], batch: Sequence[float]) -> list[float]:
        count = len(batch)
        if not count:
            return state
        total = sum(batch)
        mean = total / count
        m2 = sum((x - mean) * (x - mean) for x in batch) if count > 1 else 0.0
        return self._combine(state, count, mean, m2, total, min(batch), max(batch))

    def merge(self, state: list[float], other: list[float]) -> list[float]:
        if not other[0]:
            return state
        return self._combine(state, *other)

    @staticmethod
    def _combine(
        state: list[float],
        n_b: float,
        mean_b: float,
        m2_b: float,
        sum_b: float,
        lo: float,
        hi: float,
    ) -> list[float]:
        n_a, mean_a = state[0], state[1]
        n = n_a + n_b
        delta = mean_b - mean_a
        state[0] = n
        state[1] = mean_a + delta * n_b / n
        state[2] = state[2] + m2_b + delta * delta * n_a * n_b / n
        state[3] += sum_b
        state[4] = min(state[4], lo)
        state[5] = max(state[5], hi)
        return state

    def result(self, state: list[float]) -> dict[str, float]:
        n = int(state[0])
        nan = math.nan
        if n == 0:
            return dict.fromkeys(
                ("mean", "std", "var", "ci95_low", "ci95_high", "min", "max"), nan
            ) | {
                "count": 0,
                "sum": 0.0,
            }
        var = state[2] / (n - 1) if n > 1 else nan
        std = math.sqrt(var) if n > 1 else nan
        half = t_critical(n - 1) * std / math.sqrt(n) if n > 1 else nan
        mean = state[1]
        return {
            "count": n,
            "sum": state[3],
            "mean": mean,
            "std": std,
            "var": var,
            "ci95_low": mean - half,
            "ci95_high": mean + half,
            "min": state[4],
            "max": state[5],
        }

    def encode(self, state: list[float]) -> Any:
        return state if state[0] else [0]

    def decode(self, data: Any) -> list[float]:
        return [float(x) for x in data] if data[0] else self.initialize()


class Categories:
    """Counts per value, at most ``max_values`` distinct ones; the rest count under ``__other__``.

    Values are counted as text (``True`` as ``"true"``). Once the cap is reached, new
    values go to ``__other__``; a merge over the cap keeps the most frequent values.

    >>> cats = Categories(max_values=2)
    >>> cats.result(cats.add(cats.initialize(), ["a", "b", "a", "c", True]))
    {'a': 2, 'b': 1, '__other__': 2}
    """

    def __init__(self, max_values: int = 50) -> None:
        if max_values < 1:
            raise ValueError(f"max_values must be at least 1, got {max_values}")
        self.max_values = max_values

    def initialize(self) -> dict[str, int]:
        return {}

    def add(self, state: dict[str, int], batch: Sequence[Any]) -> dict[str, int]:
        cap = self.max_values + (OTHER in state)
        get = state.get
        for value in batch:
            label = value if value.__class__ is str else _label(value)
            if label in state:
                state[label] += 1
            elif len(state) < cap:
                state[label] = 1
            else:
                state[OTHER] = get(OTHER, 0) + 1
                cap = self.max_values + 1
        return state

    def merge(self, state: dict[str, int], other: dict[str, int]) -> dict[str, int]:
        for label, count in other.items():
            state[label] = state.get(label, 0) + count
        named = [label for label in state if label != OTHER]
        if len(named) > self.max_values:
            named.sort(key=lambda label: (-state[label], label))
            folded = sum(state.pop(label) for label in named[self.max_values :])
            state[OTHER] = state.get(OTHER, 0) + folded
        return state

    def result(self, state: dict[str, int]) -> dict[str, int]:
        ordered = sorted(state.items(), key=lambda item: (item[0] == OTHER, -item[1], item[0]))
        return dict(ordered)

    def encode(self, state: dict[str, int]) -> Any:
        return state

    def decode(self, data: Any) -> dict[str, int]:
        return {str(k): int(v) for k, v in data.items()}


def _label(value: Any) -> str:
    if value is True or value is False:
        return "true" if value else "false"
    return str(value)


class Outcomes:
    """Observations of a column, how many were op errors and how many were not valid inputs.

    State ``[observations, errors, invalid]``; a batch is such a triple.
    ``error_rate = errors / observations`` (NaN when nothing was observed).

    >>> out = Outcomes()
    >>> out.result(out.add(out.initialize(), (4, 1, 0)))["error_rate"]
    0.25
    """

    def initialize(self) -> list[int]:
        return [0, 0, 0]

    def add(self, state: list[int], batch: tuple[int, int, int]) -> list[int]:
        state[0] += batch[0]
        state[1] += batch[1]
        state[2] += batch[2]
        return state

    def merge(self, state: list[int], other: list[int]) -> list[int]:
        return self.add(state, (other[0], other[1], other[2]))

    def result(self, state: list[int]) -> dict[str, float]:
        rate = state[1] / state[0] if state[0] else math.nan
        return {
            "observations": state[0],
            "errors": state[1],
            "invalid": state[2],
            "error_rate": rate,
        }

    def encode(self, state: list[int]) -> Any:
        return state

    def decode(self, data: Any) -> list[int]:
        return [int(x) for x in data]


class CostSum:
    """Sum of costs (dollars) of a column's values, errors included (a failed op still costs).

    >>> cost = CostSum()
    >>> cost.result(cost.add(cost.initialize(), [0.25, 0.5]))
    {'cost_sum': 0.75, 'costed': 2}
    """

    def initialize(self) -> list[float]:
        return [0, 0.0]

    def add(self, state: list[float], batch: Sequence[float]) -> list[float]:
        state[0] += len(batch)
        state[1] += sum(batch)
        return state

    def merge(self, state: list[float], other: list[float]) -> list[float]:
        state[0] += other[0]
        state[1] += other[1]
        return state

    def result(self, state: list[float]) -> dict[str, float]:
        return {"cost_sum": state[1], "costed": int(state[0])}

    def encode(self, state: list[float]) -> Any:
        return state

    def decode(self, data: Any) -> list[float]:
        return [int(data[0]), float(data[1])]
