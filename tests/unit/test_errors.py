"""One error tree: every documented failure of the public API is a WeaveStreamError of the
right stage, and its message names the offending value (so the user can find and fix it)."""

from __future__ import annotations

import inspect
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pandas as pd
import pytest

import weave_stream
from weave_stream import (
    Aggregate,
    Call,
    Classify,
    Column,
    Judge,
    Monitor,
    ResultTable,
    Settings,
    Topology,
    load_settings,
    load_topology,
    merge,
    op,
    parse_call,
    run_local,
)
from weave_stream import errors as errors_module
from weave_stream.aggregates.compare import compare_columns
from weave_stream.aggregates.table import AggregateTable
from weave_stream.drift.snapshot import load_snapshot
from weave_stream.durations import parse_duration, whole_seconds
from weave_stream.errors import (
    CallValidationError,
    ConfigError,
    DeliveryError,
    DurationError,
    IngestError,
    MissingFieldError,
    OpDefinitionError,
    OpError,
    OutputError,
    QueryError,
    TimestampError,
    TopologyError,
    VectorIndexError,
    WeaveStreamError,
)
from weave_stream.ingest.call import parse_timestamp
from weave_stream.notify.alerts import Alert
from weave_stream.notify.targets import load_targets
from weave_stream.ops.base import OpPolicy
from weave_stream.topology.selection import FieldPath

T0 = 1_795_662_000


@op
def words(text: str) -> int:
    return len(text.split())


def plain(text: str) -> str:
    return text


@op(deterministic=False)
def guess(text: str) -> int:
    return len(text)


def topology(**extra: Any) -> Topology:
    return Topology("errs", [Column("words", words, args={"text": "inputs.document"})], **extra)


CALLS = [{"id": "c1", "started_at": T0, "ended_at": T0 + 1, "inputs": {"document": "a b"}}]


def _bad_yaml(tmp_path: Path) -> Path:
    path = tmp_path / "broken.yaml"
    path.write_text("name: broken\ncolumns: [\n")
    return path


def _bad_targets(tmp_path: Path) -> Path:
    path = tmp_path / "targets.yaml"
    path.write_text("targets:\n  - {name: ops, kind: slack, url: 'ftp://nowhere'}\n")
    return path


def _garbage_snapshot(tmp_path: Path) -> Path:
    for name in ("meta.json", "index.npz"):
        (tmp_path / name).write_bytes(b"not a snapshot")
    return tmp_path


def _table() -> AggregateTable:
    frame = pd.DataFrame({"rows": [1]})
    return AggregateTable("q", frame, ())


# (what is tried, the class it must raise, a fragment the message must hold: the bad value)
CASES: list[tuple[str, Callable[[Path], Any], type[WeaveStreamError], str]] = [
    ("a setting out of range", lambda _: load_settings(env={}, partitions=0), ConfigError, "0"),
    ("a setting built in Python", lambda _: Settings(broker="nonsense"), ConfigError, "nonsense"),
    (
        "a duration setting",
        lambda _: load_settings(env={"WEAVE_STREAM_STALL_SECONDS": "soon"}),
        ConfigError,
        "soon",
    ),
    ("a duration", lambda _: parse_duration("ten minutes"), DurationError, "ten minutes"),
    (
        "a fraction of a second for a window",
        lambda _: whole_seconds("1500ms"),
        DurationError,
        "1500ms",
    ),
    ("a timestamp", lambda _: parse_timestamp("yesterday"), TimestampError, "yesterday"),
    ("a record that is not JSON", lambda _: parse_call(b"{nope"), CallValidationError, "JSON"),
    (
        "a call built in Python",
        lambda _: Call(id="c1", started_at="soon"),
        CallValidationError,
        "soon",
    ),
    (
        "merging two different calls",
        lambda _: merge(Call(id="a", started_at=T0), Call(id="b", ended_at=T0)),
        IngestError,
        "'b'",
    ),
    (
        "a missing calls file",
        lambda p: run_local(topology(), p / "gone.jsonl"),
        IngestError,
        "gone.jsonl",
    ),
    (
        "an unknown op",
        lambda _: Topology("errs", [Column("n", "no_such_op", args={"text": "inputs.x"})]),
        TopologyError,
        "no_such_op",
    ),
    (
        "an aggregate with a bad window",
        lambda _: topology(aggregates=[{"name": "q", "window": "bogus"}]),
        TopologyError,
        "bogus",
    ),
    (
        "an aggregate on an unknown key",
        lambda _: topology(aggregates=[{"name": "q", "window": "5m", "group_by": ["klass"]}]),
        TopologyError,
        "klass",
    ),
    (
        "a monitor on an unknown column",
        lambda _: topology(
            monitors=[{"name": "m", "column": "nosuchcol", "reference": {"first_n": 5}}]
        ),
        TopologyError,
        "nosuchcol",
    ),
    (
        "an Aggregate built in Python",
        lambda _: Aggregate(name="q", window="7x"),
        TopologyError,
        "7x",
    ),
    (
        "a Monitor built in Python",
        lambda _: Monitor(name="m", column="e", reference={"first_n": 1}, cooldown="later"),
        TopologyError,
        "later",
    ),
    (
        "an unknown topology name",
        lambda p: load_topology("nosuch", directory=p),
        TopologyError,
        "nosuch",
    ),
    (
        "a topology file that is not YAML",
        lambda p: load_topology(_bad_yaml(p)),
        TopologyError,
        "broken.yaml",
    ),
    ("@op on something that is no function", lambda _: op(42), OpDefinitionError, "42"),
    ("an op policy", lambda _: OpPolicy(timeout=0), OpDefinitionError, "0"),
    ("an op timeout", lambda _: op(timeout="soon")(plain), OpDefinitionError, "soon"),
    ("classify with one label", lambda _: Classify(labels=["only"]), OpDefinitionError, "only"),
    (
        "a judge prompt without placeholders",
        lambda _: Judge(prompt="rate it"),
        OpDefinitionError,
        "placeholders",
    ),
    (
        "trials below one",
        lambda _: run_local(
            Topology("errs", [Column("g", guess, args={"text": "inputs.document"})]),
            CALLS,
            trials={"g": 0},
        ),
        TopologyError,
        "0",
    ),
    (
        "a field a call lacks",
        lambda _: FieldPath.parse("inputs.document").resolve({"inputs": {}}, {}),
        MissingFieldError,
        "document",
    ),
    (
        "writing a table to an unknown format",
        lambda p: run_local(topology(), CALLS).write(p / "out.txt"),
        OutputError,
        "out.txt",
    ),
    ("an unknown table format", lambda _: _table().format("xml"), OutputError, "xml"),  # type: ignore[arg-type]
    (
        "aggregates of a topology with none",
        lambda _: run_local(topology(), CALLS).aggregates(),
        QueryError,
        "errs",
    ),
    (
        "an aggregate that is not there",
        lambda _: run_local(topology(aggregates=[{"name": "q", "window": "5m"}]), CALLS).aggregates(
            "nope"
        ),
        QueryError,
        "nope",
    ),
    (
        "re-grouping on a key the aggregate lacks",
        lambda _: run_local(topology(aggregates=[{"name": "q", "window": "5m"}]), CALLS).aggregates(
            by="model"
        ),
        QueryError,
        "model",
    ),
    (
        "comparing a column the samples lack",
        lambda _: compare_columns(pd.DataFrame({"a": [1.0]}), "a", "zz"),
        QueryError,
        "zz",
    ),
    ("a targets file", lambda p: load_targets(_bad_targets(p)), ConfigError, "url"),
    ("an alert record", lambda _: Alert.from_json(b'{"id": 3}'), DeliveryError, "alert"),
    (
        "an index snapshot",
        lambda p: load_snapshot(_garbage_snapshot(p)),
        VectorIndexError,
        "snapshot",
    ),
]


@pytest.mark.parametrize(
    ("attempt", "expected", "fragment"),
    [(case[1], case[2], case[3]) for case in CASES],
    ids=[case[0] for case in CASES],
)
def test_each_documented_failure_is_in_the_tree_and_names_the_value(
    tmp_path: Path,
    attempt: Callable[[Path], Any],
    expected: type[WeaveStreamError],
    fragment: str,
) -> None:
    with pytest.raises(WeaveStreamError) as caught:
        attempt(tmp_path)
    assert type(caught.value) is expected or isinstance(caught.value, expected), caught.value
    assert fragment in str(caught.value)


def test_every_exception_the_package_exports_is_in_the_tree() -> None:
    exported = [
        getattr(module, name)
        for module in (weave_stream, errors_module)
        for name in module.__all__
        if inspect.isclass(getattr(module, name))
        and issubclass(getattr(module, name), BaseException)
    ]
    errors = [cls for cls in exported if not issubclass(cls, Warning)]
    assert errors and all(issubclass(cls, WeaveStreamError) for cls in errors)
    assert all(cls.__name__.endswith("Error") for cls in errors)
    # Warnings (a run goes on in a lesser way) are one class the CLI shows as one line.
    assert [cls.__name__ for cls in exported if issubclass(cls, Warning)] == ["WeaveStreamWarning"]


def test_value_errors_in_the_tree_are_only_the_ones_pydantic_reports_in_place() -> None:
    value_errors = {
        cls.__name__
        for cls in vars(errors_module).values()
        if inspect.isclass(cls)
        and issubclass(cls, WeaveStreamError)
        and issubclass(cls, ValueError)
    }
    assert value_errors == {"DurationError", "TimestampError"}


def test_stage_bases_catch_their_kinds() -> None:
    assert issubclass(MissingFieldError, OpError) and issubclass(OpDefinitionError, OpError)
    assert issubclass(CallValidationError, IngestError)
    assert not issubclass(QueryError, TopologyError)


def test_a_result_table_built_by_hand_says_it_cannot_aggregate() -> None:
    with pytest.raises(QueryError, match="no topology to aggregate with"):
        ResultTable("hand", ["n"], []).aggregates()
