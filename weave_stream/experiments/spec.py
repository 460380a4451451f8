"""What varies in an experiment: :class:`Variant`, and the topology each variant runs.

An experiment has a *base*: the columns every variant computes (a predict op, its
scorers), as a list of :class:`~weave_stream.topology.spec.Column` or a whole
:class:`~weave_stream.topology.spec.Topology`. A variant changes the base in any of
four ways, combined as needed:

* ``ops`` -- another op for a column (``{"predict": other_model}``, or an op name);
* ``params`` -- other parameters for a column's op (``{"judge": {"prompt": ...}}``);
  a parameter the op does not take is refused, naming the ones it takes;
* ``topology`` -- a whole other topology (its own columns and source);
* ``slice`` -- only the examples that pass a filter (``{"inputs.category": "food"}``).

Each variant becomes a validated topology named ``<experiment>.<variant>``; columns a
variant leaves alone keep their op ref, so their cached values are shared.

>>> from weave_stream.ops import Classify
>>> base = [Column("predict", Classify(labels=["food", "money"]), args={"text": "inputs.text"})]
>>> built = variant_topology("clf", base_topology("clf", base), Variant("t", params={
...     "predict": {"temperature": 0.5}}))
>>> built.name, built.column("predict").op.params["temperature"]
('clf.t', 0.5)
"""

from __future__ import annotations

import dataclasses
import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from weave_stream.config import Settings
from weave_stream.errors import ExperimentError, OpError, TopologyError
from weave_stream.ops.base import Op
from weave_stream.topology.selection import compile_filter
from weave_stream.topology.spec import Column, Topology

__all__ = ["OpChange", "Variant", "base_topology", "check_names", "variant_topology"]

_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_-]{0,49}$")
# Another op for a column: an op, an op name, or {"op": name, "params": {...}} (YAML).
OpChange = Op | str | Mapping[str, Any]


@dataclass(frozen=True)
class Variant:
    """One branch of the experiment's tree: how it differs from the base (nothing: the base)."""

    name: str
    ops: Mapping[str, OpChange] = field(default_factory=dict)
    params: Mapping[str, Mapping[str, Any]] = field(default_factory=dict)
    topology: Topology | None = None
    slice: Mapping[str, Any] | None = None
    description: str = ""


def check_names(experiment: str, variants: Sequence[Variant]) -> None:
    """Refuse a bad experiment name, a bad variant name, or a name used twice."""
    if not isinstance(experiment, str) or not _NAME.match(experiment):
        raise ExperimentError(
            f"experiment name {experiment!r}: use 1-50 letters, digits, '_' or '-', starting "
            "with a letter or digit"
        )
    if not variants:
        raise ExperimentError(f"experiment {experiment!r} has no variants; give at least one")
    seen: set[str] = set()
    for variant in variants:
        if not isinstance(variant, Variant):
            raise ExperimentError(
                f"experiment {experiment!r}: {variant!r:.60} is not a Variant; write "
                "Variant('name', ops=..., params=..., topology=..., slice=...)"
            )
        if not isinstance(variant.name, str) or not _NAME.match(variant.name):
            raise ExperimentError(
                f"experiment {experiment!r}, variant {variant.name!r}: use 1-50 letters, "
                "digits, '_' or '-', starting with a letter or digit"
            )
        if variant.name in seen:
            raise ExperimentError(
                f"experiment {experiment!r}: variant name {variant.name!r} is used twice; "
                "give each variant its own name (results are kept by name)"
            )
        seen.add(variant.name)


def base_topology(
    experiment: str,
    columns: Sequence[Column] | Topology,
    *,
    settings: Settings | None = None,
    search_path: Path | None = None,
) -> Topology:
    """The columns every variant starts from, validated as a topology named ``experiment``."""
    if isinstance(columns, Topology):
        return columns
    try:
        return Topology(experiment, list(columns), settings=settings, search_path=search_path)
    except TopologyError as exc:
        raise ExperimentError(f"experiment {experiment!r}, its columns: {exc}") from None


def variant_topology(experiment: str, base: Topology, variant: Variant) -> Topology:
    """The topology ``variant`` runs: the base (or its own topology) with its changes."""
    where = f"experiment {experiment!r}, variant {variant.name!r}"
    start = variant.topology if variant.topology is not None else base
    columns = {column.name: column for column in start.columns}
    for kind, changes in (("ops", variant.ops), ("params", variant.params)):
        unknown = sorted(set(changes) - set(columns))
        if unknown:
            raise ExperimentError(
                f"{where}, {kind}: no column {unknown} to change; the columns are {sorted(columns)}"
            )
    for name, change in variant.ops.items():
        columns[name] = _with_op(columns[name], change, where)
    for name, changes in variant.params.items():
        columns[name] = _with_params(start, columns[name], changes, f"{where}, column {name!r}")
    source = start.source
    if variant.slice is not None:
        try:
            compile_filter(variant.slice, "slice")
        except ValueError as exc:
            raise ExperimentError(f"{where}: {exc}") from None
        joined = (
            dict(variant.slice)
            if source.filter is None
            else {"all": [dict(source.filter), dict(variant.slice)]}
        )
        source = dataclasses.replace(source, filter=joined)
    try:
        return Topology(
            f"{experiment}.{variant.name}",
            list(columns.values()),
            source=source,
            description=variant.description,
            settings=start.settings or base.settings,
            search_path=start.search_path or base.search_path,
        )
    except TopologyError as exc:
        raise ExperimentError(f"{where}: {exc}") from None


def _with_op(column: Column, change: OpChange, where: str) -> Column:
    if isinstance(change, Mapping):
        unknown = sorted(set(change) - {"op", "params"})
        if "op" not in change or unknown:
            raise ExperimentError(
                f"{where}, ops.{column.name}: write {{op: <name>, params: {{...}}}}, got "
                f"{dict(change)!r:.80}"
            )
        return dataclasses.replace(column, op=change["op"], params=dict(change.get("params") or {}))
    return dataclasses.replace(column, op=change, params={})


def _with_params(
    topology: Topology, column: Column, changes: Mapping[str, Any], where: str
) -> Column:
    if not isinstance(changes, Mapping):
        raise ExperimentError(f"{where}, params: must map parameter -> value, got {changes!r:.80}")
    if isinstance(column.op, str):
        # An op given by name is built from params: build the base one first, so that its
        # own problems are reported as such, then rebuild it with the changes.
        try:
            built = Topology("check", [column], settings=topology.settings).compiled[0].op
        except TopologyError as exc:
            raise ExperimentError(f"{where}: {exc}") from None
    else:
        built = column.op
    rebuild = getattr(built, "with_params", None)
    if not callable(rebuild):
        raise ExperimentError(
            f"{where}, params: op {built.ref} cannot be rebuilt with other parameters; vary it "
            "with ops= instead"
        )
    try:
        changed = rebuild(**changes)
    except OpError as exc:
        raise ExperimentError(f"{where}, params: {exc}") from None
    except (TypeError, ValueError) as exc:
        raise ExperimentError(f"{where}, params {dict(changes)!r:.80}: {exc}") from None
    return dataclasses.replace(column, op=changed, params={})
