"""The result table of a local run: one row per call and trial, a column per derived column.

Each derived column ``c`` gives the table ``c`` (the value), ``c.error`` and
``c.op_ref``, plus ``c.cost`` when the op reports costs and ``c.details`` when it
keeps an audit trail (the judge's prompt digest, raw answer, tokens, latency). A
column with fewer trials than the row's (a deterministic op) shows its last
trial's value. Files: ``.jsonl`` keeps values nested; ``.csv`` and ``.parquet``
expand dict values into ``c.<key>`` columns (``doc_class.label``) and write the
rest as JSON text (CSV) or lists (Parquet).

A column whose op calls ops (``summarise`` calling ``embed``) also gets
``c.sub_calls``, the number of calls it made; the calls themselves are the table's
``sub_calls`` (:class:`~weave_stream.columns.derive.DerivedValue` records with a
``parent_ref`` and a ``position``), shown as a tree by :meth:`ResultTable.tree` and as
a frame by :meth:`ResultTable.sub_calls_frame`.

A table of :func:`~weave_stream.runners.local.run_local` keeps its topology and calls,
so it answers the topology's aggregates in-process with :meth:`ResultTable.aggregates`:
the same :class:`~weave_stream.aggregates.table.AggregateTable` that
``weave-stream aggregates --input`` prints.

>>> from weave_stream import Aggregate, Column, Topology, op, run_local
>>> @op
... def words(text: str) -> int:
...     return len(text.split())
>>> topology = Topology("demo", [Column("words", words, args={"text": "inputs.document"})],
...                     aggregates=[Aggregate(name="length", window="1h", group_by=["op_name"],
...                                           metrics={"words": ["count", "mean"]})])
>>> calls = [{"id": f"c{i}", "op_name": "extract", "started_at": 1795662000 + i,
...           "inputs": {"document": "one two " * i}} for i in range(1, 4)]
>>> table = run_local(topology, calls).aggregates("length", by=[])
>>> table.frame[["words.count", "words.mean"]].values.tolist()
[[3.0, 4.0]]
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import orjson
import pandas as pd

from weave_stream.aggregates.in_process import topology_aggregates
from weave_stream.aggregates.queries import choose_plan, query_tables
from weave_stream.aggregates.table import AggregateTable
from weave_stream.columns.derive import DerivedValue, DeriveStats
from weave_stream.columns.tree import SUB_CALL_COLUMNS, render_tree
from weave_stream.errors import OutputError, QueryError
from weave_stream.ingest.call import Call
from weave_stream.ingest.outcomes import DeadLetter
from weave_stream.topology.spec import Topology

__all__ = ["OUTPUT_SUFFIXES", "ResultTable"]

OUTPUT_SUFFIXES = (".jsonl", ".csv", ".parquet")


@dataclass
class ResultTable:
    """The values of a run, with its counts and the input records that were not calls.

    ``spec`` and ``calls`` are the topology and calls of the run (kept by
    :func:`~weave_stream.runners.local.run_local`), which :meth:`aggregates` reads.
    """

    topology: str
    columns: Sequence[str]
    values: list[DerivedValue]
    stats: DeriveStats = field(default_factory=DeriveStats)
    dead_letters: list[DeadLetter] = field(default_factory=list)
    spec: Topology | None = field(default=None, repr=False)
    calls: Sequence[Call] = field(default=(), repr=False)
    sub_calls: list[DerivedValue] = field(default_factory=list, repr=False)

    def aggregates(
        self,
        aggregate: str | None = None,
        *,
        by: str | Sequence[str] | None = None,
        since: str | float | None = None,
    ) -> AggregateTable:
        """The windowed table of ``aggregate`` (the only one when ``None``) over this run.

        ``by`` re-groups on some of its group keys (``[]``: every group merged);
        ``since`` keeps windows ending within that duration (``"6h"``) before the
        newest event time. Raises :class:`~weave_stream.errors.QueryError` when the
        topology has no such aggregate or key.
        """
        if self.spec is None:
            raise QueryError(
                f"result table of {self.topology!r} has no topology to aggregate with; "
                "use the table run_local returns"
            )
        plans, partials = topology_aggregates(self.spec, self.calls, self.values)
        if not plans:
            raise QueryError(
                f"topology {self.topology!r} declares no aggregates; add one "
                "(Topology(..., aggregates=[Aggregate(...)]) or an 'aggregates:' section)"
            )
        name = choose_plan(plans, aggregate).name
        keys = [by] if isinstance(by, str) else by
        return query_tables(plans, partials, aggregate=name, by=keys, since=since)[0]

    def __len__(self) -> int:
        return len(self.rows())

    def rows(self) -> list[dict[str, Any]]:
        """The table as a list of dicts, in call order."""
        by_call: dict[str, dict[str, dict[int, DerivedValue]]] = defaultdict(
            lambda: defaultdict(dict)
        )
        for value in self.values:
            by_call[value.call_id][value.column][value.trial] = value
        with_cost = {v.column for v in self.values if v.cost is not None}
        with_details = {v.column for v in self.values if v.details}
        made: dict[tuple[str, str, int], int] = defaultdict(int)
        for sub in self.sub_calls:
            if sub.position is not None and "." not in sub.position:  # direct calls
                made[(sub.call_id, sub.column, sub.trial)] += 1
        with_calls = {column for _, column, _ in made}
        rows = []
        for call_id, columns in by_call.items():
            first = next(iter(next(iter(columns.values())).values()))
            trials = max(trial for values in columns.values() for trial in values) + 1
            for trial in range(trials):
                row: dict[str, Any] = {
                    "call_id": call_id,
                    "trace_id": first.trace_id,
                    "started_at": first.started_at,
                    "trial": trial,
                }
                for name in self.columns:
                    trials_of_column = columns.get(name)
                    derived = (
                        trials_of_column.get(trial, trials_of_column[max(trials_of_column)])
                        if trials_of_column
                        else None
                    )
                    row[name] = derived.value if derived else None
                    row[f"{name}.error"] = derived.error if derived else None
                    row[f"{name}.op_ref"] = derived.op_ref if derived else None
                    if name in with_cost:
                        row[f"{name}.cost"] = derived.cost if derived else None
                    if name in with_details:
                        row[f"{name}.details"] = derived.details if derived else None
                    if name in with_calls:
                        key = (call_id, name, derived.trial if derived else trial)
                        row[f"{name}.sub_calls"] = made.get(key, 0)
                rows.append(row)
        return rows

    def sub_calls_frame(self) -> pd.DataFrame:
        """Every sub-call of the run, one row each: which call, column and trial it was
        made for, its ``position`` in the tree, ``parent_ref``, ``op_ref``, value, error,
        latency, cost and whether it was ``cached``."""
        # The store's sub-call columns, less those a run's records do not carry.
        names = [n for n in SUB_CALL_COLUMNS if n not in ("topology", "column_ref")]
        return pd.DataFrame(
            [{name: getattr(sub, name) for name in names} for sub in self.sub_calls],
            columns=names,
        )

    def tree(self, call_id: str, column: str | None = None, trial: int = 0) -> str:
        """The calls behind ``call_id``'s values (of ``column``, else every column), as a
        tree: each op ref, whether it was cached, its latency, cost and error.

        Raises :class:`~weave_stream.errors.QueryError` when the call has no value here.
        """
        tree = render_tree(self.values, self.sub_calls, call_id, column, trial)
        if not tree:
            raise QueryError(
                f"result table of {self.topology!r} has no value for call {call_id!r}"
                + (f" in column {column!r}" if column else "")
                + "; pick a call_id and column from table.to_pandas()"
            )
        return tree

    def to_pandas(self, expand: bool = False) -> pd.DataFrame:
        """The table as a DataFrame; ``expand`` splits dict values into ``column.key`` columns."""
        frame = pd.DataFrame(self.rows())
        if frame.empty:
            return pd.DataFrame(columns=["call_id", "trace_id", "started_at", "trial"])
        return _expand(frame, self.columns) if expand else frame

    def write(self, path: str | Path) -> Path:
        """Write the table to ``path``; the suffix picks the format (.jsonl, .csv, .parquet)."""
        path = Path(path)
        if path.suffix not in OUTPUT_SUFFIXES:
            raise OutputError(
                f"cannot write {path}: the file must end in {', '.join(OUTPUT_SUFFIXES)} "
                "(the suffix picks the format)"
            )
        path.parent.mkdir(parents=True, exist_ok=True)
        if path.suffix == ".jsonl":
            with path.open("wb") as out:
                for row in self.rows():
                    out.write(orjson.dumps(row, option=orjson.OPT_NON_STR_KEYS) + b"\n")
            return path
        frame = self.to_pandas(expand=True)
        for name in frame.columns:
            if frame[name].map(lambda cell: isinstance(cell, dict | list)).any():
                keep_lists = path.suffix == ".parquet"
                frame[name] = frame[name].map(lambda cell, keep=keep_lists: _cell(cell, keep))
        if path.suffix == ".csv":
            frame.to_csv(path, index=False)
        else:
            frame.to_parquet(path, index=False)
        return path


def _expand(frame: pd.DataFrame, columns: Sequence[str]) -> pd.DataFrame:
    for name in columns:
        if name not in frame or not frame[name].map(lambda cell: isinstance(cell, dict)).any():
            continue
        keys: dict[str, None] = {}
        for cell in frame[name]:
            if isinstance(cell, dict):
                keys.update(dict.fromkeys(cell))
        parts = pd.DataFrame(
            {
                f"{name}.{key}": frame[name].map(
                    lambda c, k=key: c.get(k) if isinstance(c, dict) else None
                )
                for key in keys
            },
            index=frame.index,
        )
        at = list(frame.columns).index(name)
        frame = pd.concat([frame.iloc[:, :at], parts, frame.iloc[:, at + 1 :]], axis=1)
    return frame


def _cell(cell: Any, keep_lists: bool) -> Any:
    if isinstance(cell, dict) or (isinstance(cell, list) and not keep_lists):
        return orjson.dumps(cell, option=orjson.OPT_NON_STR_KEYS).decode()
    return cell
