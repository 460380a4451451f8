"""``datasets`` and ``dataset ...``: datasets of production calls on the command line.

::

    weave-stream datasets                        name, rows, versions, last change, source
    weave-stream dataset create NAME --from-calls --op predict --since 7d \\
        [--children-op openai.chat [--recursive]] --map prompt=inputs.messages [--append]
    weave-stream dataset add NAME --from-calls --op predict --since 1d   (the remembered mapping)
    weave-stream dataset show NAME [--version N] [--format table|csv|json|parquet] [--out FILE]
    weave-stream dataset export NAME --out FILE.jsonl|.csv|.parquet [--version N]
    weave-stream dataset diff NAME --from 0 --to 3
    weave-stream dataset remove NAME ROW_ID...

Thin over :mod:`weave_stream.datasets` and ``calls(...).to_dataset``.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any, TypeVar

import click
import orjson

from weave_stream.cli.options import fail, settings_options
from weave_stream.config import Settings
from weave_stream.errors import WeaveStreamError

__all__ = ["COMMANDS"]

F = TypeVar("F", bound=Callable[..., Any])
_FORMATS = click.Choice(["table", "csv", "json", "parquet"])


def _query_options(function: F) -> F:
    """The ``weave-stream calls`` selection options, plus ``--children-op``/``--recursive``."""
    options = [
        click.option("--from-calls", is_flag=True, required=True, help="Rows from a calls query."),
        click.option("--op", "ops", multiple=True, help="Op name, weave:/// ref or glob (repeat)."),
        click.option("--trace-id", "trace_ids", multiple=True, help="Calls of this trace."),
        click.option("--call-id", "call_ids", multiple=True, help="This call (repeat)."),
        click.option("--roots", is_flag=True, help="Only trace roots."),
        click.option("--since", help="Started within this duration (24h, 7d) or from a time."),
        click.option("--until", help="... and before this duration ago or time."),
        click.option(
            "--where", help="A filter (YAML): '{text_extract.faithfulness.score: {lt: 0.4}}'."
        ),
        click.option("--sort", "sort", multiple=True, help="Sort key, '-' for descending."),
        click.option("--limit", type=click.IntRange(min=0), help="At most N calls."),
        click.option(
            "--children-op",
            "children_ops",
            multiple=True,
            help="Rows from the child calls of these, of this op (repeat); '*' for any.",
        ),
        click.option("--recursive", is_flag=True, help="With --children-op: every descendant."),
        click.option(
            "--map",
            "mappings",
            multiple=True,
            help="FIELD=PATH: a row field from a call path or derived column (repeat).",
        ),
        click.option("--note", default="", help="Kept with the version."),
    ]
    for option in reversed(options):
        function = option(function)
    return function


def _query(settings: Settings, options: dict[str, Any]) -> Any:
    from weave_stream.query.calls import calls
    from weave_stream.query.text import parse_where

    query = calls(
        settings=settings,
        op=list(options["ops"]) or None,
        trace_id=list(options["trace_ids"]) or None,
        call_ids=list(options["call_ids"]) or None,
        trace_roots=options["roots"],
        since=options["since"],
        until=options["until"],
        where=parse_where(options["where"]),
        sort=list(options["sort"]) or None,
        limit=options["limit"],
    )
    children = [op for op in options["children_ops"] if op != "*"]
    if options["children_ops"]:
        query = query.children(op_name=children or None, recursive=options["recursive"])
    elif options["recursive"]:
        fail("--recursive goes with --children-op")
    return query


def _mapping(pairs: tuple[str, ...]) -> dict[str, str] | None:
    if not pairs:
        return None
    mapping = {}
    for pair in pairs:
        field, sep, path = pair.partition("=")
        if not sep or not field.strip() or not path.strip():
            fail(f"--map {pair!r}: write FIELD=PATH, e.g. --map document=inputs.document")
        mapping[field.strip()] = path.strip()
    return mapping


def _build(name: str, settings: Settings, options: dict[str, Any], append: bool) -> None:
    try:
        query = _query(settings, options)
        dataset = query.to_dataset(
            name, _mapping(options["mappings"]), append=append, note=options["note"]
        )
        latest = dataset.latest
    except WeaveStreamError as exc:
        fail(str(exc))
        return
    click.echo(
        f"dataset {name}: version {latest.version}, {latest.rows} rows "
        f"(+{latest.added} in this version)"
    )


@click.command(name="datasets")
@click.option("--format", "output_format", type=click.Choice(["table", "json"]), default="table")
@settings_options("store_url", "data_dir")
def datasets_command(output_format: str, settings: Settings) -> None:
    """The datasets in the store: rows, versions, last change, where the rows come from."""
    import pandas as pd

    from weave_stream.datasets.dataset import list_datasets
    from weave_stream.store.tables import Store

    try:
        found = list_datasets(Store.from_settings(settings))
    except WeaveStreamError as exc:
        fail(str(exc))
        return
    if output_format == "json":
        for info in found:
            click.echo(orjson.dumps(info.to_dict()).decode())
        return
    if not found:
        click.echo("(no datasets)")
        return
    frame = pd.DataFrame(
        {
            "name": [i.dataset for i in found],
            "rows": [i.rows for i in found],
            "versions": [i.version + 1 for i in found],
            "last change": [i.created_at.strftime("%Y-%m-%d %H:%M:%S") for i in found],
            "source": [i.source.get("query") or i.source.get("rule") or "" for i in found],
        }
    )
    click.echo(frame.to_string(index=False))


@click.group(name="dataset")
def dataset_group() -> None:
    """A dataset: create it from calls, add to it, show, export, diff versions, remove rows."""


@dataset_group.command(name="create")
@click.argument("name")
@click.option("--append", is_flag=True, help="Add to the dataset when it exists.")
@_query_options
@settings_options("store_url", "data_dir")
def dataset_create(name: str, append: bool, settings: Settings, **options: Any) -> None:
    """Make dataset NAME from the calls a query selects (--map each field)."""
    _build(name, settings, options, append)


@dataset_group.command(name="add")
@click.argument("name")
@_query_options
@settings_options("store_url", "data_dir")
def dataset_add(name: str, settings: Settings, **options: Any) -> None:
    """Add the calls a query selects to dataset NAME (with its remembered mapping): one new
    version; calls already in it are skipped."""
    from weave_stream.datasets.dataset import Dataset

    try:
        Dataset(name, settings=settings).versions()  # an unknown dataset: say so, with the known
    except WeaveStreamError as exc:
        fail(str(exc))
    _build(name, settings, options, append=True)


def _dataset(name: str, settings: Settings) -> Any:
    from weave_stream.datasets.dataset import Dataset

    return Dataset(name, settings=settings)


@dataset_group.command(name="show")
@click.argument("name")
@click.option("--version", "version", type=click.IntRange(min=0), help="Default: the latest.")
@click.option("--format", "output_format", type=_FORMATS, default="table", show_default=True)
@click.option("--out", type=click.Path(dir_okay=False, path_type=Path), help="Write to FILE.")
@settings_options("store_url", "data_dir")
def dataset_show(
    name: str, version: int | None, output_format: str, out: Path | None, settings: Settings
) -> None:
    """The rows of a version of dataset NAME."""
    from weave_stream.datasets.export import export_rows
    from weave_stream.query.text import format_frame

    if output_format == "parquet" and out is None:
        fail("--format parquet writes a file: add --out FILE.parquet")
    try:
        dataset = _dataset(name, settings)
        frame = dataset.to_pandas(version)
        if output_format == "parquet":
            assert out is not None
            export_rows(frame, out.with_suffix(".parquet"))
            click.echo(f"wrote {out.with_suffix('.parquet')}", err=True)
            return
        versions = dataset.versions()
        shown = next((v for v in versions if v.version == version), versions[-1])
        text = format_frame(frame, output_format)
    except WeaveStreamError as exc:
        fail(str(exc))
        return
    if out is not None:
        out.parent.mkdir(parents=True, exist_ok=True)
        out.write_text(text)
        click.echo(f"wrote {out}", err=True)
        return
    if output_format == "table":
        click.echo(f"dataset {name} version {shown.version}: {shown.rows} rows", err=True)
    click.echo(text, nl=False)


@dataset_group.command(name="export")
@click.argument("name")
@click.option(
    "--out",
    type=click.Path(dir_okay=False, path_type=Path),
    required=True,
    help="FILE.jsonl (Weave's row shape), FILE.csv or FILE.parquet.",
)
@click.option("--version", "version", type=click.IntRange(min=0), help="Default: the latest.")
@settings_options("store_url", "data_dir")
def dataset_export(name: str, out: Path, version: int | None, settings: Settings) -> None:
    """Write the rows of dataset NAME to a file (its suffix picks the format)."""
    try:
        written = _dataset(name, settings).export(out, version)
    except WeaveStreamError as exc:
        fail(str(exc))
        return
    click.echo(f"wrote {written}")


@dataset_group.command(name="diff")
@click.argument("name")
@click.option("--from", "old", type=click.IntRange(min=0), required=True, help="Version.")
@click.option("--to", "new", type=click.IntRange(min=0), required=True, help="Version.")
@click.option("--format", "output_format", type=click.Choice(["table", "json"]), default="table")
@settings_options("store_url", "data_dir")
def dataset_diff(name: str, old: int, new: int, output_format: str, settings: Settings) -> None:
    """The rows version --to has that --from has not (+) and the reverse (-)."""
    import pandas as pd

    from weave_stream.query.text import format_frame

    try:
        diff = _dataset(name, settings).diff(old, new)
    except WeaveStreamError as exc:
        fail(str(exc))
        return
    rows = [{"change": "+", **r} for r in diff.added] + [{"change": "-", **r} for r in diff.removed]
    if output_format == "json":
        click.echo(format_frame(pd.DataFrame(rows), "json"), nl=False)
        return
    click.echo(f"dataset {name}: {old} -> {new}: +{len(diff.added)} -{len(diff.removed)} rows")
    if rows:
        click.echo(format_frame(pd.DataFrame(rows), "table"), nl=False)


@dataset_group.command(name="remove")
@click.argument("name")
@click.argument("row_ids", nargs=-1, required=True)
@click.option("--note", default="", help="Kept with the version.")
@settings_options("store_url", "data_dir")
def dataset_remove(name: str, row_ids: tuple[str, ...], note: str, settings: Settings) -> None:
    """A new version of dataset NAME without these rows (older versions keep them)."""
    try:
        info = _dataset(name, settings).remove(row_ids, note=note)
    except WeaveStreamError as exc:
        fail(str(exc))
        return
    click.echo(f"dataset {name}: version {info.version}, {info.rows} rows (-{info.removed})")


COMMANDS = [datasets_command, dataset_group]
