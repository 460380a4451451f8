"""``calls`` and ``store``: query the call store, and keep it in shape.

``weave-stream calls`` is :func:`weave_stream.calls` on the command line (the store of
the settings, or ``--store-url``); ``weave-stream store compact|retain|vacuum|info``
runs the store's maintenance on command (workers also run compaction and retention
on a schedule).
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import click
import orjson

from weave_stream.cli.options import fail, settings_options
from weave_stream.config import Settings
from weave_stream.errors import WeaveStreamError
from weave_stream.query.text import format_frame, parse_where

__all__ = ["COMMANDS"]

_FORMATS = click.Choice(["table", "csv", "json", "parquet"])


@click.command(name="calls")
@click.option("--op", "ops", multiple=True, help="Op name, weave:/// op ref or glob (repeat).")
@click.option("--trace-id", "trace_ids", multiple=True, help="Calls of this trace (repeat).")
@click.option("--parent-id", "parent_ids", multiple=True, help="Children of this call (repeat).")
@click.option("--call-id", "call_ids", multiple=True, help="This call (repeat).")
@click.option("--roots", is_flag=True, help="Only trace roots (calls without a parent).")
@click.option(
    "--since", help="Calls started within this duration before now (24h, 7d) or from a time."
)
@click.option("--until", help="... and before this duration ago (1d) or time.")
@click.option("--from", "from_", help="Calls started from this time (ISO-8601 or epoch seconds).")
@click.option("--to", help="Calls started before this time.")
@click.option(
    "--where",
    "where",
    help="A filter in the topology filter language (YAML): "
    "'{text_extract.faithfulness.score: {lt: 0.5}}'.",
)
@click.option(
    "--columns",
    help="Comma-separated call fields and derived columns "
    "(inputs.document,text_extract.doc_class.label).",
)
@click.option("--sort", "sort", multiple=True, help="Sort key, '-' for descending (repeat).")
@click.option("--limit", type=click.IntRange(min=0), help="At most N calls.")
@click.option("--format", "output_format", type=_FORMATS, default="table", show_default=True)
@click.option("--out", type=click.Path(dir_okay=False, path_type=Path), help="Write to FILE.")
@settings_options("store_url", "data_dir")
def calls_command(
    ops: tuple[str, ...],
    trace_ids: tuple[str, ...],
    parent_ids: tuple[str, ...],
    call_ids: tuple[str, ...],
    roots: bool,
    since: str | None,
    until: str | None,
    from_: str | None,
    to: str | None,
    where: str | None,
    columns: str | None,
    sort: tuple[str, ...],
    limit: int | None,
    output_format: str,
    out: Path | None,
    settings: Settings,
) -> None:
    """Calls in the store with their derived values: Weave's filters, a time range, the
    topology filter language, derived columns by name."""
    from weave_stream.query.calls import calls

    if (since or until) and (from_ or to):
        fail("give a time range with --since/--until or with --from/--to, not both")
    if output_format == "parquet" and out is None:
        fail("--format parquet writes a file: add --out FILE.parquet")
    try:
        query = calls(
            settings=settings,
            op=list(ops) or None,
            trace_id=list(trace_ids) or None,
            parent_id=list(parent_ids) or None,
            call_ids=list(call_ids) or None,
            trace_roots=roots,
            since=since or from_,
            until=until or to,
            where=parse_where(where),
            columns=columns,
            sort=list(sort) or None,
            limit=limit,
        )
        if output_format == "parquet":
            import pyarrow.parquet as pq

            assert out is not None
            pq.write_table(query.to_arrow(), out)
            click.echo(f"wrote {out}", err=True)
            return
        text = format_frame(query.to_pandas(), output_format)
    except WeaveStreamError as exc:
        fail(str(exc))
        return
    if out is not None:
        out.parent.mkdir(parents=True, exist_ok=True)
        out.write_text(text)
        click.echo(f"wrote {out}", err=True)
    else:
        click.echo(text, nl=False)


@click.group(name="store")
def store_group() -> None:
    """The call store: compact, apply retention, vacuum, show what it holds."""


def _store(settings: Settings) -> Any:
    from weave_stream.store.tables import Store

    return Store.from_settings(settings)


@store_group.command(name="info")
@click.option("--format", "output_format", type=click.Choice(["table", "json"]), default="table")
@settings_options("store_url", "data_dir")
def store_info(output_format: str, settings: Settings) -> None:
    """Files, rows, bytes, date partitions and the oldest call of each table."""
    import pandas as pd

    from weave_stream.store.maintenance import info

    try:
        store = _store(settings)
        tables = [t.to_dict() for t in info(store)]
    except WeaveStreamError as exc:
        fail(str(exc))
        return
    if output_format == "json":
        body = {"location": store.location, "tables": tables}
        click.echo(orjson.dumps(body, option=orjson.OPT_INDENT_2).decode())
        return
    click.echo(f"store {store.location}")
    click.echo(pd.DataFrame(tables).to_string(index=False, na_rep="-"))


@store_group.command(name="compact")
@click.option("--all-days", is_flag=True, help="Also today's partitions (the sinks write there).")
@settings_options("store_url", "data_dir")
def store_compact(all_days: bool, settings: Settings) -> None:
    """Rewrite each day's small files into large ones (readers open fewer files)."""
    from weave_stream.store.maintenance import compact

    try:
        results = compact(_store(settings), older_than_today=not all_days)
    except WeaveStreamError as exc:
        fail(str(exc))
        return
    for table, result in results.items():
        click.echo(
            f"{table}: {result.get('numFilesRemoved', 0)} files compacted into "
            f"{result.get('numFilesAdded', 0)}"
        )


@store_group.command(name="retain")
@click.option(
    "--days",
    type=click.FloatRange(min=0, min_open=True),
    required=True,
    help="Keep the calls of the last DAYS days; whole older days are deleted.",
)
@settings_options("store_url", "data_dir")
def store_retain(days: float, settings: Settings) -> None:
    """Delete the days older than --days from every table (then vacuum frees the space)."""
    from weave_stream.store.maintenance import apply_retention

    try:
        deleted = apply_retention(_store(settings), days)
    except WeaveStreamError as exc:
        fail(str(exc))
        return
    for table, rows in deleted.items():
        click.echo(f"{table}: {rows} rows deleted")


@store_group.command(name="vacuum")
@click.option(
    "--retention-hours",
    type=click.FloatRange(min=0),
    help="Remove unreferenced files older than this (default: the tables' own, 7 days).",
)
@click.option("--dry-run", is_flag=True, help="Only list what would be removed.")
@settings_options("store_url", "data_dir")
def store_vacuum(retention_hours: float | None, dry_run: bool, settings: Settings) -> None:
    """Remove the files no version of a table needs any more."""
    from weave_stream.store.maintenance import vacuum

    try:
        removed = vacuum(_store(settings), retention_hours=retention_hours, dry_run=dry_run)
    except WeaveStreamError as exc:
        fail(str(exc))
        return
    verb = "would remove" if dry_run else "removed"
    for table, files in removed.items():
        click.echo(f"{table}: {verb} {len(files)} files")


COMMANDS = [calls_command, store_group]
