"""The demo's closing query and dataset: the lowest judge scores, from the call store.

It shows what a notebook user types: one ``calls()`` query over the store the
worker's sink wrote (every call with its derived values), to pandas; and the
"from now on" dataset the topology declares, as the sink filled it.
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

__all__ = [
    "await_rule_datasets",
    "await_stored",
    "lowest_scores_query",
    "show_lowest_scores",
    "show_rule_datasets",
]


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
    judge = next(column.name for column in topology.compiled if column.op.name == "judge")
    held = await_stored(settings, topology, judge, expected, timeout)
    click.echo(f"  the store at {settings.store_location} holds every call and value; in Python:")
    click.secho(_snippet(query, settings.store_location), fg="cyan")
    try:
        click.echo(format_frame(query.to_pandas(), "table"), nl=False)
    except WeaveStreamError as exc:
        click.echo(f"  the query failed: {exc}")
        return False
    return held >= expected


def await_stored(
    settings: Settings, topology: Topology, column: str, expected: int, timeout: float = 60.0
) -> int:
    """Wait until the store holds a value of ``column`` for ``expected`` calls of
    ``topology``'s source (bounded by ``timeout``); the count it holds."""
    # A value, success or error, has an op ref: count the calls the store holds one for.
    stored = calls(settings=settings, op=topology.source.op_name, columns=[])
    stored = stored.where({f"{topology.name}.{column}#op_ref": {"exists": True}})
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
    return held


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


def await_rule_datasets(
    settings: Settings, topology: Topology, timeout: float = 60.0
) -> list[tuple[str, Any]]:
    """Wait until each "from now on" dataset of ``topology`` holds the calls its rule keeps
    of what the store holds (its filter, sampling and cap per period); (name, the dataset,
    or True when the rule kept no call, False when the dataset never caught up)."""
    from weave_stream.datasets.dataset import Dataset

    found: list[tuple[str, Any]] = []
    for rule, entry in zip(topology.dataset_rules, topology.datasets, strict=True):
        dataset = Dataset(rule.name, settings=settings)
        deadline = time.monotonic() + timeout
        held, want = -1, 0
        while time.monotonic() < deadline:
            try:
                want = _kept(settings, topology, rule, entry.filter)
                held = dataset.latest.rows if want else 0
            except WeaveStreamError:
                held = -1  # nothing written yet
            if held == want:
                break
            time.sleep(1.0)
        found.append((rule.name, dataset if held == want and want else want == 0))
    return found


def _kept(settings: Settings, topology: Topology, rule: Any, where: Any) -> int:
    """How many calls in the store ``rule`` keeps: filtered, sampled, capped per period."""
    query = calls(
        settings=settings,
        op=topology.source.op_name,
        where=_in_store_terms(topology.name, where) if where else None,
        columns=["started_at"],
    )
    kept: dict[int, int] = {}
    for row in query:
        if not rule.sampled(row["id"]):
            continue
        bucket = int(row["started_at"].timestamp() // rule.cap[1]) if rule.cap else 0
        kept[bucket] = kept.get(bucket, 0) + 1
    cap = rule.cap[0] if rule.cap else None
    return sum(n if cap is None else min(n, cap) for n in kept.values())


def _in_store_terms(topology: str, spec: Any) -> Any:
    """A topology filter with ``columns.<name>`` paths named as the store names them."""
    if isinstance(spec, dict):
        return {
            (f"{topology}.{key[len('columns.') :]}" if key.startswith("columns.") else key): (
                _in_store_terms(topology, value)
            )
            for key, value in spec.items()
        }
    if isinstance(spec, list):
        return [_in_store_terms(topology, item) for item in spec]
    return spec


def show_rule_datasets(found: list[tuple[str, Any]], store: str, rows: int = 8) -> None:
    """Print each "from now on" dataset: its size and versions, and its first rows."""
    for name, dataset in found:
        if dataset is True:
            click.echo(f"  dataset {name}: no call matched its rule, so it has no rows yet")
            continue
        if dataset is False:
            click.echo(f"  dataset {name}: did not catch up with the stream in time")
            continue
        versions = dataset.versions()
        latest = versions[-1]
        click.echo(
            f"  dataset {name} (from now on: {latest.source.get('rule')}): {latest.rows} rows "
            f"in {len(versions)} version{'s' if len(versions) != 1 else ''}, each with a ref "
            "back to its call"
        )
        frame = dataset.to_pandas()
        shown = [c for c in ("id", "class", "score", "document", "source_call") if c in frame]
        click.echo(format_frame(frame[shown].head(rows), "table"), nl=False)
        more = f" (the first {rows} of {len(frame)} above)" if len(frame) > rows else ""
        click.secho(f"  weave-stream dataset show {name} --store-url {store}{more}", fg="cyan")
