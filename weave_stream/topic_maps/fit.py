"""Fitting a topic map: cluster, pick representative documents, name, score, match.

:func:`fit_map` is the whole fit over :class:`TopicInputs` (call ids, embeddings,
texts, derived scores); :func:`plan_fit` is the same up to the naming, which it only
prices. Both are pure but for the namer's HTTP calls and the cache; reading the
inputs from the store is :func:`weave_stream.topic_maps.inputs.load_inputs`.
"""

from __future__ import annotations

import math
import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field, replace
from typing import Any

import numpy as np
from scipy import stats

from weave_stream.columns.cache import ResultCache
from weave_stream.errors import BudgetExceededError, TopicError
from weave_stream.ops.base import CostEstimate
from weave_stream.store.topic_map import Naming, Refit, Topic, TopicMap, map_ref
from weave_stream.topic_maps.cluster import Clustering, ClusterParams, cluster, unit_rows
from weave_stream.topic_maps.matching import compare_assignments, match_centres, nearest
from weave_stream.topic_maps.naming import estimate_naming, name_topics, naming_input

__all__ = ["FitPlan", "TopicInputs", "fit_map", "plan_fit"]

NEAREST_EXAMPLES = 5  # documents nearest the centre shown to the namer
SPREAD_EXAMPLES = 3  # and a few spread across the topic
MATCH_DISTANCE = 0.35  # centres farther apart (cosine) are different topics


@dataclass(frozen=True)
class TopicInputs:
    """What a fit reads: one row per call."""

    call_ids: Sequence[str]
    vectors: np.ndarray
    texts: Sequence[str]
    scores: Mapping[str, Sequence[float | None]] = field(default_factory=dict)

    def __post_init__(self) -> None:
        if not len(self.call_ids) == len(self.vectors) == len(self.texts):
            raise TopicError(
                f"topic inputs disagree: {len(self.call_ids)} call ids, {len(self.vectors)} "
                f"vectors, {len(self.texts)} texts"
            )


@dataclass(frozen=True)
class FitPlan:
    """What a fit would cost: topics to name, how many the cache has, the LLM estimate."""

    topics: int
    to_name: int
    estimate: CostEstimate
    clustering: Clustering = field(repr=False)

    @property
    def cached(self) -> int:
        """Topics whose name the cache already has (free)."""
        return self.topics - self.to_name


def _clustering(
    inputs: TopicInputs, params: ClusterParams, previous: TopicMap | None
) -> Clustering:
    init = None
    if previous is not None:
        _refuse_frozen(previous)
        ordered = sorted(previous.topics, key=lambda t: -t.size)
        init = np.asarray([t.centre for t in ordered], dtype=np.float32)
    return cluster(inputs.vectors, params, init=init)


def _refuse_frozen(previous: TopicMap) -> None:
    if previous.frozen:
        raise TopicError(
            f"topic map {previous.ref} of {previous.topology}.{previous.column} is frozen: "
            "new calls are assigned to it, never refitted. Thaw it with "
            "`weave-stream topics freeze --off` to refit"
        )


def _examples(inputs: TopicInputs, clustering: Clustering) -> list[list[int]]:
    data = unit_rows(inputs.vectors)
    out = []
    for topic in range(clustering.k):
        members = np.flatnonzero(clustering.labels == topic)
        distance = 1.0 - data[members] @ clustering.centres[topic]
        order = members[np.argsort(distance, kind="stable")]
        chosen = list(order[:NEAREST_EXAMPLES])
        rest = order[NEAREST_EXAMPLES:]
        if len(rest):
            picks = np.linspace(0, len(rest) - 1, min(SPREAD_EXAMPLES, len(rest))).round()
            chosen += [rest[int(i)] for i in picks]
        out.append([int(i) for i in dict.fromkeys(chosen)])
    return out


async def plan_fit(
    inputs: TopicInputs,
    params: ClusterParams,
    namer: Any,
    cache: ResultCache,
    previous: TopicMap | None = None,
) -> FitPlan:
    """Cluster, then price the naming (cached names are free); asks the LLM nothing."""
    clustering = _clustering(inputs, params, previous)
    naming = [
        naming_input([inputs.texts[i] for i in rows]) for rows in _examples(inputs, clustering)
    ]
    to_name, estimate = await estimate_naming(namer, naming, cache)
    return FitPlan(clustering.k, to_name, estimate, clustering)


async def fit_map(
    inputs: TopicInputs,
    *,
    topology: str,
    column: str,
    embedding_ref: str,
    params: ClusterParams,
    namer: Any,
    cache: ResultCache,
    previous: TopicMap | None = None,
    budget: float | None = None,
) -> TopicMap:
    """Fit a topic map; ``budget`` (dollars) refuses a fit whose naming costs more,
    before any LLM call (:class:`BudgetExceededError`).

    A refit of exactly the calls, parameters and ops of ``previous`` returns
    ``previous`` itself: nothing changed, so the map stands (same ref, no new version).
    """
    if previous is not None:
        _refuse_frozen(previous)
    if previous is not None and _unchanged(previous, inputs, params, embedding_ref, namer.ref):
        return previous
    plan = await plan_fit(inputs, params, namer, cache, previous)
    if budget is not None and (plan.estimate.usd is None or plan.estimate.usd > budget):
        usd = "an unknown amount" if plan.estimate.usd is None else f"${plan.estimate.usd:.4f}"
        raise BudgetExceededError(
            f"naming {plan.to_name} of {plan.topics} topics of {topology}.{column} would cost "
            f"{usd} ({plan.estimate.tokens} tokens), over the budget of ${budget:.4f}: raise "
            "--budget, or fit fewer topics (--max-topics)"
        )
    clustering = plan.clustering
    ids = _topic_ids(clustering, previous)
    examples = _examples(inputs, clustering)
    naming = [naming_input([inputs.texts[i] for i in rows]) for rows in examples]
    named = await name_topics(namer, naming, cache)
    counts = np.bincount(clustering.labels, minlength=clustering.k)
    topics = []
    for index in range(clustering.k):
        result, cached = named[index]
        topic_id = ids[index]
        members = clustering.labels == index
        details = result.details
        tokens = details.get("prompt_tokens", 0) + details.get("completion_tokens", 0)
        topics.append(
            Topic(
                id=topic_id,
                name=result.value["name"] if result.ok else f"topic-{topic_id}",
                description=result.value["description"] if result.ok else "",
                centre=tuple(float(x) for x in clustering.centres[index]),
                radius=float(clustering.radii[index]),
                size=int(counts[index]),
                share=float(counts[index] / len(inputs.call_ids)),
                example_call_ids=tuple(inputs.call_ids[i] for i in examples[index]),
                scores=_scores(inputs.scores, members),
                naming=Naming(
                    op_ref=namer.ref,
                    cached=cached,
                    cost=result.cost,
                    tokens=int(tokens) or None,
                    error=result.error,
                    prompt_sha256=details.get("prompt_sha256"),
                ),
            )
        )
    labels = [ids[label] for label in clustering.labels.tolist()]
    fit_params = {**params.to_dict(), "previous": previous.ref if previous else None}
    ref = map_ref(inputs.call_ids, fit_params, {"embedding": embedding_ref, "namer": namer.ref})
    topic_map = TopicMap(
        topology=topology,
        column=column,
        embedding_ref=embedding_ref,
        ref=ref,
        topics=tuple(sorted(topics, key=lambda t: t.id)),
        params=fit_params,
        namer_ref=namer.ref,
        call_count=len(inputs.call_ids),
        created_at=time.time(),
        assignments=dict(zip(inputs.call_ids, labels, strict=True)),
        silhouette_by_k=dict(clustering.silhouette_by_k),
    )
    if previous is not None:
        topic_map = replace(topic_map, refit=_refit(inputs, previous, labels, ids))
    return topic_map


def _unchanged(
    previous: TopicMap,
    inputs: TopicInputs,
    params: ClusterParams,
    embedding_ref: str,
    namer_ref: str,
) -> bool:
    own = {k: v for k, v in previous.params.items() if k != "previous"}
    return (
        own == params.to_dict()
        and previous.embedding_ref == embedding_ref
        and previous.namer_ref == namer_ref
        and set(previous.assignments) == set(inputs.call_ids)
    )


def _topic_ids(clustering: Clustering, previous: TopicMap | None) -> list[int]:
    """An id per cluster: a matched previous topic's id, else the next free one; a first
    fit numbers topics by size (largest 0), so the same data gives the same ids."""
    counts = np.bincount(clustering.labels, minlength=clustering.k)
    by_size = sorted(range(clustering.k), key=lambda i: (-counts[i], i))
    if previous is None:
        ids = [0] * clustering.k
        for rank, index in enumerate(by_size):
            ids[index] = rank
        return ids
    old_centres = np.asarray([t.centre for t in previous.topics], dtype=np.float32)
    matched = match_centres(old_centres, clustering.centres, MATCH_DISTANCE)
    ids = [-1] * clustering.k
    for new_index, old_index in matched.items():
        ids[new_index] = previous.topics[old_index].id
    next_id = max((t.id for t in previous.topics), default=-1) + 1
    for index in by_size:
        if ids[index] == -1:
            ids[index], next_id = next_id, next_id + 1
    return ids


def _refit(inputs: TopicInputs, previous: TopicMap, labels: list[int], ids: list[int]) -> Refit:
    old_centres = np.asarray([t.centre for t in previous.topics], dtype=np.float32)
    old_ids = [previous.topics[i].id for i in nearest(inputs.vectors, old_centres).tolist()]
    stability, ari, merged, split = compare_assignments(old_ids, labels)
    old_set = {t.id for t in previous.topics}
    new_set = set(ids)
    return Refit(
        previous_ref=previous.ref,
        stability=stability,
        adjusted_rand=ari,
        carried={i: i for i in sorted(new_set & old_set)},
        born=tuple(sorted(new_set - old_set)),
        gone=tuple(sorted(old_set - new_set)),
        merged=merged,
        split=split,
    )


def _scores(
    scores: Mapping[str, Sequence[float | None]], members: np.ndarray
) -> dict[str, dict[str, float]]:
    out = {}
    for name, values in scores.items():
        picked = np.asarray(values, dtype=object)[members]
        numbers = np.asarray([float(v) for v in picked if v is not None], dtype=np.float64)
        numbers = numbers[np.isfinite(numbers)]
        if len(numbers) == 0:
            continue
        mean = float(numbers.mean())
        low = high = mean
        if len(numbers) > 1:
            half = float(stats.sem(numbers)) * float(stats.t.ppf(0.975, len(numbers) - 1))
            if math.isfinite(half):
                low, high = mean - half, mean + half
        out[name] = {"mean": mean, "low": low, "high": high, "count": float(len(numbers))}
    return out
