"""Aggregates and monitors as typed objects: Python and YAML build the same topology, a
Topology checks them against its columns when it is built, and a local run's result
table answers its aggregates as ``weave-stream aggregates --input`` does."""

from __future__ import annotations

from pathlib import Path

import orjson
import pytest

from weave_stream import Aggregate, Column, Monitor, Topology, Window, op, run_local
from weave_stream.aggregates.queries import query_tables
from weave_stream.errors import QueryError, TopologyError
from weave_stream.runners.local import local_aggregates
from weave_stream.topology.loader import load_topology

T0 = 1_795_662_000


@op
def words(text: str) -> int:
    return len(text.split())


COLUMNS = [Column("words", words, args={"text": "inputs.document"})]
AGGREGATE = {
    "name": "length",
    "window": {"size": "1h", "step": "30m"},
    "grace": "5m",
    "group_by": ["op_name"],
    "metrics": {"words": ["count", "mean", "p90"]},
}
MONITOR = {"name": "drift", "column": "words", "reference": {"first_n": 5}, "cooldown": "2m"}


def calls(n: int = 12) -> list[dict[str, object]]:
    return [
        {
            "id": f"c{i}",
            "op_name": "extract" if i % 3 else "summarise",
            "started_at": T0 + 600 * i,
            "ended_at": T0 + 600 * i + 1,
            "inputs": {"document": "word " * (1 + i % 4)},
        }
        for i in range(n)
    ]


def test_python_objects_and_plain_data_build_the_same_topology() -> None:
    typed = Topology(
        "same",
        COLUMNS,
        aggregates=[
            Aggregate(
                name="length",
                window=Window(size="1h", step="30m"),
                grace=300,
                group_by=["op_name"],
                metrics={"words": ["count", "mean", "p90"]},
            )
        ],
        monitors=[Monitor(name="drift", column="words", reference={"first_n": 5}, cooldown=120)],
    )
    plain = Topology("same", COLUMNS, aggregates=[AGGREGATE], monitors=[MONITOR])

    assert typed == plain
    assert isinstance(plain.aggregates[0], Aggregate) and isinstance(plain.monitors[0], Monitor)
    assert plain.aggregates[0].window.step == 1800 and plain.monitors[0].cooldown == 120.0


def test_a_yaml_file_loads_the_same_objects(tmp_path: Path) -> None:
    path = tmp_path / "same.yaml"
    path.write_text(
        "name: same\n"
        "columns:\n  - {name: words, op: classify, params: {labels: [a, b]},"
        " args: {text: inputs.document}}\n"
        f"aggregates: [{orjson.dumps(AGGREGATE).decode()}]\n"
        f"monitors: [{orjson.dumps(MONITOR).decode()}]\n"
    )
    loaded = load_topology(path)
    assert loaded.aggregates == (Aggregate(**AGGREGATE),)
    assert loaded.monitors == (Monitor(**MONITOR),)


def test_a_monitor_still_reads_cooldown_seconds() -> None:
    monitor = Monitor(name="m", column="e", reference={"first_n": 2}, cooldown_seconds=90)
    assert monitor.cooldown == 90.0


def test_bad_aggregates_and_monitors_are_refused_when_the_topology_is_built() -> None:
    with pytest.raises(TopologyError) as caught:
        Topology(
            "checked",
            COLUMNS,
            aggregates=[{"name": "q", "window": "bogus", "metrics": {"nosuch": ["mean"]}}],
            monitors=[{"name": "m", "column": "nosuchcol", "reference": {"first_n": 10}}],
        )
    message = str(caught.value)
    assert "topology 'checked' is invalid" in message
    assert "aggregate 'q', field window.size: 'bogus' is not a duration" in message
    assert "monitor 'm', field column: 'nosuchcol' is not a column of the topology" in message


def test_an_aggregate_key_that_is_no_column_nor_call_field_is_refused() -> None:
    entry = {"name": "q", "window": "5m", "group_by": ["doc_klass"], "metrics": {"nosuch": "mean"}}
    with pytest.raises(TopologyError, match=r"key 'doc_klass' is neither a column.*words"):
        Topology("checked", COLUMNS, aggregates=[entry])
    with pytest.raises(TopologyError, match=r"key 'columns.nope' reads column 'nope'"):
        Topology("checked", COLUMNS, aggregates=[{**entry, "group_by": ["columns.nope"]}])


def test_an_aggregate_built_in_python_names_its_bad_field() -> None:
    with pytest.raises(TopologyError, match=r"aggregate 'q', field window: hopping step 420s"):
        Aggregate(name="q", window={"size": "1h", "step": "7m"})


def test_a_result_table_answers_its_aggregates_as_the_cli_does(tmp_path: Path) -> None:
    topology = Topology("answers", COLUMNS, aggregates=[AGGREGATE])
    source = tmp_path / "calls.jsonl"
    source.write_bytes(b"\n".join(orjson.dumps(call) for call in calls()))

    table = run_local(topology, source).aggregates("length", by=["op_name"], since="1h")
    plans, partials = local_aggregates(topology, source)
    (expected,) = query_tables(plans, partials, aggregate="length", by=["op_name"], since="1h")

    assert table.format("csv") == expected.format("csv")
    assert sorted(set(table.frame["op_name"])) == ["extract", "summarise"]
    everything = run_local(topology, source).aggregates("length", by="op_name")
    assert 0 < len(table.frame) < len(everything.frame)


def test_a_result_table_without_aggregates_says_how_to_add_one() -> None:
    result = run_local(Topology("bare", COLUMNS), calls(2))
    with pytest.raises(QueryError, match="declares no aggregates"):
        result.aggregates()
    with_one = run_local(Topology("one", COLUMNS, aggregates=[AGGREGATE]), calls(2))
    with pytest.raises(QueryError, match="no aggregate 'nope'"):
        with_one.aggregates("nope")
