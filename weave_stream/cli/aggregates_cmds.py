"""``aggregates``, ``drill``, ``compare``: windowed aggregates of a topology, from Kafka or a file.

Without ``--input`` they read what the workers computed (the topology's aggregate
changelog, merged over every partition and worker, see
:mod:`weave_stream.aggregates.source`); with ``--input calls.jsonl`` they run the
topology in-process over the file (the local runner) and compute the same figures.
:func:`show_aggregates` is the demo's closing step.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import click
import orjson

from weave_stream.aggregates.queries import (
    comparison_frame,
    drill,
    parse_by,
    parse_group,
    plot_tables,
    query_tables,
    tables_document,
)
from weave_stream.aggregates.source import read_snapshots
from weave_stream.broker.kafka import group_progress
from weave_stream.cli.options import connected, fail, settings_options
from weave_stream.columns.values import read_derived
from weave_stream.config import Settings
from weave_stream.errors import WeaveStreamError
from weave_stream.runners.local import local_aggregates, run_local
from weave_stream.topology.loader import load_topology
from weave_stream.topology.registrations import registered_topology
from weave_stream.topology.spec import Topology
from weave_stream.windows.bucket import AggregatePlan

__all__ = ["COMMANDS", "show_aggregates"]

_FORMAT = click.Choice(["table", "csv", "json"])
_INPUT = click.option(
    "--input",
    "input_file",
    type=click.Path(exists=True, dir_okay=False, path_type=Path),
    help="Compute over this JSONL file of calls in-process (TOPOLOGY: a file or a name "
    "under topologies/) instead of reading what the workers computed.",
)


def _snapshots(
    topology_name: str, input_file: Path | None, settings: Settings
) -> tuple[Topology, list[AggregatePlan], dict[str, Any]]:
    if input_file is not None:
        topology = load_topology(topology_name, settings)
        plans, local = local_aggregates(topology, input_file)
        return topology, plans, dict(local)
    with connected(settings) as connected_settings:
        topology = asyncio.run(registered_topology(connected_settings, topology_name))
        plans, partials = asyncio.run(read_snapshots(connected_settings, topology))
    return topology, plans, dict(partials)


@click.command(name="aggregates")
@click.argument("topology")
@click.option("--aggregate", help="Show only this aggregate of the topology.")
@click.option(
    "--since",
    help="Only windows ending within this duration (6h, 30m, 2d) before the newest event time.",
)
@click.option(
    "--by",
    multiple=True,
    help='Re-group on these group keys (repeat or comma-separate); --by "" merges every group.',
)
@click.option("--format", "output_format", type=_FORMAT, default="table", show_default=True)
@click.option(
    "--plot",
    type=click.Path(dir_okay=False, path_type=Path),
    help="Also draw the aggregates to this PNG (one file per aggregate).",
)
@_INPUT
@settings_options()
def aggregates_command(
    topology: str,
    aggregate: str | None,
    since: str | None,
    by: tuple[str, ...],
    output_format: str,
    plot: Path | None,
    input_file: Path | None,
    settings: Settings,
) -> None:
    """Windowed aggregates of TOPOLOGY: per window and group, counts, means with 95 %
    confidence intervals, quantiles, error rates and costs; late rows are reported."""
    try:
        loaded, plans, snapshots = _snapshots(topology, input_file, settings)
        tables = query_tables(
            plans, snapshots, aggregate=aggregate, by=parse_by(by) if by else None, since=since
        )
        if output_format == "csv" and len(tables) > 1:
            fail(
                f"--format csv shows one aggregate; choose one of {[t.aggregate for t in tables]} "
                "with --aggregate"
            )
        if output_format == "json":
            document = tables_document(loaded.name, tables)
            click.echo(orjson.dumps(document, option=orjson.OPT_INDENT_2).decode())
        else:
            for table in tables:
                if output_format == "table":
                    click.secho(f"aggregate {table.aggregate}", bold=True)
                click.echo(table.format(output_format))  # type: ignore[arg-type]
        if plot is not None:
            for path in plot_tables(plans, snapshots, tables, plot, since=since):
                click.echo(f"wrote {path}", err=True)
    except WeaveStreamError as exc:
        fail(str(exc))


@click.command(name="drill")
@click.argument("topology")
@click.option(
    "--window-start",
    required=True,
    help="Start of the window: ISO-8601 (2026-11-26T03:00:00Z) or epoch seconds.",
)
@click.option(
    "--group",
    "groups",
    multiple=True,
    help="KEY=VALUE of a group key (repeat); keys left out are merged over.",
)
@click.option("--aggregate", help="The aggregate (needed when the topology has several).")
@click.option("--format", "output_format", type=_FORMAT, default="table", show_default=True)
@_INPUT
@settings_options()
def drill_command(
    topology: str,
    window_start: str,
    groups: tuple[str, ...],
    aggregate: str | None,
    output_format: str,
    input_file: Path | None,
    settings: Settings,
) -> None:
    """The calls behind one window of TOPOLOGY: the worst by the drill-down score and a
    uniform sample (call id, trace id, values, op refs)."""
    try:
        _, plans, snapshots = _snapshots(topology, input_file, settings)
        found = drill(
            plans,
            snapshots,
            window_start=window_start,
            group=parse_group(groups),
            aggregate=aggregate,
        )
        click.echo(found.format(output_format))  # type: ignore[arg-type]
    except WeaveStreamError as exc:
        fail(str(exc))


@click.command(name="compare")
@click.argument("topology")
@click.argument("column_a")
@click.argument("column_b", required=False)
@click.option("--ref-a", help="With one column: the op ref of side A.")
@click.option("--ref-b", help="With one column: the op ref of side B.")
@click.option("--by", help="Compare per class of this column (e.g. doc_class_v1).")
@click.option("--format", "output_format", type=_FORMAT, default="table", show_default=True)
@click.option(
    "--plot",
    type=click.Path(dir_okay=False, path_type=Path),
    help="Also draw the distributions side by side to this PNG.",
)
@_INPUT
@settings_options()
def compare_command(
    topology: str,
    column_a: str,
    column_b: str | None,
    ref_a: str | None,
    ref_b: str | None,
    by: str | None,
    output_format: str,
    plot: Path | None,
    input_file: Path | None,
    settings: Settings,
) -> None:
    """Two columns of TOPOLOGY (COLUMN_A COLUMN_B: two classifier versions, e.g.
    doc_class_v1.confidence doc_class_v2.confidence), or one column under two op refs
    (--ref-a/--ref-b), per class. Trials are averaged per call first. When both sides
    cover the same calls the test is paired (mean difference with a bootstrap CI, paired t
    and Wilcoxon signed-rank, or McNemar for pass/fail), otherwise Welch's t and
    Mann-Whitney U; the 'test' column says which ran, p_holm adjusts over classes."""
    from weave_stream.aggregates.compare import compare_columns, compare_op_refs, plot_comparison

    by_refs = column_b is None
    if by_refs and not (ref_a and ref_b):
        fail("give two columns (COLUMN_A COLUMN_B), or one column with --ref-a and --ref-b")
    keys = [column_a] if by_refs else [column_a, str(column_b)]
    try:
        values = _values(topology, keys, by, input_file, settings)
        frame = comparison_frame(values, keys, by=by, by_refs=by_refs)
        if frame.empty:
            fail(f"no values of {keys} in {topology!r} yet")
        for key in keys:
            if frame[key].map(lambda v: isinstance(v, str)).any():
                fail(
                    f"{key!r} holds labels, not scores; compare a numeric field such as "
                    f"{key}.confidence"
                )
        if by_refs:
            comparison = compare_op_refs(frame, column_a, str(ref_a), str(ref_b), by=by)
        else:
            comparison = compare_columns(frame, column_a, str(column_b), by=by)
        click.echo(comparison.format(output_format))  # type: ignore[arg-type]
        if plot is not None:
            click.echo(f"wrote {plot_comparison(comparison, plot)}", err=True)
    except WeaveStreamError as exc:
        fail(str(exc))


def _values(
    topology_name: str,
    keys: Sequence[str],
    by: str | None,
    input_file: Path | None,
    settings: Settings,
) -> list[Any]:
    if input_file is not None:
        topology = load_topology(topology_name, settings)
        return run_local(topology, input_file).values
    with connected(settings) as connected_settings:
        topology = asyncio.run(registered_topology(connected_settings, topology_name))
        columns = {column.name for column in topology.columns}
        heads = {key.partition(".")[0] for key in keys} | ({by} if by else set())
        unknown = sorted(heads - columns)
        if unknown:
            fail(f"{unknown} are not columns of {topology_name!r}; its columns: {sorted(columns)}")
        return asyncio.run(read_derived(connected_settings, topology_name, sorted(heads)))


def show_aggregates(
    settings: Settings, topology_name: str, out_dir: Path, *, wait_seconds: float = 60.0
) -> list[Path]:
    """Print the aggregates of a registered topology and draw them into ``out_dir``.

    Waits (up to ``wait_seconds``) until the topology's workers have read every valid
    call, so the table covers what was sent. ``settings`` must name a running broker.
    Returns the plots written (``aggregates.<topology>[.<aggregate>].png``).
    """
    group = settings.topics.topology_group(topology_name)
    deadline = time.monotonic() + wait_seconds
    while time.monotonic() < deadline:
        _, lag = asyncio.run(group_progress(settings, group, settings.topics.valid))
        if lag == 0:
            break
        time.sleep(0.5)
    # A committed offset comes after Faust flushed the batch's changelog writes.
    topology = asyncio.run(registered_topology(settings, topology_name))
    plans, snapshots = asyncio.run(read_snapshots(settings, topology))
    tables = query_tables(plans, snapshots)
    for table in tables:
        click.secho(f"aggregate {table.aggregate} of {topology_name}", bold=True)
        click.echo(table.format("table"))
    out_dir.mkdir(parents=True, exist_ok=True)
    plottable = [t for t in tables if _has_mean(plans, t.aggregate) and not t.frame.empty]
    if not plottable:
        return []
    return plot_tables(plans, snapshots, plottable, out_dir / f"aggregates.{topology_name}.png")


def _has_mean(plans: Sequence[AggregatePlan], name: str) -> bool:
    return any(p.name == name and any("mean" in m for m in p.spec.metrics.values()) for p in plans)


COMMANDS = [aggregates_command, drill_command, compare_command]
