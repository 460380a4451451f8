"""Quantiles from a mergeable DDSketch, with a stated relative-error guarantee.

The sketch is the ``ddsketch`` package's ``LogCollapsingLowestDenseDDSketch``: values
map to logarithmic bins, ``bin_limit`` bins at most per sign.

**Guarantee.** With relative accuracy ``a`` (default 0.01), the value reported for
quantile ``q`` over ``n`` values is within ``a * |x|`` of ``x``, the value of rank
``floor(q * (n - 1))`` (0-based) in sorted order -- numpy's ``quantile(...,
method="lower")``. Merging adds bin counts, so a merged sketch carries the same
guarantee as one sketch fed every value. It holds while the sketch has not
collapsed: with ``a = 0.01`` and 2048 bins per sign, the values of one sign must span
less than a factor of ~6e17 (``((1 + a) / (1 - a)) ** 2048``); beyond that the lowest
bins fold together, only the low quantiles lose accuracy, and ``collapsed`` says so.

>>> sketch = QuantileSketch(0.01, ("p50", "p99"))
>>> state = sketch.add(sketch.initialize(), [float(v) for v in range(1, 101)])
>>> figures = sketch.result(state)
>>> abs(figures["p50"] - 50) <= 0.01 * 50, abs(figures["p99"] - 99) <= 0.01 * 99
(True, True)
>>> sketch.result(sketch.decode(sketch.encode(state))) == figures
True
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import Any, cast

from ddsketch import LogCollapsingLowestDenseDDSketch
from ddsketch.store import CollapsingLowestDenseStore

from weave_stream.topology.aggregates import quantile_of

__all__ = ["DEFAULT_BIN_LIMIT", "QuantileSketch"]

DEFAULT_BIN_LIMIT = 2048
_CHUNK = 128


class QuantileSketch:
    """The quantiles named in ``metrics`` (``p50``, ``p99.9``...) from one DDSketch per bucket."""

    def __init__(
        self,
        relative_accuracy: float = 0.01,
        metrics: Sequence[str] = ("p50", "p90", "p99"),
        bin_limit: int = DEFAULT_BIN_LIMIT,
    ) -> None:
        if not 0 < relative_accuracy < 1:
            raise ValueError(f"relative accuracy must be in (0, 1), got {relative_accuracy}")
        quantiles = [quantile_of(name) for name in metrics]
        if any(q is None for q in quantiles):
            raise ValueError(f"quantile names look like p50 or p99.9, got {list(metrics)}")
        self.relative_accuracy = relative_accuracy
        self.bin_limit = bin_limit
        self.quantiles = {
            name: float(q) for name, q in zip(metrics, quantiles, strict=True) if q is not None
        }

    def initialize(self) -> LogCollapsingLowestDenseDDSketch:
        return LogCollapsingLowestDenseDDSketch(self.relative_accuracy, self.bin_limit)

    def add(
        self, state: LogCollapsingLowestDenseDDSketch, batch: Sequence[float]
    ) -> LogCollapsingLowestDenseDDSketch:
        add = state.add
        for value in batch:
            add(value)
        return state

    def merge(
        self, state: LogCollapsingLowestDenseDDSketch, other: LogCollapsingLowestDenseDDSketch
    ) -> LogCollapsingLowestDenseDDSketch:
        state.merge(other)
        return state

    def result(self, state: LogCollapsingLowestDenseDDSketch) -> dict[str, float]:
        figures: dict[str, float] = {}
        for name, quantile in self.quantiles.items():
            value = state.get_quantile_value(quantile)
            figures[name] = math.nan if value is None else float(value)
        positive, negative = _stores(state)
        figures["collapsed"] = float(positive.is_collapsed or negative.is_collapsed)
        return figures

    def encode(self, state: LogCollapsingLowestDenseDDSketch) -> Any:
        if not state.count:
            return [0]
        positive, negative = _stores(state)
        return [
            _number(state.count),
            state.sum,
            state._min,
            state._max,
            _number(state._zero_count),
            _encode_store(positive),
            _encode_store(negative),
        ]

    def decode(self, data: Any) -> LogCollapsingLowestDenseDDSketch:
        state = self.initialize()
        if not data[0]:
            return state
        count, total, low, high, zeros, positive, negative = data
        positive_store, negative_store = _stores(state)
        _decode_store(positive_store, positive)
        _decode_store(negative_store, negative)
        state._zero_count = float(zeros)
        state._count = float(count)
        state._sum = float(total)
        state._min = float(low)
        state._max = float(high)
        return state


def _stores(
    state: LogCollapsingLowestDenseDDSketch,
) -> tuple[CollapsingLowestDenseStore, CollapsingLowestDenseStore]:
    # The package's own serialisation needs protobuf; its stores are plain attributes.
    return cast(CollapsingLowestDenseStore, state._store), cast(
        CollapsingLowestDenseStore, state._negative_store
    )


def _number(value: float) -> float | int:
    return int(value) if float(value).is_integer() else value


def _encode_store(store: CollapsingLowestDenseStore) -> Any:
    if not store.count:
        return None
    first = store.min_key - store.offset
    bins = store.bins[first : store.max_key - store.offset + 1]
    # A slice of floats: orjson writes it in C, no per-bin Python work.
    return [store.min_key, bins, int(store.is_collapsed)]


def _decode_store(store: CollapsingLowestDenseStore, data: Any) -> None:
    if data is None:
        return
    min_key, bins, collapsed = data
    length = min(_CHUNK * math.ceil(len(bins) / _CHUNK), max(store.bin_limit, len(bins)))
    store.bins = [float(b) for b in bins] + [0.0] * (length - len(bins))
    store.offset = int(min_key)
    store.min_key = int(min_key)
    store.max_key = int(min_key) + len(bins) - 1
    store.count = float(sum(store.bins))
    store.is_collapsed = bool(collapsed)
