"""The demo's topics step: fit a topic map over the stored calls, name it, show it.

The first half of the stored calls (by start time) are fitted; the namer is the
judge endpoint of the demo (the stand-in says it is not an LLM); the rest are
assigned by the topic column (the same op a streaming topology would run), and the
topic table and the map's plot are shown.
"""

from __future__ import annotations

import asyncio
from collections import Counter
from pathlib import Path

import click

from weave_stream.columns.cache import MemoryCache
from weave_stream.config import Settings
from weave_stream.errors import WeaveStreamError
from weave_stream.query.text import format_frame
from weave_stream.topology.spec import Topology

__all__ = ["show_topics"]

COLUMN = "doc_embedding"


def show_topics(settings: Settings, topology: Topology, out_dir: Path) -> bool:
    """Fit, name, store and show a topic map of ``topology``'s embeddings; False if it could not."""
    from weave_stream.store.tables import Store
    from weave_stream.topic_maps import ClusterParams, MapStore, TopicInputs, TopicNamer, fit_map
    from weave_stream.topic_maps.assign import TopicIndex
    from weave_stream.topic_maps.frames import plot_map, topic_table
    from weave_stream.topic_maps.inputs import load_inputs

    if COLUMN not in {c.name for c in topology.compiled}:
        click.echo(f"  {topology.name} has no {COLUMN} column: no topics to fit")
        return True
    store = Store.from_settings(settings)
    try:
        inputs, embedding_ref = load_inputs(topology, COLUMN, store=store)
        half = len(inputs.call_ids) // 2
        first = TopicInputs(
            inputs.call_ids[:half],
            inputs.vectors[:half],
            inputs.texts[:half],
            {k: v[:half] for k, v in inputs.scores.items()},
        )
        topic_map = asyncio.run(
            fit_map(
                first,
                topology=topology.name,
                column=COLUMN,
                embedding_ref=embedding_ref,
                params=ClusterParams(seed=0, max_topics=12),
                namer=TopicNamer(settings=settings),
                cache=MemoryCache(),
            )
        )
        MapStore(store).save(topic_map)
        assigned = TopicIndex(topic_map).assign(inputs.vectors[half:])
        plot = plot_map(topic_map, out_dir / "topics.png", store=store, every="1m")
    except WeaveStreamError as exc:
        click.echo(f"  topics could not be fitted: {exc}")
        return False
    click.echo(
        f"  {topic_map.ref}: {len(topic_map.topics)} topics fitted on the first {half} calls "
        f"(k by silhouette), named by the judge endpoint:"
    )
    click.echo(format_frame(topic_table(topic_map).drop(columns=["description"]), "table"))
    if topic_map.topics:
        click.echo(f"  topic {topic_map.topics[0].id}: {topic_map.topics[0].description[:160]}")
    mix = Counter(a["topic"] for a in assigned)
    shown = ", ".join(f"{name} {count}" for name, count in mix.most_common(6))
    click.echo(f"  the other {len(assigned)} calls, assigned by the topic column: {shown}")
    click.echo(f"  plot: {plot}")
    return True
