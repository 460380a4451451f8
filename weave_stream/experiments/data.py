"""The examples of an experiment, from whatever holds them: the data seam.

An experiment runs on *examples*. Each becomes a :class:`~weave_stream.ingest.call.Call`
(the shape every op and cache key already understands):

* a row that is a Weave call (it has ``id`` and ``started_at``) is that call, and its
  fields read as in a topology (``inputs.document``, ``output.topic``);
* any other row (a dataset row: ``{"text": ..., "label": ...}``) becomes a call whose
  ``inputs`` are the row, as Weave's evaluations pass a dataset row to the model: its
  fields read as ``inputs.text``, ``inputs.label``.

The example id is the row's ``id_field`` (default ``id``) when it has one, else a
digest of the row's content. Sources: a DataFrame; a JSONL, CSV or Parquet file; a
list of dicts or calls; or **any object with ``to_pandas()``** returning such rows -- a
``calls(...)`` query (its rows are calls, flattened columns such as ``inputs.document``
are nested back) or a dataset (its rows are examples) plug in unchanged.

>>> examples = load_examples([{"text": "hello there", "label": "greeting"},
...                           {"id": "q2", "text": "what is 2+2?", "label": "math"}])
>>> [e.inputs["label"] for e in examples.calls], examples.ids[1]
(['greeting', 'math'], 'q2')
"""

from __future__ import annotations

import hashlib
import math
import re
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import orjson

from weave_stream.errors import ExperimentError
from weave_stream.ingest.call import ID_PATTERN, Call, parse_call_object
from weave_stream.runners.local import read_calls

__all__ = ["EXAMPLE_OP", "Examples", "load_examples"]

EXAMPLE_OP = "example"  # the op name of a call made from a plain row
_STARTED_AT = "2000-01-01T00:00:00Z"  # plain rows have no time; the earliest valid one
_CALL_KEYS = frozenset({"id", "started_at"})


@dataclass(frozen=True)
class Examples:
    """Examples as calls, in input order, with the ids a user knows them by."""

    calls: list[Call]
    ids: list[str]  # the user's id of each example (``calls[i].id`` may be a digest of it)
    _by_id: dict[str, tuple[Call, str]] = field(init=False, repr=False, compare=False)

    def __post_init__(self) -> None:
        pairs = zip(self.calls, self.ids, strict=True)
        object.__setattr__(self, "_by_id", {call.id: (call, shown) for call, shown in pairs})

    def __len__(self) -> int:
        return len(self.calls)

    def label(self, call_id: str) -> str:
        """The user's id of the example behind ``call_id``."""
        found = self._by_id.get(call_id)
        return found[1] if found else call_id

    def inputs(self, call_id: str) -> Any:
        """The inputs of the example behind ``call_id`` (what is shown beside its outputs)."""
        found = self._by_id.get(call_id)
        return found[0].inputs if found else None


def load_examples(source: Any, *, id_field: str = "id", where: str = "data") -> Examples:
    """The examples of ``source`` (see the module docstring); refuses an empty source."""
    records = _records(source, where)
    if not records:
        raise ExperimentError(
            f"{where}: the data has no rows; give a DataFrame, a JSONL/CSV/Parquet file, a "
            "list of rows or calls, or a query/dataset whose to_pandas() returns rows"
        )
    calls: list[Call] = []
    ids: list[str] = []
    seen: dict[str, int] = {}
    problems: list[str] = []
    for index, record in enumerate(records):
        try:
            call, shown = _example(record, id_field)
        except ExperimentError as exc:
            problems.append(f"row {index}: {exc}")
            continue
        if call.id in seen:
            seen[call.id] += 1
            if isinstance(record, Call) or set(record) >= _CALL_KEYS:
                problems.append(
                    f"row {index}: call id {call.id!r} appears twice; an example must be one call"
                )
                continue
            # The same content twice is two examples (it was listed twice on purpose).
            shown = f"{shown}#{seen[call.id]}"
            call = call.model_copy(update={"id": f"{call.id}-{seen[call.id]}"})
        else:
            seen[call.id] = 0
        calls.append(call)
        ids.append(shown)
    if problems:
        listing = "\n  ".join(problems[:10])
        more = f"\n  ... and {len(problems) - 10} more" if len(problems) > 10 else ""
        raise ExperimentError(
            f"{where}: {len(problems)} row(s) are not usable examples (nothing was run); fix "
            f"or remove them:\n  {listing}{more}"
        )
    return Examples(calls, ids)


def _records(source: Any, where: str) -> list[Any]:
    if isinstance(source, str | Path):
        return _file_records(Path(source), where)
    if hasattr(source, "to_dict") and hasattr(source, "columns"):
        return _frame_records(source)
    to_pandas = getattr(source, "to_pandas", None)
    if callable(to_pandas):  # a calls() query, a dataset, a result table
        return _frame_records(to_pandas())
    if isinstance(source, Mapping) or not isinstance(source, Iterable):
        raise ExperimentError(
            f"{where}: cannot read examples from {type(source).__name__}; give a DataFrame, a "
            "file path, a list of rows or calls, or an object with to_pandas()"
        )
    return list(source)


def _file_records(path: Path, where: str) -> list[Any]:
    if not path.is_file():
        raise ExperimentError(f"{where}: file {path} does not exist")
    if path.suffix in (".csv", ".parquet"):
        import pandas as pd

        frame = pd.read_csv(path) if path.suffix == ".csv" else pd.read_parquet(path)
        return _frame_records(frame)
    if path.suffix not in (".jsonl", ".json"):
        raise ExperimentError(f"{where}: {path} must end in .jsonl, .csv or .parquet")
    first = _first_line(path)
    if first is not None and (set(first) >= _CALL_KEYS or "start" in first or "end" in first):
        calls, dead_letters = read_calls(path)  # start and end events are merged, as ingest does
        if dead_letters:
            shown = "; ".join(f"line {d.source_offset}: {d.reason}" for d in dead_letters[:5])
            raise ExperimentError(
                f"{where}: {len(dead_letters)} record(s) of {path} are not calls ({shown}); "
                "fix or remove them"
            )
        return list(calls)
    records = []
    with path.open("rb") as lines:
        for number, line in enumerate(lines, start=1):
            if line.strip():
                try:
                    records.append(orjson.loads(line))
                except orjson.JSONDecodeError as exc:
                    raise ExperimentError(
                        f"{where}: {path} line {number} is not JSON ({exc}); fix the line"
                    ) from None
    return records


def _first_line(path: Path) -> dict[str, Any] | None:
    with path.open("rb") as lines:
        for line in lines:
            if line.strip():
                try:
                    value = orjson.loads(line)
                except orjson.JSONDecodeError:
                    return None
                return value if isinstance(value, dict) else None
    return None


def _frame_records(frame: Any) -> list[dict[str, Any]]:
    return [_nested(_present(row)) for row in frame.to_dict(orient="records")]


def _present(row: Mapping[str, Any]) -> dict[str, Any]:
    return {
        str(k): v
        for k, v in row.items()
        if not (v is None or (isinstance(v, float) and math.isnan(v)))
    }


def _nested(row: dict[str, Any]) -> dict[str, Any]:
    """``{"inputs.document": x}`` as ``{"inputs": {"document": x}}`` (flattened query rows)."""
    if not any("." in key for key in row):
        return row
    nested: dict[str, Any] = {}
    for key, value in row.items():
        target = nested
        *parents, last = key.split(".")
        for part in parents:
            child = target.setdefault(part, {})
            if not isinstance(child, dict):
                break
            target = child
        else:
            target[last] = value
            continue
        nested[key] = value  # a field both scalar and nested: keep the flat key
    return nested


def _example(record: Any, id_field: str) -> tuple[Call, str]:
    if isinstance(record, Call):
        return record, record.id
    if not isinstance(record, Mapping):
        raise ExperimentError(f"a row must be a mapping or a call, got {type(record).__name__}")
    if set(record) >= _CALL_KEYS:
        try:
            call = parse_call_object(dict(record))
        except Exception as exc:  # CallValidationError, and pydantic's for odd values
            raise ExperimentError(f"not a valid call ({exc})") from None
        return call, call.id
    row = dict(record)
    shown = str(row[id_field]) if id_field in row else _digest(row)
    call_id = shown if _valid_id(shown) else f"ex-{hashlib.sha256(shown.encode()).hexdigest()[:24]}"
    call = parse_call_object(
        {"id": call_id, "op_name": EXAMPLE_OP, "started_at": _STARTED_AT, "inputs": row}
    )
    return call, shown


def _digest(row: Mapping[str, Any]) -> str:
    canonical = orjson.dumps(
        row, option=orjson.OPT_SORT_KEYS | orjson.OPT_NON_STR_KEYS, default=str
    )
    return f"ex-{hashlib.sha256(canonical).hexdigest()[:16]}"


def _valid_id(text: str) -> bool:
    return re.match(ID_PATTERN, text) is not None
