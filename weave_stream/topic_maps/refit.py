"""A scheduled refit of a topology's ``topics:`` entry, from the call store.

:func:`refit_topics` is what a worker's refit timer runs (``weave-stream topics fit``
does the same by hand: both set the fit up with
:func:`~weave_stream.topic_maps.job.prepare_fit`): read the entry's column over the
last ``since``, refit from the current map (ids and names carry over; names come from
the cache where the documents did not change), store the new map and make it current.
It never replaces a map that is frozen (by ``topics freeze`` or ``frozen: true``), and
a fit that fails raises, leaving the current map as it was: assignment goes on with it.

Its outcome says what happened, for the worker's health and metrics.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal

from weave_stream.config import Settings
from weave_stream.store.topic_map_files import MapStore
from weave_stream.topic_maps.job import prepare_fit
from weave_stream.topology.spec import Topology
from weave_stream.topology.topic_columns import TopicColumn

__all__ = ["RefitOutcome", "refit_topics"]


@dataclass(frozen=True)
class RefitOutcome:
    """What a refit did: ``fitted`` a new map, the map ``unchanged``, or ``skipped`` (frozen)."""

    outcome: Literal["fitted", "unchanged", "skipped"]
    ref: str | None
    detail: str


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
    previous = MapStore(store).current_or_none(topology.name, spec.column)
    if spec.frozen or (previous is not None and previous.frozen):
        why = "frozen: true" if spec.frozen else "its map is frozen (topics freeze --off thaws)"
        return RefitOutcome("skipped", previous.ref if previous else None, why)
    job = prepare_fit(topology, spec.column, settings, entry=spec, store=store, cache_dir=cache_dir)
    with job.cache:  # a worker refits again and again: each refit closes its connection
        topic_map = await job.fit(budget=spec.budget)
    if job.unchanged(topic_map):
        return RefitOutcome("unchanged", topic_map.ref, "the calls and parameters are the same")
    job.maps.save(topic_map)
    detail = f"{len(topic_map.topics)} topics over {topic_map.call_count} calls"
    if topic_map.refit is not None:
        stability, previous_ref = topic_map.refit.stability, topic_map.refit.previous_ref
        detail += f"; stability {stability:.3f} against {previous_ref}"
    return RefitOutcome("fitted", topic_map.ref, detail)
