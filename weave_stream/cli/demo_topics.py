"""The demo's topics steps: a map fitted after the first calls, then the stream's use of it.

:func:`fit_first_map` fits the topology's ``topics:`` entry on the calls the store
holds so far, with the function a worker's refit schedule runs
(:func:`~weave_stream.topic_maps.refit.refit_topics`): named by the demo's judge
endpoint (the stand-in says it is not an LLM), stored, and made the current map. From
then on the worker's topic column assigns every call as it streams, and checks each
window of assigned calls for ``topic_shift`` / ``new_topic``. :func:`show_stream_topics`
shows what the column made of the later calls, the topic table over every stored
call (``calls(...).topics(...).summary()``, as a notebook user would ask) and the map.
"""

from __future__ import annotations

import asyncio
import time
from collections import Counter
from collections.abc import Sequence
from datetime import UTC, datetime
from pathlib import Path

import click

from weave_stream.columns.derive import DerivedValue
from weave_stream.config import Settings
from weave_stream.errors import WeaveStreamError
from weave_stream.query.text import format_frame
from weave_stream.runners.workers import WorkerProcess
from weave_stream.store.topic_map import TopicMap
from weave_stream.topic_maps.windows import IDLE_SECONDS
from weave_stream.topology.spec import Topology
from weave_stream.topology.topic_columns import TopicColumn

__all__ = ["await_topic_checks", "fit_first_map", "show_stream_topics"]

_MAX_WAIT = 180.0  # the demo waits this long at most for the worker's window checks


def fit_first_map(settings: Settings, topology: Topology, spec: TopicColumn) -> TopicMap | None:
    """Fit, name and store ``spec``'s first map from the stored calls; show it (None: failed)."""
    from weave_stream.store.tables import Store
    from weave_stream.store.topic_map_files import MapStore
    from weave_stream.topic_maps.frames import topic_table
    from weave_stream.topic_maps.refit import refit_topics

    store = Store.from_settings(settings)
    try:
        asyncio.run(refit_topics(topology, spec, settings, store=store))
        topic_map = MapStore(store).current(topology.name, spec.column)
    except WeaveStreamError as exc:
        click.echo(f"  topics could not be fitted: {exc}")
        return None
    click.echo(
        f"  {topic_map.ref}: {len(topic_map.topics)} topics fitted on the first "
        f"{topic_map.call_count} calls (k by silhouette), named by the judge endpoint; "
        f"the current map of {topology.name}.{spec.column} from now on:"
    )
    click.echo(format_frame(topic_table(topic_map).drop(columns=["description"]), "table"))
    if topic_map.topics:
        click.echo(f"  topic {topic_map.topics[0].id}: {topic_map.topics[0].description[:160]}")
    return topic_map


def await_topic_checks(
    worker: WorkerProcess,
    topology: Topology,
    spec: TopicColumn,
    window_ends: Sequence[float],
) -> int:
    """Wait until the worker checked the windows ending at ``window_ends`` (epoch seconds)
    for topic alerts: a window is due once the stream passed its end plus grace, or, the
    stream quiet, once the clock has. Returns the windows checked."""
    if not spec.watch.enabled or not window_ends:
        return 0
    key = (
        f'weave_stream_topic_windows_checked_total{{column="{spec.name}",'
        f'topology="{topology.name}"}}'
    )
    last_due = max(window_ends) + spec.watch.grace
    wait = max(last_due - time.time(), 0.0) + IDLE_SECONDS + 15.0
    if wait > _MAX_WAIT:
        due = datetime.fromtimestamp(last_due, UTC).strftime("%H:%M:%S")
        click.echo(
            f"  the last window of the calls is checked for topic alerts at {due} UTC: "
            "its alerts come then (`weave-stream alerts`); the demo goes on"
        )
        return 0
    click.echo(
        f"  waiting up to {wait:.0f}s for the worker to check {len(window_ends)} window(s) of "
        f"{spec.watch.window:g}s for topic_shift / new_topic (each is checked once the "
        f"stream passed its end + {spec.watch.grace:g}s grace, or the clock has)"
    )
    deadline = time.monotonic() + wait
    checked = 0
    while time.monotonic() < deadline:
        checked = int(worker.metrics().get(key, 0.0))
        if checked >= len(window_ends):
            break
        time.sleep(1.0)
    if checked >= len(window_ends):
        click.echo(f"  the worker checked {checked} window(s) of assigned calls")
    else:
        click.secho(
            f"  the worker checked {checked} of {len(window_ends)} window(s) in {wait:.0f}s: "
            f"see {worker.log_path} and `weave-stream status`",
            fg="yellow",
        )
    return checked


def show_stream_topics(
    settings: Settings,
    topology: Topology,
    spec: TopicColumn,
    values: Sequence[DerivedValue],
    out_dir: Path,
    topology_path: Path,
) -> Path | None:
    """What the worker's topic column made of the calls, the topic table over every stored
    call, and the map's plot (its path; None when there is no map to show); the commands
    to see them again name ``topology_path``, the file the demo registered."""
    from weave_stream.query.calls import calls
    from weave_stream.store.tables import Store
    from weave_stream.topic_maps.frames import plot_map

    mine = [v for v in values if v.column == spec.name and v.trial == 0]
    assigned = [v.value for v in mine if v.error is None and isinstance(v.value, dict)]
    mix = Counter(str(a["topic"]) for a in assigned)
    shown = ", ".join(f"{name} {count}" for name, count in mix.most_common(6))
    rest = mix.most_common()[6:]
    if rest:
        shown += f", and {sum(n for _, n in rest)} in {len(rest)} other topic(s)"
    click.echo(
        f"  the worker's {spec.name} column assigned the {len(assigned)} calls that came "
        f"after the map, as they streamed: {shown or 'none'}"
    )
    click.echo(
        f"  ({len(mine) - len(assigned)} calls came before it: their {spec.name} value is an "
        "error saying that no map was fitted yet)"
    )
    store = settings.store_location
    click.echo("  the topic table over every stored call, in Python:")
    click.secho(
        "  >>> from weave_stream import calls\n"
        f"  >>> calls(store={store!r}, op={topology.source.op_name!r})"
        f".topics({topology.name!r}, {spec.column!r}).summary()",
        fg="cyan",
    )
    try:
        topics = calls(settings=settings, op=topology.source.op_name).topics(
            topology.name, spec.column
        )
        summary = topics.summary()
        click.echo(format_frame(summary.drop(columns=["description"]), "table"), nl=False)
        plot = plot_map(
            topics.map, out_dir / "topics.png", store=Store.from_settings(settings), every="1m"
        )
    except WeaveStreamError as exc:
        click.echo(f"  the topics could not be shown: {exc}")
        return None
    click.echo(f"  plot: {plot}")
    click.secho(
        f"  weave-stream topics show {topology_path} --store-url {store}    # the same, later "
        f"(and topics drill {topology_path} TOPIC --store-url {store})",
        fg="cyan",
    )
    return plot
