"""``weave-stream topics``: fit, price, show, drill into and freeze topic maps.

``topics fit TOPOLOGY --column doc_embedding`` reads the column's embeddings from the
call store, clusters them and names each topic through the judge endpoint (cached:
a second fit of the same calls asks nothing). When a map is current and not frozen,
a fit is a *refit* from it (ids and names carry over, stability is reported);
``--fresh`` starts over. ``topics plan`` says what the naming would cost;
``--budget`` refuses a fit over it before any LLM call.
"""

from __future__ import annotations

import asyncio
from datetime import UTC, datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any

import click

from weave_stream.cli.options import fail, settings_options
from weave_stream.config import Settings
from weave_stream.errors import TopicError, WeaveStreamError
from weave_stream.query.text import format_frame, parse_where
from weave_stream.topology.loader import load_topology
from weave_stream.topology.topic_columns import TopicColumn

if TYPE_CHECKING:
    from weave_stream.topic_maps.job import FitJob

__all__ = ["COMMANDS"]


def _fit_options(function: Any) -> Any:
    options = [
        click.argument("topology"),
        click.option(
            "--column",
            help="The embedding column (doc_embedding); default: the topology's topics: entry.",
        ),
        click.option(
            "--since",
            help="Calls started within this duration (7d) or from a time "
            "(default: the topics: entry's since, else all).",
        ),
        click.option("--until", help="... and before this duration ago or time."),
        click.option("--where", help="A filter in the topology filter language (YAML)."),
        click.option(
            "--max-topics",
            type=click.IntRange(2, 500),
            help="At most this many topics (default: the topics: entry's, else 30).",
        ),
        click.option(
            "--min-topic-size",
            type=click.IntRange(2),
            help="Calls a topic needs at least (default: the topics: entry's, else 5).",
        ),
        click.option("--k", "k", type=click.IntRange(2), help="A fixed number of topics."),
        click.option("--seed", type=int, help="The fit's seed (default: the entry's, else 0)."),
        click.option("--fresh", is_flag=True, help="Ignore the current map (no refit from it)."),
        click.option("--model", help="The namer's model (default: judge_model)."),
        click.option("--cache-dir", type=click.Path(file_okay=False, path_type=Path)),
        settings_options("store_url", "data_dir", "judge_base_url", "judge_model"),
    ]
    for option in reversed(options):
        function = option(function)
    return function


def _prepare(settings: Settings, options: dict[str, Any]) -> FitJob:
    """The fit the options ask for, set up as the scheduled refit sets up its own: flags
    first, then the topology's ``topics:`` entry (so their maps stay comparable)."""
    from weave_stream.topic_maps.job import fit_params, prepare_fit

    topology = load_topology(options["topology"], settings=settings)
    entry = _topics_entry(topology, options["column"])
    column = options["column"] or (entry.column if entry is not None else "")
    params = fit_params(
        entry or TopicColumn(column=column),
        seed=options["seed"],
        max_topics=options["max_topics"],
        min_topic_size=options["min_topic_size"],
        k=options["k"],
    )
    return prepare_fit(
        topology,
        column,
        settings,
        entry=entry,
        since=options["since"],
        until=options["until"],
        where=parse_where(options["where"]),
        fresh=options["fresh"],
        params=params,
        model=options["model"],
        cache_dir=options["cache_dir"],
    )


def _topics_entry(topology: Any, column: str | None) -> TopicColumn | None:
    """The ``topics:`` entry of ``column`` (or the only one when no column is given)."""
    entries = list(topology.topics)
    if column is not None:
        return next((e for e in entries if e.column == column), None)
    if len(entries) == 1:
        return entries[0]
    listed = ", ".join(e.column for e in entries) or "none"
    raise TopicError(
        f"topology {topology.name!r} declares {len(entries)} topics: entries ({listed}); "
        "name the embedding column with --column"
    )


@click.group(name="topics")
def topics_group() -> None:
    """Topic maps: cluster an embedding column, name the topics with an LLM, assign calls."""


@topics_group.command(name="plan")
@_fit_options
def plan_command(settings: Settings, **options: Any) -> None:
    """What a fit would cost: topics, names cached (free), LLM calls, tokens, dollars."""
    try:
        job = _prepare(settings, options)
        plan = asyncio.run(job.plan())
    except WeaveStreamError as exc:
        fail(str(exc))
        return
    usd = (
        "unknown (model has no price)" if plan.estimate.usd is None else f"${plan.estimate.usd:.4f}"
    )
    click.echo(
        f"{len(job.inputs.call_ids)} calls -> {plan.topics} topics; names cached: "
        f"{plan.cached}; LLM calls: {plan.to_name}; tokens: ~{plan.estimate.tokens}; cost: {usd}"
    )


@topics_group.command(name="fit")
@_fit_options
@click.option("--budget", type=float, help="Refuse the fit if naming would cost more (USD).")
def fit_command(settings: Settings, budget: float | None, **options: Any) -> None:
    """Fit (or refit) the topic map of TOPOLOGY's --column and make it current."""
    try:
        job = _prepare(settings, options)
        topic_map = asyncio.run(job.fit(budget))
        path = job.maps.save(topic_map)
    except WeaveStreamError as exc:
        fail(str(exc))
        return
    if job.unchanged(topic_map):
        click.echo(
            f"{topic_map.ref} stands: the calls and parameters are those of the current map "
            "(nothing refitted, no LLM call)"
        )
        return
    cost = sum(t.naming.cost or 0.0 for t in topic_map.topics)
    cached = sum(t.naming.cached for t in topic_map.topics)
    click.echo(
        f"{topic_map.ref}: {len(topic_map.topics)} topics over {topic_map.call_count} calls; "
        f"names: {cached} cached, {len(topic_map.topics) - cached} asked (${cost:.4f})"
    )
    for topic in topic_map.topics:
        if topic.naming.error:
            click.echo(f"  topic {topic.id} kept the name {topic.name}: {topic.naming.error}")
    if topic_map.refit is not None:
        r = topic_map.refit
        click.echo(
            f"refit of {r.previous_ref}: stability {r.stability:.3f}, ARI {r.adjusted_rand:.3f}; "
            f"born {list(r.born)}, gone {list(r.gone)}, merged {dict(r.merged)}, "
            f"split {dict(r.split)}"
        )
    click.echo(f"stored {path}", err=True)


def _name(topology: str, settings: Settings) -> str:
    """A topology's name: as given, or read from its file when given a path."""
    if topology.endswith((".yaml", ".yml", ".py")) or "/" in topology:
        return load_topology(topology, settings=settings).name
    return topology


def _current(settings: Settings, topology: str, column: str | None) -> Any:
    from weave_stream.store.tables import Store
    from weave_stream.topic_maps import MapStore

    column = _column(settings, topology, column)
    return MapStore(Store.from_settings(settings)).current(_name(topology, settings), column)


def _column(settings: Settings, topology: str, column: str | None) -> str:
    """``--column``, or the column of the topology's only ``topics:`` entry."""
    if column is not None:
        return column
    entry = _topics_entry(load_topology(topology, settings=settings), None)
    assert entry is not None  # without a column, _topics_entry finds one or raises
    return entry.column


@topics_group.command(name="show")
@click.argument("topology")
@click.option(
    "--column",
    help="The embedding column; default: the topology's only topics: entry.",
)
@click.option("--format", "output_format", type=click.Choice(["table", "json"]), default="table")
@click.option(
    "--plot",
    type=click.Path(dir_okay=False, path_type=Path),
    help="Also draw the calls in 2-D by topic, and the topic shares over time, to FILE.png.",
)
@click.option(
    "--every", default="1h", show_default=True, help="The shares' time bucket (10m, 1h, 1d)."
)
@settings_options("store_url", "data_dir")
def show_command(
    topology: str,
    column: str | None,
    output_format: str,
    plot: Path | None,
    every: str,
    settings: Settings,
) -> None:
    """The current map: each topic's name, size, share and mean scores (95 % CI)."""
    from weave_stream.store.tables import Store
    from weave_stream.topic_maps.frames import plot_map, topic_table

    try:
        topic_map = _current(settings, topology, column)
        if plot is not None:
            plot_map(topic_map, plot, store=Store.from_settings(settings), every=every)
            click.echo(f"wrote {plot}", err=True)
    except WeaveStreamError as exc:
        fail(str(exc))
        return
    frozen = " (frozen)" if topic_map.frozen else ""
    click.echo(f"{topic_map.ref}{frozen}: {topic_map.call_count} calls", err=True)
    click.echo(format_frame(topic_table(topic_map), output_format), nl=False)


@topics_group.command(name="drill")
@click.argument("topology")
@click.argument("topic")
@click.option(
    "--column",
    help="The embedding column; default: the topology's only topics: entry.",
)
@click.option("--limit", type=click.IntRange(min=1), default=20, show_default=True)
@settings_options("store_url", "data_dir")
def drill_command(
    topology: str, topic: str, column: str | None, limit: int, settings: Settings
) -> None:
    """The calls behind TOPIC (its name or id) in the current map, with excerpts."""
    from weave_stream.store.tables import Store
    from weave_stream.topic_maps.frames import topic_calls
    from weave_stream.topic_maps.inputs import embedding_column

    try:
        topic_map = _current(settings, topology, column)
        chosen = topic_map.topic_named(topic)
        loaded = load_topology(topology, settings=settings)
        _, text_path = embedding_column(loaded, topic_map.column)
        store = Store.from_settings(settings)
        columns = ["op_name", "started_at", text_path]
        query = topic_calls(topic_map, chosen.id, store=store, columns=columns)
        frame = query.limit(limit).to_pandas()
    except WeaveStreamError as exc:
        fail(str(exc))
        return
    click.echo(f"topic {chosen.id} {chosen.name!r}: {chosen.size} calls", err=True)
    click.echo(format_frame(frame, "table"), nl=False)


@topics_group.command(name="freeze")
@click.argument("topology")
@click.option(
    "--column",
    help="The embedding column; default: the topology's only topics: entry.",
)
@click.option("--off", is_flag=True, help="Thaw: let fits refit the map again.")
@settings_options("store_url", "data_dir")
def freeze_command(topology: str, column: str | None, off: bool, settings: Settings) -> None:
    """Freeze the current map: new calls are assigned to it, never refitted."""
    from weave_stream.store.tables import Store
    from weave_stream.topic_maps import MapStore

    try:
        maps = MapStore(Store.from_settings(settings))
        topic_map = _current(settings, topology, column)
        maps.save(topic_map.with_frozen(not off))
    except WeaveStreamError as exc:
        fail(str(exc))
        return
    click.echo(f"{topic_map.ref} {'thawed' if off else 'frozen'}")


@topics_group.command(name="watch")
@click.argument("topology")
@click.option(
    "--column",
    help="The embedding column; default: the topology's only topics: entry.",
)
@click.option("--since", default="1h", show_default=True, help="The window: calls this recent.")
@click.option("--z", "z_threshold", type=float, default=4.0, show_default=True)
@click.option("--min-calls", type=click.IntRange(1), default=50, show_default=True)
@click.option("--min-new-topic", type=click.IntRange(2), default=8, show_default=True)
@click.option("--send", is_flag=True, help="Also produce the alerts to <prefix>.alerts.")
@settings_options("store_url", "data_dir")
def watch_command(
    topology: str,
    column: str | None,
    since: str,
    z_threshold: float,
    min_calls: int,
    min_new_topic: int,
    send: bool,
    settings: Settings,
) -> None:
    """Check the calls of the window against the current map: topic_shift and new_topic
    alerts, as JSON lines (``--send``: to the alerts topic, for the notifier)."""
    from weave_stream.store.tables import Store
    from weave_stream.topic_maps.assign import TopicIndex, check_map
    from weave_stream.topic_maps.inputs import load_inputs
    from weave_stream.topic_maps.watch import TopicWatch, WindowCall

    try:
        loaded = load_topology(topology, settings=settings)
        column = _column(settings, topology, column)
        topic_map = _current(settings, loaded.name, column)
        inputs, embedding_ref = load_inputs(
            loaded, column, store=Store.from_settings(settings), since=since
        )
        check_map(topic_map, column, embedding_ref)
        assigned = TopicIndex(topic_map).assign(inputs.vectors)
        window = [
            WindowCall(call_id, a["topic_id"], vector.tolist(), text[:200])
            for call_id, a, vector, text in zip(
                inputs.call_ids, assigned, inputs.vectors, inputs.texts, strict=True
            )
        ]
        watch = TopicWatch(topic_map, z_threshold, min_calls, min_new_topic)
        alerts = watch.check(window, time=datetime.now(UTC))
        if send and alerts:
            _send(settings, alerts)
    except WeaveStreamError as exc:
        fail(str(exc))
        return
    click.echo(f"{len(window)} calls since {since} against {topic_map.ref}", err=True)
    for alert in alerts:
        click.echo(alert.to_json().decode())
    if not alerts:
        click.echo("no topic alerts", err=True)


def _send(settings: Settings, alerts: list[Any]) -> None:
    from weave_stream.broker.kafka import produce
    from weave_stream.cli.options import connected

    with connected(settings) as live:
        records = [(a.id.encode(), a.to_json(), ()) for a in alerts]
        asyncio.run(produce(live, live.topics.alerts, records))


COMMANDS = [topics_group]
