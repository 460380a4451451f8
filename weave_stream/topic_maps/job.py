"""One set-up for every fit of a topology's embedding column: :func:`prepare_fit`.

``weave-stream topics fit|plan`` and the worker's scheduled refit
(:func:`~weave_stream.topic_maps.refit.refit_topics`) both build their fit here, so a
manual fit and a scheduled one read the same calls (the ``topics:`` entry's ``since``
unless told otherwise), fit with the same parameters (the entry's knobs, each
overridden only by an explicit value), start from the same previous map (the current
one, unless it was fitted on another embedding model) and share the namer's cache
(``<data_dir>/cache/results.sqlite``, the CLI's result cache): their maps stay
comparable and a name paid for once is free to both.

>>> from weave_stream.topology.topic_columns import TopicColumn
>>> params = fit_params(TopicColumn(column="doc_embedding", max_topics=8), seed=3)
>>> params.seed, params.max_topics, params.min_topic_size, params.k
(3, 8, 5, None)
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

from weave_stream.columns.cache import SqliteCache, results_cache
from weave_stream.config import Settings
from weave_stream.errors import TopicError
from weave_stream.store.topic_map import TopicMap
from weave_stream.store.topic_map_files import MapStore
from weave_stream.topic_maps.cluster import ClusterParams
from weave_stream.topic_maps.fit import FitPlan, TopicInputs, fit_map, plan_fit
from weave_stream.topic_maps.inputs import load_inputs
from weave_stream.topic_maps.naming import TopicNamer
from weave_stream.topology.spec import Topology
from weave_stream.topology.topic_columns import TopicColumn

__all__ = ["FitJob", "fit_params", "prepare_fit", "refit_since"]

_EARLIEST = datetime(2000, 1, 1, tzinfo=UTC)  # calls' times lie after it (ingest checks)


def refit_since(spec: TopicColumn) -> datetime:
    """The oldest ``started_at`` a fit of ``spec`` reads by default: ``since`` before now."""
    return max(datetime.now(UTC) - timedelta(seconds=spec.since), _EARLIEST)


def fit_params(
    spec: TopicColumn,
    *,
    seed: int | None = None,
    max_topics: int | None = None,
    min_topic_size: int | None = None,
    k: int | None = None,
) -> ClusterParams:
    """The clustering parameters of ``spec``, each overridden by a value given here."""
    return ClusterParams(
        seed=spec.seed if seed is None else seed,
        max_topics=max_topics or spec.max_topics,
        min_topic_size=min_topic_size or spec.min_topic_size,
        k=k or spec.k,
    )


@dataclass(frozen=True)
class FitJob:
    """A fit set up by :func:`prepare_fit`: its calls, parameters, previous map, namer."""

    topology: Topology
    column: str
    inputs: TopicInputs
    embedding_ref: str
    maps: MapStore
    previous: TopicMap | None
    params: ClusterParams
    namer: Any  # a TopicNamer op
    cache: SqliteCache

    async def plan(self) -> FitPlan:
        """Cluster and price the naming; asks the LLM nothing."""
        return await plan_fit(self.inputs, self.params, self.namer, self.cache, self.previous)

    async def fit(self, budget: float | None = None) -> TopicMap:
        """The fitted map (not saved); ``budget`` (USD) refuses costlier naming first."""
        return await fit_map(
            self.inputs,
            topology=self.topology.name,
            column=self.column,
            embedding_ref=self.embedding_ref,
            params=self.params,
            namer=self.namer,
            cache=self.cache,
            previous=self.previous,
            budget=budget,
        )

    def unchanged(self, topic_map: TopicMap) -> bool:
        """Whether ``topic_map`` is the previous map itself (same calls and parameters)."""
        return self.previous is not None and topic_map.ref == self.previous.ref


def prepare_fit(
    topology: Topology,
    column: str,
    settings: Settings,
    *,
    entry: TopicColumn | None = None,
    store: Any = None,
    since: Any = None,
    until: Any = None,
    where: Mapping[str, Any] | None = None,
    fresh: bool = False,
    params: ClusterParams | None = None,
    model: str | None = None,
    cache_dir: Path | None = None,
) -> FitJob:
    """Set up a fit of ``topology.column`` (``entry``: its ``topics:`` entry, if any).

    ``since`` defaults to the entry's (``refit_since``), or all calls without one;
    ``params`` to the entry's knobs (:func:`fit_params`); ``fresh`` ignores the current
    map. ``store`` defaults to the settings' store, ``cache_dir`` to
    ``<data_dir>/cache``, ``model`` (the namer's) to ``judge_model``.

    Raises :class:`TopicError` when the store has no embeddings of the column in the
    range, or when the entry says ``frozen: true`` and a map exists already (a first
    fit of a frozen entry is fine).
    """
    from weave_stream.store.tables import Store  # the store's tables: only when fitting

    store = store if store is not None else Store.from_settings(settings)
    if since is None and entry is not None:
        since = refit_since(entry)
    inputs, embedding_ref = load_inputs(
        topology, column, store=store, since=since, until=until, where=where, settings=settings
    )
    maps = MapStore(store)
    previous = None if fresh else maps.current_or_none(topology.name, column)
    if previous is not None and previous.embedding_ref != embedding_ref:
        previous = None  # another model's centres cannot start this fit
    if entry is not None and entry.frozen and previous is not None:
        raise TopicError(
            f"the topics: entry of {topology.name}.{column} says frozen: true: its map is "
            "assigned to, never refitted; drop frozen from the topology (or pass --fresh "
            "to fit a new map anyway)"
        )
    directory = cache_dir or settings.data_dir / "cache"
    directory.mkdir(parents=True, exist_ok=True)
    return FitJob(
        topology=topology,
        column=column,
        inputs=inputs,
        embedding_ref=embedding_ref,
        maps=maps,
        previous=previous,
        params=params or fit_params(entry or TopicColumn(column=column)),
        namer=TopicNamer(model=model, settings=settings),
        cache=results_cache(settings, directory),
    )
