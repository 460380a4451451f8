"""``weave-stream run`` and ``weave-stream plan``: a topology in-process over a JSONL file.

``plan`` says what a run would compute and cost (per column: calls matched, cache
hits, values to compute, tokens, dollars, time) without computing anything;
``run`` computes the missing values, stores them in the result cache and writes
the result table. Both read the same cache, under ``<data_dir>/cache`` unless
``--cache-dir`` says otherwise.
"""

from __future__ import annotations

import asyncio
import functools
from collections.abc import Sequence
from pathlib import Path

import click

from weave_stream.cli.backfill_cmds import plan_backfill, range_options, time_range
from weave_stream.cli.options import fail, settings_options
from weave_stream.columns.cache import ResultCache, SqliteCache, WriteOnlyCache, results_cache
from weave_stream.columns.plan import Plan, run_table
from weave_stream.config import Settings
from weave_stream.errors import WeaveStreamError
from weave_stream.ingest.outcomes import DeadLetter
from weave_stream.ops.embed import model_in_use
from weave_stream.runners.local import DEFAULT_BATCH_SIZE, arun_local, plan_local, preflight
from weave_stream.runners.results import OUTPUT_SUFFIXES
from weave_stream.topology.loader import load_topology
from weave_stream.topology.spec import Topology

__all__ = ["COMMANDS", "plan", "run"]


def _common(function: click.decorators.FC, input_required: bool = True) -> click.decorators.FC:
    for decorator in reversed(
        [
            click.argument("topology_name", metavar="TOPOLOGY"),
            click.option(
                "--input",
                "input_path",
                required=input_required,
                type=click.Path(exists=True, dir_okay=False, path_type=Path),
                help="Calls as JSON lines (complete calls, or start and end events).",
            ),
            click.option(
                "--cache-dir",
                type=click.Path(file_okay=False, path_type=Path),
                help="Directory of the result cache (default: <data_dir>/cache).",
            ),
            click.option(
                "--trials",
                type=click.IntRange(min=1),
                help="Trials of every non-deterministic column (default: as the topology says).",
            ),
            click.option(
                "--batch-size",
                type=click.IntRange(min=1),
                default=DEFAULT_BATCH_SIZE,
                show_default=True,
                help="Calls per batch.",
            ),
        ]
    ):
        function = decorator(function)
    return function


@click.command("plan")
@functools.partial(_common, input_required=False)
@range_options
@settings_options("judge_base_url", "judge_model", "data_dir")
def plan(
    topology_name: str,
    input_path: Path | None,
    cache_dir: Path | None,
    trials: int | None,
    batch_size: int,
    since: str | None,
    start: str | None,
    end: str | None,
    settings: Settings,
) -> None:
    """Show what running TOPOLOGY would compute and cost; compute nothing.

    With --input: over a JSONL file, TOPOLOGY being a .yaml/.py file or a name under
    ./topologies/. With --since (or --from/--to): the backfill of registered topology
    TOPOLOGY over <prefix>.calls, cache hits being the values already on Kafka.
    """
    if input_path is None:
        if not (since or start):
            fail("say what to plan over: --input FILE, or --since/--from for a registered topology")
        plan_backfill(topology_name, time_range(since, start, end), settings)
        return
    topology = _load(topology_name, settings)
    with _open_cache(settings, cache_dir) as cache:
        the_plan, dead_letters = _plan(topology, input_path, cache, trials, batch_size)
    click.echo(the_plan.render())
    _report_dead_letters(dead_letters, input_path)


@click.command("run")
@_common
@click.option(
    "--out",
    "out_path",
    required=True,
    type=click.Path(dir_okay=False, path_type=Path),
    help="Result table: results.jsonl, results.csv or results.parquet.",
)
@click.option(
    "--no-cache", is_flag=True, help="Recompute every value (results still refresh the cache)."
)
@click.option(
    "--budget", type=click.FloatRange(min=0), help="Refuse to start if the plan costs more USD."
)
@click.option("--quiet", is_flag=True, help="No progress bar.")
@click.option(
    "--store",
    "to_store",
    is_flag=True,
    help="Also write the calls and their values to the call store (store_url), as a "
    "worker's store sink does: for calls() queries, datasets and `topics fit`.",
)
@settings_options("judge_base_url", "judge_model", "data_dir", "store_url")
def run(
    topology_name: str,
    input_path: Path,
    cache_dir: Path | None,
    trials: int | None,
    batch_size: int,
    out_path: Path,
    no_cache: bool,
    budget: float | None,
    quiet: bool,
    to_store: bool,
    settings: Settings,
) -> None:
    """Run TOPOLOGY over --input in-process and write the result table to --out.

    Values already in the result cache are not computed again. TOPOLOGY is a
    .yaml/.py file, or a name under ./topologies/.
    """
    if out_path.suffix not in OUTPUT_SUFFIXES:
        fail(f"--out {out_path}: the file must end in {', '.join(OUTPUT_SUFFIXES)}")
    topology = _load(topology_name, settings)
    try:
        preflight(topology)
    except WeaveStreamError as exc:
        fail(str(exc))
    with _open_cache(settings, cache_dir) as store:
        cache: ResultCache = WriteOnlyCache(store) if no_cache else store
        if budget is not None:
            the_plan, _ = _plan(topology, input_path, cache, trials, batch_size)
            reason = the_plan.over_budget(budget)
            if reason is not None:
                fail(f"not starting: {reason}.\n\n{the_plan.render()}")
        table = asyncio.run(
            arun_local(
                topology,
                input_path,
                cache,
                trials=trials,
                batch_size=batch_size,
                progress=not quiet,
                store=settings.store_location if to_store else False,
            )
        )
    table.write(out_path)
    stats = table.stats
    click.echo(run_table(topology, stats))
    cost = sum(c.cost_usd for c in stats.columns.values())
    click.echo(
        f"{topology.name}: {stats.matched} of {stats.calls} calls matched; {stats.summary()}; "
        f"${cost:.4f} spent; {len(table)} rows written to {out_path}",
        err=True,
    )
    if to_store:
        click.echo(
            f"{topology.name}: the calls and their values are in the call store at "
            f"{settings.store_location}",
            err=True,
        )
    where = model_in_use()
    if where is not None:  # which device and precision computed the embeddings
        click.echo(f"{topology.name}: embeddings on {where}", err=True)
    _report_dead_letters(table.dead_letters, input_path)


def _load(name: str, settings: Settings) -> Topology:
    try:
        return load_topology(name, settings=settings)
    except WeaveStreamError as exc:
        raise click.ClickException(str(exc)) from None


def _open_cache(settings: Settings, cache_dir: Path | None) -> SqliteCache:
    return results_cache(settings, cache_dir)


def _plan(
    topology: Topology, input_path: Path, cache: ResultCache, trials: int | None, batch_size: int
) -> tuple[Plan, list[DeadLetter]]:
    return asyncio.run(
        plan_local(topology, input_path, cache, trials=trials, batch_size=batch_size)
    )


def _report_dead_letters(dead_letters: Sequence[DeadLetter], input_path: Path) -> None:
    if not dead_letters:
        return
    click.secho(
        f"{len(dead_letters)} records in {input_path} are not calls (skipped):",
        fg="yellow",
        err=True,
    )
    for letter in dead_letters[:5]:
        click.echo(
            f"  line {letter.source_offset}: {letter.reason}: {letter.detail[:120]}", err=True
        )
    if len(dead_letters) > 5:
        click.echo(f"  ... and {len(dead_letters) - 5} more", err=True)


COMMANDS = [run, plan]
