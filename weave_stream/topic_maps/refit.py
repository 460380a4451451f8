"""A scheduled refit of a topology's ``topics:`` entry, from the call store.

:func:`refit_topics` is what a worker's refit timer runs (and what ``weave-stream
topics fit`` does by hand): read the entry's column over the last ``since``, refit
from the current map (ids and names carry over; names come from the cache where the
documents did not change), store the new map and make it current. It never replaces
a map that is frozen (by ``topics freeze`` or ``frozen: true``), and a fit that fails
raises, leaving the current map as it was: assignment goes on with it.

Its outcome says what happened, for the worker's health and metrics.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any, Literal

from weave_stream.columns.cache import SqliteCache
from weave_stream.config import Settings
from weave_stream.store.topic_map_files import MapStore
from weave_stream.topic_maps.cluster import ClusterParams
from weave_stream.topic_maps.fit import fit_map
from weave_stream.topic_maps.inputs import load_inputs
from weave_stream.topic_maps.naming import TopicNamer
from weave_stream.topology.spec import Topology
from weave_stream.topology.topic_columns import TopicColumn

__all__ = ["CACHE_FILE", "RefitOutcome", "refit_since", "refit_topics"]

_EARLIEST = datetime(2000, 1, 1, tzinfo=UTC)  # calls' times lie after it (ingest checks)
CACHE_FILE = "results.sqlite"  # the CLI's result cache in <data_dir>/cache: names shared


@dataclass(frozen=True)
class RefitOutcome:
    """What a refit did: ``fitted`` a new map, the map ``unchanged``, or ``skipped`` (frozen)."""

    outcome: Literal["fitted", "unchanged", "skipped"]
    ref: str | None
    detail: str


def refit_since(spec: TopicColumn) -> datetime:
    """The oldest ``started_at`` a refit of ``spec`` reads: ``since`` before now."""
    return max(datetime.now(UTC) - timedelta(seconds=spec.since), _EARLIEST)


async def refit_topics(
    topology: Topology,
    spec: TopicColumn,
    settings: Settings,
    *,
    store: Any = None,
    cache_dir: Path | None = None,
) -> RefitOutcome:
    """Refit ``spec``'s map from the calls of the last ``spec.since`` (see the module).

    Raises what the fit raises (:class:`~weave_stream.errors.TopicError` for too few
    calls, a budget exceeded, ...); the current map is then left as it was.
    """
    from weave_stream.store.tables import Store  # the store's tables: only when refitting

    store = store if store is not None else Store.from_settings(settings)
    maps = MapStore(store)
    previous = maps.current_or_none(topology.name, spec.column)
    if spec.frozen or (previous is not None and previous.frozen):
        why = "frozen: true" if spec.frozen else "its map is frozen (topics freeze --off thaws)"
        return RefitOutcome("skipped", previous.ref if previous else None, why)
    inputs, embedding_ref = load_inputs(
        topology, spec.column, store=store, since=refit_since(spec), settings=settings
    )
    if previous is not None and previous.embedding_ref != embedding_ref:
        previous = None  # another model's centres cannot start this fit
    params = ClusterParams(
        seed=spec.seed,
        max_topics=spec.max_topics,
        min_topic_size=spec.min_topic_size,
        k=spec.k,
    )
    directory = cache_dir or settings.data_dir / "cache"
    directory.mkdir(parents=True, exist_ok=True)
    topic_map = await fit_map(
        inputs,
        topology=topology.name,
        column=spec.column,
        embedding_ref=embedding_ref,
        params=params,
        namer=TopicNamer(settings=settings),
        cache=SqliteCache(directory / CACHE_FILE, max_bytes=settings.cache_max_bytes),
        previous=previous,
        budget=spec.budget,
    )
    if previous is not None and topic_map.ref == previous.ref:
        return RefitOutcome("unchanged", topic_map.ref, "the calls and parameters are the same")
    maps.save(topic_map)
    detail = f"{len(topic_map.topics)} topics over {topic_map.call_count} calls"
    if topic_map.refit is not None:
        detail += f"; stability {topic_map.refit.stability:.3f} against {previous and previous.ref}"
    return RefitOutcome("fitted", topic_map.ref, detail)
