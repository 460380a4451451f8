"""The demo's closing query: the calls the judge scored lowest, from the call store.

It shows what a notebook user types: one ``calls()`` query over the store the
worker's sink wrote (every call with its derived values), to pandas.
"""

from __future__ import annotations

import time
from typing import Any

import click

from weave_stream.config import Settings
from weave_stream.errors import WeaveStreamError
from weave_stream.query.calls import Query, calls
from weave_stream.query.text import format_frame
from weave_stream.topology.spec import Topology

__all__ = ["lowest_scores_query", "show_lowest_scores"]


def lowest_scores_query(settings: Settings, topology: Topology, limit: int = 5) -> Query | None:
    """The calls of ``topology`` with the lowest judge score, with their document excerpt
    and class (None when the topology has no judge column)."""
    by_op = {column.op.name: column for column in topology.compiled}
    judge = by_op.get("judge")
    if judge is None:
        return None
    columns = {"document": _document_path(topology)}
    if "classify" in by_op:
        columns["class"] = f"{topology.name}.{by_op['classify'].name}.label"
    score = f"{topology.name}.{judge.name}.score"
    columns["score"] = score
    return calls(
        settings=settings,
        op=topology.source.op_name,
        where={score: {"exists": True}},
        columns=columns,
        sort=[score, "id"],
        limit=limit,
    )


def show_lowest_scores(
    settings: Settings, topology: Topology, expected: int, timeout: float = 60.0
) -> bool:
    """Wait until the store holds ``expected`` calls' values, then print the query and
    its answer. False when the store never caught up (said plainly)."""
    query = lowest_scores_query(settings, topology)
    if query is None:
        click.echo("  (the topology has no judge column: nothing to rank)")
        return True
    # A value, success or error, has an op ref: count the calls the store holds one for.
    judge = _score_path(query).rsplit(".", 1)[0]
    stored = calls(settings=settings, op=topology.source.op_name, columns=[])
    stored = stored.where({f"{judge}#op_ref": {"exists": True}})
    deadline = time.monotonic() + timeout
    held = 0
    while time.monotonic() < deadline:
        try:
            held = stored.count()
        except WeaveStreamError:
            held = 0  # the sink has not written this column yet
        if held >= expected:
            break
        time.sleep(1.0)
    click.echo(f"  the store at {settings.store_location} holds every call and value; in Python:")
    click.secho(_snippet(query, settings.store_location), fg="cyan")
    try:
        click.echo(format_frame(query.to_pandas(), "table"), nl=False)
    except WeaveStreamError as exc:
        click.echo(f"  the query failed: {exc}")
        return False
    return held >= expected


def _score_path(query: Query) -> str:
    return dict(query.spec.columns)["score"].text


def _document_path(topology: Topology) -> str:
    for column in topology.compiled:
        for path in column.args.values():
            if path.column is None and path.parts[0] == "inputs":
                return path.text
    return "inputs"


def _snippet(query: Query, store: str) -> str:
    spec = query.spec
    columns: dict[str, Any] = {name: path.text for name, path in spec.columns}
    return (
        "  >>> from weave_stream import calls\n"
        f"  >>> calls(store={store!r}, op={spec.op_names[0]!r},\n"
        f"  ...       columns={columns},\n"
        f"  ...       sort={spec.sort[0][0].text!r}, limit={spec.limit}"
        ").to_pandas()"
    )
