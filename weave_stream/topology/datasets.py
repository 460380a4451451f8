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

The :class:`~weave_stream.topology.spec.Topology` compiles its entries when it is
built (a rate, cap or filter out of range, a column it does not have: refused then,
with the topology's other problems); :mod:`weave_stream.datasets.apply` matches calls
and adds them. The dataset remembers the mapping in the store's vocabulary
(``columns.faithfulness.score`` of topology ``text_extract`` is
``text_extract.faithfulness.score``), so ``weave-stream dataset add NAME --from-calls
...`` reuses it.

>>> rules = parse_rules("t", [{"name": "low", "filter": {"columns.s": {"lt": 0.4}},
...                            "cap": {"rows": 2, "per": "1d"},
...                            "mapping": {"text": "inputs.text", "s": "columns.s"}}], {"s"})
>>> rules[0].stored_mapping, rules[0].cap
({'text': 'inputs.text', 's': 't.s'}, (2, 86400))
>>> parse_rules("t", [{"name": "x", "sample": 2, "mapping": {"a": "columns.nope"}}], {"s"})
Traceback (most recent call last):
...
weave_stream.errors.TopologyError: topology 't' has invalid datasets:
  dataset 'x', field sample: a sampling rate is a number in (0, 1], got 2
  dataset 'x', field mapping.a: reads column 'nope'; the topology's columns: s
"""

from __future__ import annotations

import re
from collections.abc import Collection, Iterable, Mapping
from dataclasses import dataclass
from typing import Any

from weave_stream.errors import TopologyError
from weave_stream.topology.selection import FieldPath, Filter, compile_filter, sample_point

__all__ = [
    "DATASET_NAME",
    "RESERVED_FIELDS",
    "DatasetRule",
    "compile_rules",
    "dataset_name_problem",
    "parse_rules",
]

DATASET_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.\-]{0,99}$")
RESERVED_FIELDS = frozenset({"id", "source_call", "source_ref"})
"""Columns every dataset row has besides its mapped fields."""
_KEYS = frozenset({"name", "filter", "sample", "cap", "mapping"})
_DURATION_PART = re.compile(r"(\d+)([wdhms])")
_UNIT_SECONDS = {"w": 604800, "d": 86400, "h": 3600, "m": 60, "s": 1}


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


def _seconds(value: Any) -> int:
    """Whole seconds from ``90s``, ``5m``, ``1h30m``, ``2d``, ``1w`` or a number."""
    if isinstance(value, int) and not isinstance(value, bool) and value >= 0:
        return value
    if isinstance(value, str):
        text = value.strip().lower().replace(" ", "")
        parts = _DURATION_PART.findall(text)
        if text.isdigit():
            return int(text)
        if parts and "".join(n + u for n, u in parts) == text:
            return sum(int(n) * _UNIT_SECONDS[u] for n, u in parts)
    raise ValueError(
        f"{value!r} is not a duration; write whole seconds or e.g. 90s, 5m, 1h30m, 2d, 1w"
    )


@dataclass(frozen=True)
class DatasetRule:
    """One validated ``datasets:`` entry of a topology."""

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


def parse_rules(
    topology: str, entries: Iterable[Mapping[str, Any]], columns: Collection[str]
) -> tuple[DatasetRule, ...]:
    """Validate ``datasets:`` entries against the topology's ``columns``; one
    :class:`TopologyError` lists every problem (names the dataset and the field)."""
    problems: list[str] = []
    rules = compile_rules(topology, entries, columns, problems)
    if problems:
        listing = "\n  ".join(problems)
        raise TopologyError(f"topology {topology!r} has invalid datasets:\n  {listing}")
    return rules


def compile_rules(
    topology: str,
    entries: Iterable[Mapping[str, Any]],
    columns: Collection[str],
    problems: list[str],
) -> tuple[DatasetRule, ...]:
    """The valid rules of ``entries``; a problem appended for each invalid one."""
    rules = []
    seen: set[str] = set()
    for index, entry in enumerate(entries):
        rule = _parse(topology, index, entry, set(columns), problems)
        if rule is not None:
            if rule.name in seen:
                problems.append(f"dataset {rule.name!r}: declared twice; merge the entries")
            seen.add(rule.name)
            rules.append(rule)
    return tuple(rules)


def _parse(
    topology: str, index: int, entry: Any, columns: set[str], problems: list[str]
) -> DatasetRule | None:
    if not isinstance(entry, Mapping):
        problems.append(f"datasets[{index}]: must be a mapping, got {entry!r:.80}")
        return None
    where = f"dataset {entry.get('name', index)!r}"
    count = len(problems)
    unknown = sorted(set(entry) - _KEYS)
    if unknown:
        problems.append(f"{where}: unknown fields {unknown}; a dataset has {sorted(_KEYS)}")
    name = entry.get("name")
    problem = dataset_name_problem(name)
    if problem is not None:
        problems.append(f"{where}, field name: {problem}")
    rate = entry.get("sample", 1.0)
    if isinstance(rate, bool) or not isinstance(rate, int | float) or not 0 < rate <= 1:
        problems.append(
            f"{where}, field sample: a sampling rate is a number in (0, 1], got {rate!r}"
        )
    cap = _cap(entry.get("cap"), where, problems)
    rule_filter = None
    if entry.get("filter") is not None:
        try:
            rule_filter = compile_filter(entry["filter"])
        except ValueError as exc:
            problems.append(f"{where}, field filter: {exc}")
        else:
            for path in rule_filter.paths:
                _known_column(path, f"{where}, field filter", columns, problems)
    mapping: dict[str, FieldPath] = {}
    raw = entry.get("mapping")
    if not isinstance(raw, Mapping) or not raw:
        problems.append(
            f"{where}, field mapping: map each row field to a call path or a column, e.g. "
            "{document: inputs.document, score: columns.faithfulness.score}"
        )
        raw = {}
    for field, text in raw.items():
        if not isinstance(field, str) or not field or field in RESERVED_FIELDS:
            problems.append(
                f"{where}, field mapping: {field!r} cannot name a field (every row has "
                f"{', '.join(sorted(RESERVED_FIELDS))})"
            )
            continue
        try:
            path = FieldPath.parse(text)
        except ValueError as exc:
            problems.append(f"{where}, field mapping.{field}: {exc}")
            continue
        if _known_column(path, f"{where}, field mapping.{field}", columns, problems):
            mapping[field] = path
    if len(problems) > count:
        return None
    stored = {field: _stored(topology, path) for field, path in mapping.items()}
    return DatasetRule(topology, str(name), rule_filter, float(rate), cap, mapping, stored)


def _cap(value: Any, where: str, problems: list[str]) -> tuple[int, int] | None:
    if value is None:
        return None
    if not isinstance(value, Mapping) or set(value) != {"rows", "per"}:
        problems.append(f"{where}, field cap: write {{rows: 50, per: 1d}}, got {value!r:.80}")
        return None
    rows = value["rows"]
    if isinstance(rows, bool) or not isinstance(rows, int) or rows < 1:
        problems.append(f"{where}, field cap.rows: a whole number >= 1, got {rows!r}")
        return None
    try:
        per = _seconds(value["per"])
    except ValueError as exc:
        problems.append(f"{where}, field cap.per: {exc}")
        return None
    if per < 1:
        problems.append(f"{where}, field cap.per: at least one second, got {value['per']!r}")
        return None
    return rows, per


def _known_column(path: FieldPath, where: str, columns: set[str], problems: list[str]) -> bool:
    if path.column is not None and path.column not in columns:
        problems.append(
            f"{where}: reads column {path.column!r}; the topology's columns: "
            f"{', '.join(sorted(columns)) or 'none'}"
        )
        return False
    return True


def _stored(topology: str, path: FieldPath) -> str:
    if path.column is None:
        return path.text
    return ".".join([topology, path.column, *path.parts])
