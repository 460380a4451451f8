"""``weave-stream values``: the derived values of a topology, with their calls' ids."""

from __future__ import annotations

import json
from collections.abc import Mapping
from typing import Any

import click
import pandas as pd

from weave_stream.cli.options import connected, fail, settings_options
from weave_stream.columns.values import derived_values
from weave_stream.config import Settings
from weave_stream.errors import WeaveStreamError

__all__ = ["COMMANDS", "values"]


@click.command()
@click.argument("topology")
@click.option("--column", default=None, help="Only this column (default: every column).")
@click.option(
    "--since",
    default=None,
    help="Calls started since: a duration back from now (30m, 6h, 2d) or a time (ISO-8601).",
)
@click.option(
    "--format",
    "output_format",
    type=click.Choice(["table", "csv", "json", "jsonl"]),
    default="table",
    show_default=True,
)
@click.option("--limit", type=int, default=50, show_default=True, help="Rows of --format table.")
@settings_options()
def values(
    topology: str,
    column: str | None,
    since: str | None,
    output_format: str,
    limit: int,
    settings: Settings,
) -> None:
    """The derived values of TOPOLOGY, one row per (call, column, op ref, trial), each with
    its call's id, trace id, parent id, project and op name (the same as
    weave_stream.derived_values() returns)."""
    with connected(settings) as settings:
        try:
            frame = derived_values(topology, column=column, since=since, settings=settings)
        except WeaveStreamError as exc:
            fail(str(exc))
    if output_format == "csv":
        click.echo(_plain(frame).to_csv(index=False), nl=False)
    elif output_format in ("json", "jsonl"):
        rows = [_json_row(row) for row in frame.to_dict(orient="records")]
        if output_format == "json":
            click.echo(json.dumps(rows, indent=2))
        else:
            for row in rows:
                click.echo(json.dumps(row))
    else:
        _table(frame, limit)


def _table(frame: pd.DataFrame, limit: int) -> None:
    if frame.empty:
        click.echo("no values")
        return
    shown = frame.tail(limit)
    for row in shown.to_dict(orient="records"):
        value = "error: " + str(row["error"]) if row["error"] else _short(row["value"])
        when = row["started_at"]
        started = when.strftime("%Y-%m-%d %H:%M:%S") if pd.notna(when) else ""
        click.echo(
            f"{str(row['call_id'])[:20]:<21}{_text(row['op_name']):<18}{started:<20}"
            f"{row['column']:<18}{value}"
        )
    if len(frame) > limit:
        click.echo(f"... the last {limit} of {len(frame)} values (--limit, --format csv|json)")


def _text(value: Any) -> str:
    return "" if value is None or (isinstance(value, float) and value != value) else str(value)


def _short(value: Any, width: int = 60) -> str:
    if isinstance(value, list) and len(value) > 4:
        text = f"[{', '.join(f'{v:.3g}' if isinstance(v, float) else repr(v) for v in value[:3])}"
        return f"{text}, ... ({len(value)} items)]"
    text = json.dumps(value, default=str)
    return text if len(text) <= width else text[: width - 3] + "..."


def _plain(frame: pd.DataFrame) -> pd.DataFrame:
    copy = frame.copy()
    copy["value"] = copy["value"].map(lambda v: json.dumps(v, default=str))
    return copy


def _json_row(row: Mapping[Any, Any]) -> dict[str, Any]:
    return {str(key): _plain_value(value) for key, value in row.items()}


def _plain_value(value: Any) -> Any:
    if value is pd.NaT:
        return None
    if hasattr(value, "isoformat"):
        return value.isoformat()
    return _finite(value)


def _finite(value: Any) -> Any:
    if isinstance(value, float) and value != value:  # NaN: a missing number
        return None
    return value


COMMANDS = [values]
