"""``weave-stream backfill``: a registered topology over past calls, plan first."""

from __future__ import annotations

import asyncio
from datetime import UTC, datetime, timedelta

import click
from tqdm import tqdm

from weave_stream.cli.options import connected, fail, settings_options
from weave_stream.columns.plan import Plan
from weave_stream.config import Settings
from weave_stream.durations import parse_duration
from weave_stream.errors import BudgetExceededError, WeaveStreamError
from weave_stream.ingest.call import parse_timestamp
from weave_stream.runners.backfill import TimeRange, run_backfill
from weave_stream.topology.registrations import registered_topology
from weave_stream.topology.spec import Topology

__all__ = ["COMMANDS", "backfill", "plan_backfill", "range_options", "time_range"]


def time_range(since: str | None, start: str | None, end: str | None) -> TimeRange:
    """``--since 24h`` or ``--from T [--to T]`` as a :class:`TimeRange` (UTC).

    >>> time_range(None, "2026-11-26T00:00:00Z", "2026-11-26T06:00:00Z").end.hour
    6
    """
    if since and (start or end):
        raise click.UsageError("give either --since or --from/--to, not both")
    if since:
        try:
            seconds = parse_duration(since)
        except WeaveStreamError as exc:
            raise click.UsageError(f"--since {since!r}: {exc}") from None
        return TimeRange(datetime.now(UTC) - timedelta(seconds=seconds))
    if not start:
        raise click.UsageError("say which calls: --since 24h, or --from T [--to T]")
    try:
        window = TimeRange(parse_timestamp(start), parse_timestamp(end) if end else None)
    except WeaveStreamError as exc:
        raise click.UsageError(f"--from/--to: {exc}") from None
    if window.end is not None and window.end <= window.start:
        raise click.UsageError("--to must be after --from")
    return window


def range_options(function: click.decorators.FC) -> click.decorators.FC:
    """``--since``, ``--from``, ``--to``."""
    function = click.option("--to", "end", help="Up to this time (ISO-8601 or epoch s).")(function)
    function = click.option("--from", "start", help="From this time (ISO-8601 or epoch s).")(
        function
    )
    return click.option("--since", help="The last period: 30m, 24h, 7d ...")(function)


@click.command()
@click.argument("name")
@range_options
@click.option("--budget", type=click.FloatRange(min=0), help="Refuse past this many USD.")
@click.option("--dry-run", is_flag=True, help="Show the plan only (what `plan` does).")
@settings_options("batch_size", "judge_base_url", "judge_model")
def backfill(
    name: str,
    since: str | None,
    start: str | None,
    end: str | None,
    budget: float | None,
    dry_run: bool,
    settings: Settings,
) -> None:
    """Compute registered topology NAME over past calls: only what is missing.

    Reads <prefix>.calls for the time range (by each call's started_at), shows the
    cost plan (cache hits are values already on the derived topics), respects
    --budget, then computes the rest and writes it to the derived topics.
    """
    window = time_range(since, start, end)
    with connected(settings) as settings:
        topology = _registered(settings, name)
        bar = tqdm(unit="call", desc=f"backfill {name}", disable=dry_run)

        def show(plan: Plan) -> None:
            click.echo(plan.render())
            bar.reset(total=plan.calls)

        try:
            result = asyncio.run(
                run_backfill(
                    settings,
                    topology,
                    window,
                    budget_usd=budget,
                    dry_run=dry_run,
                    on_plan=show,
                    on_progress=bar.update,
                )
            )
        except BudgetExceededError as exc:
            fail(str(exc))
        finally:
            bar.close()
    if not dry_run:
        click.echo(
            f"backfill {name}: {len(result.calls)} calls in range; {result.stats.summary()}; "
            f"{result.written} written"
        )


def plan_backfill(name: str, window: TimeRange, settings: Settings) -> None:
    """Print the plan of backfilling registered topology ``name`` over ``window``."""
    with connected(settings) as settings:
        topology = _registered(settings, name)
        asyncio.run(run_backfill(settings, topology, window, dry_run=True, on_plan=_echo_plan))


def _registered(settings: Settings, name: str) -> Topology:
    try:
        return asyncio.run(registered_topology(settings, name))
    except WeaveStreamError as exc:
        fail(str(exc))
        raise  # fail() does not return


def _echo_plan(plan: Plan) -> None:
    click.echo(plan.render())


COMMANDS = [backfill]
