"""Pricing sub-steps before anything runs: the ops a column's op would call, and their cost.

A column's op that calls ops costs what it calls too. For each input the plan would
compute (cached parents call nothing, so their sub-steps are free):

* when the op computed that input before, the cache noted which sub-calls it made
  (:func:`~weave_stream.columns.subcalls.call_index`, by op *name*, so a new version of
  the parent still finds it): each of those still keyed by the sub-op's current ref
  and still in the cache is free; the others cost the estimate noted with them (the
  sub-op's own estimate on its real input), or, when the sub-op changed since, the
  sub-op's estimate now;
* otherwise each op it calls costs its own estimate, times the calls per input the
  parent declared (``@op(calls={judge: 3})``), else the mean measured over the inputs
  whose sub-calls were noted, else one. Its input is not known before the parent
  runs: the estimate is asked for the parent's input, each argument the sub-op takes
  read from the parent's argument of that name, else its longest text (sub-steps
  mostly read what their parent reads, so this errs on the costly side).

Sub-steps of sub-steps are priced the same way, to a depth of :data:`MAX_DEPTH`
(a recursive op is priced that deep and no deeper).

>>> step = SubStepEstimate("summary", "embed", "embed:1", 4.0, 1.0, 3.0, CostEstimate(0, 0.0, 0.3))
>>> step.to_compute, step.measured
(3.0, False)
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from weave_stream.columns.cache import CacheKey, ResultCache
from weave_stream.columns.subcalls import calls_key
from weave_stream.ops.base import CostEstimate

__all__ = ["MAX_DEPTH", "SubStepEstimate", "SubSteps", "proxy_input"]

MAX_DEPTH = 4


@dataclass(frozen=True)
class SubStepEstimate:
    """The plan of one op's sub-calls under one column: expected calls and their cost."""

    column: str
    op: str
    op_ref: str
    calls: float  # expected sub-calls (fractional when rates are means)
    cache_hits: float
    to_compute: float
    estimate: CostEstimate
    measured: bool = False  # some counts come from sub-calls noted when parents ran


@dataclass
class _Tally:
    op: str
    op_ref: str
    calls: float = 0.0
    cache_hits: float = 0.0
    to_compute: float = 0.0
    estimate: CostEstimate = field(default_factory=CostEstimate)
    measured: bool = False


@dataclass
class SubSteps:
    """Sub-step prices gathered over the batches of a plan, per column and called op."""

    tallies: dict[tuple[str, str], _Tally] = field(default_factory=dict)

    def of(self, column: str) -> list[SubStepEstimate]:
        """The sub-steps of ``column``, in the order first priced."""
        return [
            SubStepEstimate(
                column, t.op, t.op_ref, t.calls, t.cache_hits, t.to_compute, t.estimate, t.measured
            )
            for (name, _), t in self.tallies.items()
            if name == column
        ]

    async def price(
        self,
        column: str,
        op: Any,
        inputs: Sequence[Mapping[str, Any]],
        keys: Sequence[CacheKey | None],
        cache: ResultCache,
    ) -> None:
        """Add the sub-steps of computing ``inputs`` (cache keys ``keys``) with ``op``."""
        level: list[tuple[Any, Mapping[str, Any], CacheKey | None, float]] = [
            (op, item, key, 1.0) for item, key in zip(inputs, keys, strict=True)
        ]
        for _ in range(MAX_DEPTH):
            level = [entry for entry in level if getattr(entry[0], "sub_ops", ())]
            if not level:
                return
            level = await self._level(column, level, cache)

    async def _level(
        self,
        column: str,
        level: list[tuple[Any, Mapping[str, Any], CacheKey | None, float]],
        cache: ResultCache,
    ) -> list[tuple[Any, Mapping[str, Any], CacheKey | None, float]]:
        asked = {
            calls_key(parent.name, key.input_digest, key.trial)
            for parent, _, key, _ in level
            if key is not None
        }
        noted = await cache.get_many(list(asked))
        rates = _measured_rates(level, noted)
        following: list[tuple[Any, Mapping[str, Any], CacheKey | None, float]] = []
        recorded: list[tuple[Any, Mapping[str, Any], float, list[Any]]] = []
        for parent, item, key, weight in level:
            entry = noted.get(calls_key(parent.name, key.input_digest, key.trial)) if key else None
            if entry is not None:
                recorded.extend((parent, item, weight, list(row)) for row in entry.value)
                continue
            declared = getattr(parent, "calls_per_input", {})
            for sub in parent.sub_ops:
                count = declared.get(sub.name, rates.get((parent.name, sub.name), 1.0)) * weight
                guess = proxy_input(sub, item)
                tally = self._tally(column, sub)
                tally.measured |= (parent.name, sub.name) in rates
                tally.calls += count
                tally.to_compute += count
                tally.estimate += _scaled(sub.estimate([guess]), count)
                following.append((sub, guess, None, count))
        current = {
            CacheKey(row[1], row[2], int(row[3]))
            for parent, _, _, row in recorded
            if (sub := _sub_named(parent, row[0])) is not None and sub.ref == row[1]
        }
        hits = await cache.get_many(list(current))
        for parent, item, weight, row in recorded:
            name, ref, digest, trial, tokens, usd, seconds = row
            sub = _sub_named(parent, name)
            if sub is None:
                continue  # the parent no longer calls it
            tally = self._tally(column, sub)
            tally.measured = True
            tally.calls += weight
            child_key = CacheKey(ref, digest, int(trial))
            if sub.ref == ref and child_key in hits:
                tally.cache_hits += weight
                continue
            tally.to_compute += weight
            guess = proxy_input(sub, item)
            if sub.ref == ref:
                noted_estimate = CostEstimate(int(tokens), usd, float(seconds))
                tally.estimate += _scaled(noted_estimate, weight)
                following.append((sub, guess, child_key, weight))
            else:  # the sub-op changed since: its estimate now, on the parent's input
                tally.estimate += _scaled(sub.estimate([guess]), weight)
                following.append((sub, guess, None, weight))
        return following

    def _tally(self, column: str, sub: Any) -> _Tally:
        ref = sub.ref
        return self.tallies.setdefault((column, ref), _Tally(sub.name, ref))


def proxy_input(sub: Any, item: Mapping[str, Any]) -> dict[str, Any]:
    """An input for ``sub``'s estimate made of its parent's ``item`` (see the module doc).

    >>> from weave_stream.ops.decorator import op
    >>> proxy_input(op(lambda text: text), {"document": "a long text", "lang": "en"})
    {'text': 'a long text'}
    """
    signature = sub.signature
    names = signature.required or signature.optional[:1]
    texts = [value for value in item.values() if isinstance(value, str)]
    longest = max(texts, key=len, default="")
    return {name: item.get(name, longest) for name in names}


def _sub_named(parent: Any, name: str) -> Any:
    return next((sub for sub in parent.sub_ops if sub.name == name), None)


def _measured_rates(
    level: Sequence[tuple[Any, Mapping[str, Any], CacheKey | None, float]],
    noted: Mapping[CacheKey, Any],
) -> dict[tuple[str, str], float]:
    """Mean sub-calls per input, by (parent name, sub-op name), over the noted inputs."""
    inputs: dict[str, int] = defaultdict(int)
    calls: dict[tuple[str, str], int] = defaultdict(int)
    for parent, _, key, _ in level:
        entry = noted.get(calls_key(parent.name, key.input_digest, key.trial)) if key else None
        if entry is None:
            continue
        inputs[parent.name] += 1
        for row in entry.value:
            calls[(parent.name, row[0])] += 1
    rates = {pair: count / inputs[pair[0]] for pair, count in calls.items()}
    for parent, _, _, _ in level:  # noted inputs that called a sub-op zero times: rate 0
        for sub in parent.sub_ops:
            if inputs.get(parent.name):
                rates.setdefault((parent.name, sub.name), 0.0)
    return rates


def _scaled(estimate: CostEstimate, factor: float) -> CostEstimate:
    usd = None if estimate.usd is None else estimate.usd * factor
    return CostEstimate(round(estimate.tokens * factor), usd, estimate.seconds * factor)
