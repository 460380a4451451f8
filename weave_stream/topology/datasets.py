"""What a topology declares under ``datasets:``: "from now on" rules, validated when built.

A topology may declare, in YAML::

    datasets:
      - name: low-judge-scores                # the dataset (made with its first rows)
        filter: {columns.faithfulness.score: {lt: 0.4}}   # over the call and its columns
        sample: 0.5                           # deterministic by call id (and dataset)
        cap: {rows: 50, per: 1d}              # at most 50 rows per day of the calls' time
        mapping:                              # row field -> call path or columns.<name>...
          document: inputs.document
          score: columns.faithfulness.score

Each entry is a :class:`DatasetSpec` (a typed spec like
:class:`~weave_stream.topology.aggregates.Aggregate`); the
:class:`~weave_stream.topology.spec.Topology` validates its entries when it is built
(a rate, cap or filter out of range, a column it does not have: refused then, with
the topology's other problems) and compiles each into a :class:`DatasetRule`, which
:mod:`weave_stream.datasets.apply` uses to match calls and add them. The dataset
remembers the mapping in the store's vocabulary (``columns.faithfulness.score`` of
topology ``text_extract`` is ``text_extract.faithfulness.score``), so ``weave-stream
dataset add NAME --from-calls ...`` reuses it.

>>> rules = parse_datasets("t", [{"name": "low", "filter": {"columns.s": {"lt": 0.4}},
...                               "cap": {"rows": 2, "per": "1d"},
...                               "mapping": {"text": "inputs.text", "s": "columns.s"}}], {"s"})
>>> rules[0].stored_mapping, rules[0].cap
({'text': 'inputs.text', 's': 't.s'}, (2, 86400))
>>> parse_datasets("t", [{"name": "x", "mapping": {"a": "columns.nope"}}], {"s"})
Traceback (most recent call last):
...
weave_stream.errors.TopologyError: topology 't' has invalid datasets:
  dataset 'x', field mapping.a: reads column 'nope'; the topology's columns: s
"""

from __future__ import annotations

import re
from collections.abc import Collection, Iterable, Mapping
from dataclasses import dataclass
from typing import Any

from pydantic import Field, field_validator

from weave_stream.durations import WholeSeconds
from weave_stream.errors import TopologyError
from weave_stream.topology.models import SpecModel, check_entries
from weave_stream.topology.selection import FieldPath, Filter, compile_filter, sample_point

__all__ = [
    "DATASET_NAME",
    "RESERVED_FIELDS",
    "CapSpec",
    "DatasetRule",
    "DatasetSpec",
    "check_datasets",
    "dataset_name_problem",
    "parse_datasets",
]

DATASET_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.\-]{0,99}$")
RESERVED_FIELDS = frozenset({"id", "source_call", "source_ref"})
"""Columns every dataset row has besides its mapped fields."""


def dataset_name_problem(name: Any) -> str | None:
    """What is wrong with ``name`` as a dataset name (None: nothing).

    >>> dataset_name_problem("invoices-hard") is None, dataset_name_problem("a b")[:24]
    (True, "'a b' is not a dataset n")
    """
    if isinstance(name, str) and DATASET_NAME.match(name):
        return None
    return (
        f"{name!r} is not a dataset name: use 1-100 letters, digits, '_', '.' or '-', "
        "starting with a letter or digit (invoices-hard)"
    )


class CapSpec(SpecModel):
    """At most ``rows`` rows per ``per`` (a duration: ``1d``) of the calls' time."""

    rows: int = Field(ge=1, strict=True)
    per: WholeSeconds = Field(ge=1)


class DatasetSpec(SpecModel):
    """One ``datasets:`` entry: which calls join the dataset from now on, and their fields.

    >>> DatasetSpec(name="hard", sample=0.5, mapping={"doc": "inputs.document"}).sample
    0.5
    >>> DatasetSpec(name="hard", cap={"rows": 5, "per": "2h"}, mapping={"d": "inputs.d"}).cap
    CapSpec(rows=5, per=7200)
    """

    name: str
    filter: dict[str, Any] | None = None
    sample: float = Field(default=1.0, gt=0, le=1, strict=True)
    cap: CapSpec | None = None
    mapping: dict[str, str]

    @field_validator("name")
    @classmethod
    def _check_name(cls, value: str) -> str:
        problem = dataset_name_problem(value)
        if problem is not None:
            raise ValueError(problem)
        return value

    @field_validator("filter")
    @classmethod
    def _check_filter(cls, value: dict[str, Any] | None) -> dict[str, Any] | None:
        if value is not None:
            compile_filter(value)  # a ValueError names the part that is wrong
        return value

    @field_validator("mapping")
    @classmethod
    def _check_mapping(cls, value: dict[str, str]) -> dict[str, str]:
        if not value:
            raise ValueError(
                "map each row field to a call path or a column, e.g. "
                "{document: inputs.document, score: columns.faithfulness.score}"
            )
        for field, text in value.items():
            if not field or field in RESERVED_FIELDS:
                raise ValueError(
                    f"{field!r} cannot name a field (every row has "
                    f"{', '.join(sorted(RESERVED_FIELDS))})"
                )
            try:
                FieldPath.parse(text)
            except ValueError as exc:
                raise ValueError(f"field {field!r}: {exc}") from None
        return value


@dataclass(frozen=True)
class DatasetRule:
    """One validated ``datasets:`` entry of a topology, compiled for matching calls."""

    topology: str
    name: str
    filter: Filter | None
    sample: float
    cap: tuple[int, int] | None  # (rows, per seconds)
    mapping: Mapping[str, FieldPath]
    stored_mapping: Mapping[str, str]  # the same, in the calls() vocabulary

    @property
    def rule(self) -> str:
        """``<topology>/<dataset>``: what the rows it adds are marked with."""
        return f"{self.topology}/{self.name}"

    def sampled(self, call_id: str) -> bool:
        """Deterministic by call id; salted by the dataset, so two datasets (or a dataset
        and the topology's own sampling) at the same rate keep independent calls."""
        return self.sample >= 1.0 or sample_point(f"{self.name}\0{call_id}") < self.sample


def check_datasets(
    topology: str, specs: Iterable[DatasetSpec], columns: Collection[str], problems: list[str]
) -> tuple[DatasetRule, ...]:
    """The rules of valid ``specs`` whose filter and mapping read only the topology's
    ``columns``; a problem appended for each that reads another."""
    rules = []
    for spec in specs:
        where = f"dataset {spec.name!r}"
        count = len(problems)
        rule_filter = None if spec.filter is None else compile_filter(spec.filter)
        for path in rule_filter.paths if rule_filter is not None else ():
            _known_column(path, f"{where}, field filter", columns, problems)
        mapping = {field: FieldPath.parse(text) for field, text in spec.mapping.items()}
        for field, path in mapping.items():
            _known_column(path, f"{where}, field mapping.{field}", columns, problems)
        if len(problems) > count:
            continue
        cap = None if spec.cap is None else (spec.cap.rows, int(spec.cap.per))
        stored = {field: _stored(topology, path) for field, path in mapping.items()}
        rules.append(
            DatasetRule(topology, spec.name, rule_filter, spec.sample, cap, mapping, stored)
        )
    return tuple(rules)


def parse_datasets(
    topology: str, entries: Iterable[DatasetSpec | Mapping[str, Any]], columns: Collection[str]
) -> tuple[DatasetRule, ...]:
    """Validate ``datasets:`` entries against the topology's ``columns``; one
    :class:`TopologyError` lists every problem (names the dataset and the field)."""
    problems: list[str] = []
    rules = check_datasets(
        topology, check_entries(DatasetSpec, entries, problems), columns, problems
    )
    if problems:
        listing = "\n  ".join(problems)
        raise TopologyError(f"topology {topology!r} has invalid datasets:\n  {listing}")
    return rules


def _known_column(
    path: FieldPath, where: str, columns: Collection[str], problems: list[str]
) -> None:
    if path.column is not None and path.column not in columns:
        problems.append(
            f"{where}: reads column {path.column!r}; the topology's columns: "
            f"{', '.join(sorted(columns)) or 'none'}"
        )


def _stored(topology: str, path: FieldPath) -> str:
    if path.column is None:
        return path.text
    return ".".join([topology, path.column, *path.parts])
