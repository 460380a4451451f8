"""Topologies: which calls to watch and which columns to derive from them.

A topology has a name, a :class:`Source` (which calls: ``op_name`` glob, a filter,
a sampling rate) and :class:`Column` s: an op, a mapping from the op's arguments to
call paths or other columns (``args``), an optional filter, a sampling rate
relative to the source's, and a number of trials (non-deterministic ops only).
Columns may read other columns (``columns.<name>`` in args or filters): they form
a DAG, run in dependency order. ``aggregates`` are
:class:`~weave_stream.topology.aggregates.Aggregate` s and ``monitors``
:class:`~weave_stream.topology.monitors.Monitor` s (or their plain data, as in YAML,
which is converted: both forms build the same objects); ``datasets`` ("from now on"
rules) are :class:`~weave_stream.topology.datasets.DatasetSpec` s, compiled into
``dataset_rules`` with the columns; each ``topics`` entry
(:class:`~weave_stream.topology.topic_columns.TopicColumn`) adds the column that
assigns calls to the topics of its embedding column (``columns`` then ends with it).

Constructing a :class:`Topology` validates all of it — unknown op, bad path, wrong
argument, unknown column, cycle, bad rate or trials, an aggregate, monitor or dataset
rule that is invalid or names no column or call field — and raises one
:class:`~weave_stream.errors.TopologyError` listing every problem with the
topology, column and field. The same spec is written in YAML or in Python (see
``topologies/``); :func:`load_topology` reads either.

>>> from weave_stream.ops import op
>>> @op
... def length(text: str) -> int:
...     return len(text)
>>> t = Topology("demo", [Column("n", length, args={"text": "inputs.document"})])
>>> [c.name for c in t.compiled], t.compiled[0].args["text"].text
(['n'], 'inputs.document')
>>> Topology("demo", [Column("n", length, args={"txt": "inputs.document"})])
Traceback (most recent call last):
...
weave_stream.errors.TopologyError: topology 'demo' is invalid:
  column 'n', field 'args': unknown argument 'txt' (the op takes: text)
  column 'n', field 'args': missing argument 'text'
>>> Topology("demo", [Column("n", length, args={"text": "inputs.document"})],
...          aggregates=[{"name": "q", "window": "bogus", "metrics": {"n": ["mean"]}}])
Traceback (most recent call last):
...
weave_stream.errors.TopologyError: topology 'demo' is invalid:
  aggregate 'q', field window.size: 'bogus' is not a duration; ...
>>> Topology("demo", [Column("n", length, args={"text": "inputs.document"})],
...          monitors=[{"name": "m", "column": "nosuchcol", "reference": {"first_n": 10}}])
Traceback (most recent call last):
...
weave_stream.errors.TopologyError: topology 'demo' is invalid:
  monitor 'm', field column: 'nosuchcol' is not a column of the topology (its columns: n); \
name the embedding column to watch
"""

from __future__ import annotations

import re
from collections.abc import Mapping, Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from weave_stream.config import Settings
from weave_stream.errors import OpError, TopologyError
from weave_stream.ingest.call import Call
from weave_stream.ops.base import Op
from weave_stream.ops.resolve import op_spec, resolve_op
from weave_stream.topology.aggregates import Aggregate, check_aggregates
from weave_stream.topology.calibration import (
    CalibrationRequest,
    calibration_requests,
    column_first_n,
    request_problems,
)
from weave_stream.topology.datasets import DatasetRule, DatasetSpec, check_datasets
from weave_stream.topology.models import check_entries
from weave_stream.topology.monitors import Monitor
from weave_stream.topology.selection import (
    FieldPath,
    Filter,
    compile_filter,
    op_name_matches,
    sampled,
)
from weave_stream.topology.topic_columns import (
    ASSIGN_OP,
    TopicColumn,
    check_topic_columns,
    is_generated,
)

__all__ = ["Column", "CompiledColumn", "Source", "Topology"]

_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.-]{0,99}$")  # used in topic names
_COLUMN = re.compile(r"^[A-Za-z_][A-Za-z0-9_]{0,99}$")


@dataclass(frozen=True)
class Source:
    """Which calls a topology reads: ``op_name`` glob, a filter, a sampling rate."""

    op_name: str | None = None
    filter: Mapping[str, Any] | None = None
    sample: float = 1.0


@dataclass(frozen=True)
class Column:
    """A derived column as written: ``op`` is an op, or a name for the registry with ``params``."""

    name: str
    op: Op | str
    args: Mapping[str, str] = field(default_factory=dict)
    params: Mapping[str, Any] = field(default_factory=dict)
    filter: Mapping[str, Any] | None = None
    sample: float = 1.0
    trials: int = 1
    higher_is_worse: bool | None = None  # drill-downs: the op's default when None


@dataclass(frozen=True)
class CompiledColumn:
    """A validated column, ready to run: the op resolved, paths and filter compiled."""

    name: str
    op: Op
    args: Mapping[str, FieldPath]
    filter: Filter | None
    sample: float
    trials: int
    depends_on: frozenset[str]


@dataclass(frozen=True, init=False)
class Topology:
    """A named source of calls, the columns derived from them, their aggregates and monitors.

    Validated when built; ``aggregates`` and ``monitors`` are kept as typed objects
    whether they were given as such or as plain data.
    """

    name: str
    columns: tuple[Column, ...]
    source: Source
    description: str
    aggregates: tuple[Aggregate, ...]
    monitors: tuple[Monitor, ...]
    datasets: tuple[DatasetSpec, ...]
    topics: tuple[TopicColumn, ...]
    settings: Settings | None = field(compare=False, repr=False)
    search_path: Path | None = field(compare=False, repr=False)
    compiled: tuple[CompiledColumn, ...] = field(init=False, compare=False, repr=False)
    levels: tuple[tuple[str, ...], ...] = field(init=False, compare=False, repr=False)
    source_filter: Filter | None = field(init=False, compare=False, repr=False)
    dataset_rules: tuple[DatasetRule, ...] = field(init=False, compare=False, repr=False)
    calibrations: tuple[CalibrationRequest, ...] = field(init=False, compare=False, repr=False)

    def __init__(
        self,
        name: str,
        columns: Sequence[Column] = (),
        source: Source | None = None,
        description: str = "",
        aggregates: Sequence[Aggregate | Mapping[str, Any]] = (),
        monitors: Sequence[Monitor | Mapping[str, Any]] = (),
        datasets: Sequence[DatasetSpec | Mapping[str, Any]] = (),
        settings: Settings | None = None,
        search_path: Path | None = None,
        topics: Sequence[TopicColumn | Mapping[str, Any]] = (),
    ) -> None:
        problems: list[str] = []
        if not isinstance(name, str) or not _NAME.match(name):
            problems.append(
                f"field 'name': {name!r} is not a topology name; use 1-100 letters, "
                "digits, '_', '.' or '-', starting with a letter or digit"
            )
        typed_topics = check_entries(TopicColumn, topics, problems)
        if isinstance(columns, Sequence):  # a copy passes the added topic columns back in
            columns = tuple(c for c in columns if not is_generated(c, typed_topics))
        given = {
            "name": name,
            "columns": columns,
            "source": Source() if source is None else source,
            "description": description,
            "settings": settings,
            "search_path": search_path,
        }
        for key, value in given.items():
            object.__setattr__(self, key, value)
        source_filter = self._compile_source(problems)
        compiled = self._compile_columns(problems)
        self._add_topic_columns(typed_topics, compiled, problems)
        column_names = {c.name for c in self.columns if isinstance(c, Column)}
        typed_aggregates = check_entries(Aggregate, aggregates, problems)
        check_aggregates(typed_aggregates, column_names, problems)
        typed_monitors = check_entries(Monitor, monitors, problems)
        for monitor in typed_monitors:
            if monitor.column not in column_names:
                problems.append(
                    f"monitor {monitor.name!r}, field column: {monitor.column!r} is not a column "
                    f"of the topology (its columns: {', '.join(sorted(column_names)) or 'none'}); "
                    "name the embedding column to watch"
                )
        typed_datasets = check_entries(DatasetSpec, datasets, problems)
        rules = check_datasets(name, typed_datasets, column_names, problems)
        order, levels = _order(compiled, problems)
        if problems:
            listing = "\n  ".join(dict.fromkeys(problems))
            raise TopologyError(f"topology {name!r} is invalid:\n  {listing}")
        object.__setattr__(self, "aggregates", typed_aggregates)
        object.__setattr__(self, "monitors", typed_monitors)
        object.__setattr__(self, "datasets", typed_datasets)
        object.__setattr__(self, "topics", typed_topics)
        object.__setattr__(self, "compiled", tuple(compiled[n] for n in order))
        object.__setattr__(self, "levels", levels)
        object.__setattr__(self, "source_filter", source_filter)
        object.__setattr__(self, "dataset_rules", rules)
        requested = [(c.name, c.op, c.params, c.filter, compiled.get(c.name)) for c in self.columns]
        source_spec = asdict(self.source)
        object.__setattr__(self, "calibrations", calibration_requests(requested, source_spec))

    def selects(self, call: Call, data: Mapping[str, Any] | None = None) -> bool:
        """Whether ``call`` is one of the source's (op name, filter, sample); ``data`` is
        ``call.to_dict()`` when the caller has it."""
        source = self.source
        if source.op_name is not None and not op_name_matches(source.op_name, call.op_name):
            return False
        found = self.source_filter
        if found is not None and not found.matches(call.to_dict() if data is None else data, {}):
            return False
        return sampled(call.id, source.sample)

    def column(self, name: str) -> CompiledColumn:
        """The compiled column ``name``."""
        for compiled in self.compiled:
            if compiled.name == name:
                return compiled
        raise TopologyError(f"topology {self.name!r} has no column {name!r}")

    def to_dict(self) -> dict[str, Any]:
        """The spec as plain data (the YAML form), ops named by registry name or import path."""
        columns = []
        for column in self.columns:
            if is_generated(column, self.topics):
                continue  # the topics: entry below adds it again
            if isinstance(column.op, str):
                name, params = column.op, dict(column.params)
            else:
                name, params = op_spec(column.op)
            entry: dict[str, Any] = {"name": column.name, "op": name, "args": dict(column.args)}
            entry.update({"params": params} if params else {})
            entry.update({"filter": dict(column.filter)} if column.filter else {})
            entry.update({"sample": column.sample} if column.sample != 1.0 else {})
            entry.update({"trials": column.trials} if column.trials != 1 else {})
            if column.higher_is_worse is not None:
                entry["higher_is_worse"] = column.higher_is_worse
            columns.append(entry)
        source = {k: v for k, v in vars(self.source).items() if v is not None and v != 1.0}
        return {
            "name": self.name,
            "description": self.description,
            "source": source,
            "columns": columns,
            "aggregates": [_plain(a) for a in self.aggregates],
            "monitors": [_plain(m) for m in self.monitors],
            # only when declared: specs without datasets keep their digest
            **({"datasets": [_plain(d) for d in self.datasets]} if self.datasets else {}),
            **({"topics": [_plain(t) for t in self.topics]} if self.topics else {}),
        }

    # -- validation ---------------------------------------------------------------------
    def _compile_source(self, problems: list[str]) -> Filter | None:
        source = self.source
        if not isinstance(source, Source):
            problems.append(f"field 'source': expected a Source, got {source!r:.80}")
            return None
        if source.op_name is not None and (
            not isinstance(source.op_name, str) or not source.op_name
        ):
            problems.append(
                f"source, field 'op_name': must be a non-empty string, got {source.op_name!r}"
            )
        _check_rate(source.sample, "source, field 'sample'", problems)
        if source.filter is None:
            return None
        try:
            compiled = compile_filter(source.filter)
        except ValueError as exc:
            problems.append(f"source, field 'filter': {exc}")
            return None
        for path in compiled.paths:
            if path.column is not None:
                problems.append(
                    f"source, field 'filter': {path.text!r} reads a column; the source selects "
                    "calls before any column exists (move the condition to a column's filter)"
                )
        return compiled

    def _compile_columns(self, problems: list[str]) -> dict[str, CompiledColumn]:
        compiled: dict[str, CompiledColumn] = {}
        for index, column in enumerate(self.columns):
            if not isinstance(column, Column):
                problems.append(f"columns[{index}]: expected a Column, got {column!r:.80}")
                continue
            where = f"column {column.name!r}"
            if not isinstance(column.name, str) or not _COLUMN.match(column.name):
                problems.append(
                    f"{where}, field 'name': use a Python-style identifier (letters, digits, '_')"
                )
            if column.name in compiled:
                problems.append(f"{where}, field 'name': two columns have this name; rename one")
                continue
            result = self._compile_column(column, where, problems)
            if result is not None:
                compiled[column.name] = result
        for result in compiled.values():
            for dependency in sorted(result.depends_on):
                if dependency not in compiled and dependency not in {c.name for c in self.columns}:
                    problems.append(
                        f"column {result.name!r}, field 'args/filter': reads unknown column "
                        f"{dependency!r}; columns: {', '.join(compiled) or 'none'}"
                    )
        return compiled

    def _add_topic_columns(
        self,
        specs: tuple[TopicColumn, ...],
        compiled: dict[str, CompiledColumn],
        problems: list[str],
    ) -> None:
        """Check the ``topics:`` entries and add the column each one assigns."""
        own = {c.name: c for c in self.columns if isinstance(c, Column)}
        check_topic_columns(specs, set(own), problems)
        added = []
        for spec in specs:
            embedding = compiled.get(spec.column)
            if embedding is None or spec.name in own:
                continue  # reported above (or with the embedding column itself)
            params = spec.op_params(self.name, embedding.op.ref)  # a new model: map refused
            if self.settings is not None:
                params["settings"] = self.settings
            column = Column(spec.name, ASSIGN_OP, {"embedding": f"columns.{spec.column}"}, params)
            result = self._compile_column(column, f"topic {spec.name!r}", problems)
            if result is not None:
                compiled[spec.name] = result
                added.append(column)
        object.__setattr__(self, "columns", (*self.columns, *added))

    def _compile_column(
        self, column: Column, where: str, problems: list[str]
    ) -> CompiledColumn | None:
        reported = len(problems)
        first_n = column_first_n(column.op, column.params, f"{where}, field 'params.calibration'",
                                 problems)  # fmt: skip
        uncalibrated = first_n is not None or len(problems) > reported  # reported once
        an_op = self._resolve(column, where, problems, uncalibrated=uncalibrated)
        args: dict[str, FieldPath] = {}
        if not isinstance(column.args, Mapping):
            problems.append(
                f"{where}, field 'args': must map argument -> path, got {column.args!r:.80}"
            )
        else:
            for argument, text in column.args.items():
                try:
                    args[str(argument)] = FieldPath.parse(text)
                except ValueError as exc:
                    problems.append(f"{where}, field 'args.{argument}': {exc}")
        column_filter = None
        if column.filter is not None:
            try:
                column_filter = compile_filter(column.filter)
            except ValueError as exc:
                problems.append(f"{where}, field 'filter': {exc}")
        _check_rate(column.sample, f"{where}, field 'sample'", problems)
        if column.higher_is_worse is not None and not isinstance(column.higher_is_worse, bool):
            problems.append(
                f"{where}, field 'higher_is_worse': must be true or false, got "
                f"{column.higher_is_worse!r}"
            )
        if (
            not isinstance(column.trials, int)
            or isinstance(column.trials, bool)
            or column.trials < 1
        ):
            problems.append(
                f"{where}, field 'trials': must be a whole number >= 1, got {column.trials!r}"
            )
        if an_op is None:
            return None
        if isinstance(column.args, Mapping):
            problems.extend(
                f"{where}, field 'args': {p}" for p in an_op.signature.problems(set(column.args))
            )
        if isinstance(column.trials, int) and column.trials > 1 and an_op.deterministic:
            problems.append(
                f"{where}, field 'trials': op {an_op.ref} is deterministic, so every trial would "
                "give the same value; trials apply to non-deterministic ops (drop 'trials')"
            )
        if first_n is not None:
            found = request_problems(args, column_filter)
            problems.extend(f"{where}, field 'params.calibration': {p}" for p in found)
        paths = list(args.values()) + (column_filter.paths if column_filter else [])
        depends_on = frozenset(p.column for p in paths if p.column is not None)
        return CompiledColumn(
            column.name, an_op, args, column_filter, column.sample, column.trials, depends_on
        )

    def _resolve(
        self, column: Column, where: str, problems: list[str], *, uncalibrated: bool = False
    ) -> Op | None:
        if isinstance(column.op, str):
            if column.params is not None and not isinstance(column.params, Mapping):
                problems.append(
                    f"{where}, field 'params': must be a mapping, got {column.params!r:.80}"
                )
                return None
            params = column.params
            if uncalibrated:  # built without it until the sample is resolved to texts
                params = {k: v for k, v in column.params.items() if k != "calibration"}
            try:
                return resolve_op(
                    column.op, params, settings=self.settings, search_path=self.search_path
                )
            except OpError as exc:
                problems.append(f"{where}, field 'op': {exc}")
                return None
        if column.params:
            problems.append(
                f"{where}, field 'params': params apply to an op given by name; "
                f"{column.op!r} is already built"
            )
        if not isinstance(column.op, Op):
            problems.append(
                f"{where}, field 'op': {column.op!r:.60} is not an op; decorate it with @op, "
                "or name a built-in (embed, classify, judge, explain) or an import path"
            )
            return None
        return column.op


def _plain(spec: Aggregate | Monitor | DatasetSpec | TopicColumn) -> dict[str, Any]:
    """A typed entry as the plain data that builds it again."""
    return spec.model_dump(mode="json")


def _check_rate(rate: Any, where: str, problems: list[str]) -> None:
    if isinstance(rate, bool) or not isinstance(rate, int | float) or not 0 < rate <= 1:
        problems.append(f"{where}: a sampling rate is a number in (0, 1], got {rate!r}")


def _order(
    columns: Mapping[str, CompiledColumn], problems: list[str]
) -> tuple[list[str], tuple[tuple[str, ...], ...]]:
    """Columns in dependency order, grouped in levels that can run together; cycles reported."""
    remaining = {name: set(c.depends_on) & set(columns) for name, c in columns.items()}
    order: list[str] = []
    levels: list[tuple[str, ...]] = []
    while remaining:
        ready = [name for name, needs in remaining.items() if not needs]
        if not ready:
            problems.append(
                f"columns {_cycle(remaining)}: they depend on each other in a cycle; break it"
            )
            break
        levels.append(tuple(ready))
        order.extend(ready)
        for name in ready:
            del remaining[name]
        for needs in remaining.values():
            needs.difference_update(ready)
    return order, tuple(levels)


def _cycle(remaining: Mapping[str, set[str]]) -> str:
    start = min(remaining)
    path, node = [start], start
    while True:
        node = min(remaining[node])
        if node in path:
            cycle = [*path[path.index(node) :], node]
            return " -> ".join(repr(n) for n in cycle)
        path.append(node)
