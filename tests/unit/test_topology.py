"""Topologies: both forms mean the same; every validation error names topology, column and field."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
import yaml

from weave_stream.errors import TopologyError
from weave_stream.ops import op
from weave_stream.topology.aggregates import Aggregate
from weave_stream.topology.loader import find_topology_file, load_topology, topology_from_dict
from weave_stream.topology.monitors import Monitor
from weave_stream.topology.selection import (
    FieldPath,
    compile_filter,
    op_name_matches,
    sample_point,
    sampled,
)
from weave_stream.topology.spec import Column, Source, Topology

TOPOLOGIES = Path(__file__).resolve().parents[2] / "topologies"


@op
def length(text: str) -> int:
    return len(text)


@op
def join(first: Any, second: Any, sep: str = " ") -> str:
    return f"{first}{sep}{second}"


@op(deterministic=False)
def guess(text: str) -> float:
    return float(len(text))


def spec(*columns: dict[str, Any], **extra: Any) -> dict[str, Any]:
    return {
        "name": "demo",
        "source": {"op_name": "text-extract"},
        "columns": list(columns),
        **extra,
    }


def column(
    name: str, op_name: str = "tests.unit.test_topology:length", **fields: Any
) -> dict[str, Any]:
    return {"name": name, "op": op_name, "args": {"text": "inputs.document"}, **fields}


def error_of(data: dict[str, Any]) -> str:
    with pytest.raises(TopologyError) as caught:
        topology_from_dict(data)
    return str(caught.value)


# -- the shipped examples ---------------------------------------------------------------


def test_the_yaml_and_python_text_extract_topologies_mean_the_same() -> None:
    from_yaml = load_topology(TOPOLOGIES / "text_extract.yaml")
    from_python = load_topology(TOPOLOGIES / "text_extract.py")
    assert from_yaml.name == from_python.name == "text_extract"
    assert from_yaml.source == from_python.source
    assert from_yaml.source_filter == from_python.source_filter
    assert from_yaml.description == from_python.description
    assert from_yaml.datasets == from_python.datasets
    assert from_yaml.topics == from_python.topics
    assert [t.column for t in from_yaml.topics] == ["doc_embedding"]
    assert (
        from_yaml.levels
        == from_python.levels
        == (("doc_class", "doc_embedding"), ("faithfulness", "topic"))
    )
    for a, b in zip(from_yaml.compiled, from_python.compiled, strict=True):
        assert (a.name, a.op.ref, a.args, a.filter, a.sample, a.trials, a.depends_on) == (
            b.name,
            b.op.ref,
            b.args,
            b.filter,
            b.sample,
            b.trials,
            b.depends_on,
        )


def test_the_classifier_comparison_runs_two_versions_side_by_side() -> None:
    topology = load_topology("classifier_comparison", directory=TOPOLOGIES)
    v1, v2, agree = (topology.column(n) for n in ("doc_class_v1", "doc_class_v2", "agree"))
    assert v1.op.name == v2.op.name == "classify" and v1.op.ref != v2.op.ref
    assert agree.depends_on == {"doc_class_v1", "doc_class_v2"}  # a user op found beside the file
    assert topology.source.sample == 0.5


def test_a_topology_is_found_by_name_and_a_wrong_name_lists_the_known_ones() -> None:
    assert find_topology_file("text_extract", TOPOLOGIES).name == "text_extract.yaml"
    with pytest.raises(
        TopologyError, match=r"no topology 'text_extrct'.*known there: .*text_extract"
    ):
        find_topology_file("text_extrct", TOPOLOGIES)


def test_aggregates_and_monitors_become_typed_entries_that_round_trip() -> None:
    aggregates = [{"name": "by_class", "window": "5m", "group_by": ["columns.n"]}]
    monitors = [{"name": "drift", "column": "n", "reference": {"first_n": 10}}]
    topology = topology_from_dict(spec(column("n"), aggregates=aggregates, monitors=monitors))
    assert topology.aggregates == (Aggregate(**aggregates[0]),)
    assert topology.monitors == (Monitor(**monitors[0]),)
    plain = topology.to_dict()
    again = topology_from_dict(
        spec(column("n"), aggregates=plain["aggregates"], monitors=plain["monitors"])
    )
    assert (again.aggregates, again.monitors) == (topology.aggregates, topology.monitors)


def test_to_dict_round_trips_through_yaml() -> None:
    topology = load_topology(TOPOLOGIES / "text_extract.yaml")
    again = topology_from_dict(yaml.safe_load(yaml.safe_dump(topology.to_dict())))
    assert [c.op.ref for c in again.compiled] == [c.op.ref for c in topology.compiled]


# -- every validation error ---------------------------------------------------------------


@pytest.mark.parametrize(
    ("data", "expected"),
    [
        (
            spec(column("n", "summarise")),
            ["column 'n', field 'op'", "unknown op 'summarise'", "classify, embed, explain, judge"],
        ),
        (
            spec(column("n", "no_such_module:fn")),
            ["column 'n', field 'op'", "module 'no_such_module' is not importable"],
        ),
        (
            spec(column("n", args={"text": "input.document"})),
            [
                "field 'args.text'",
                "'input', which is not a field of a call; did you mean 'inputs'?",
            ],
        ),
        (
            spec(column("n", args={"text": "id.value"})),
            ["field 'args.text'", "'id', which is a plain value"],
        ),
        (
            spec(column("n", args={"txt": "inputs.document"})),
            ["field 'args'", "unknown argument 'txt'"],
        ),
        (spec(column("n", args={})), ["column 'n', field 'args'", "missing argument 'text'"]),
        (
            spec(column("n", params={"x": 1})),
            ["column 'n', field 'op'", "is a function; it takes no params"],
        ),
        (
            spec(column("c", "classify", params={"labels": ["one"]})),
            ["column 'c', field 'op'", "at least two labels"],
        ),
        (
            spec(column("n", args={"text": "columns.missing"})),
            ["column 'n', field 'args/filter'", "unknown column 'missing'"],
        ),
        (
            spec(
                column(
                    "a",
                    "tests.unit.test_topology:join",
                    args={"first": "columns.b", "second": "id"},
                ),
                column(
                    "b",
                    "tests.unit.test_topology:join",
                    args={"first": "columns.a", "second": "id"},
                ),
            ),
            ["columns 'a' -> 'b' -> 'a'", "cycle"],
        ),
        (spec(column("n", args={"text": "columns.n"})), ["columns 'n' -> 'n'", "cycle"]),
        (spec(column("n", trials=3)), ["column 'n', field 'trials'", "is deterministic"]),
        (
            spec(column("g", "tests.unit.test_topology:guess", trials=0)),
            ["column 'g', field 'trials'", ">= 1, got 0"],
        ),
        (spec(column("n", sample=0)), ["column 'n', field 'sample'", "(0, 1], got 0"]),
        (spec(column("n", sample=1.5)), ["column 'n', field 'sample'", "(0, 1], got 1.5"]),
        (
            spec(column("n", filter={"attributes.env": {"equals": "prod"}})),
            ["column 'n', field 'filter'", "unknown operator 'equals'"],
        ),
        (spec(column("n", filter={"attributes.env": {"in": "prod"}})), ["'in' takes a list"]),
        (
            spec(column("n"), column("n")),
            ["column 'n', field 'name'", "two columns have this name"],
        ),
        (spec(column("my column")), ["column 'my column', field 'name'", "identifier"]),
        (
            {**spec(column("n")), "source": {"filter": {"columns.n": 1}}},
            ["source, field 'filter'", "reads a column"],
        ),
        ({**spec(column("n")), "source": {"sample": -1}}, ["source, field 'sample'"]),
        ({**spec(column("n")), "name": "bad name!"}, ["field 'name'", "not a topology name"]),
        ({**spec(column("n")), "colums": []}, ["unknown fields ['colums']"]),
        (spec({"name": "n", "op": "embed", "arg": {}}), ["column 'n'", "unknown fields ['arg']"]),
        (spec({"name": "n", "args": {}}), ["column 'n', field 'op': missing"]),
        (
            {**spec(column("n")), "aggregates": {"not": "a list"}},
            ["field 'aggregates'", "list of mappings"],
        ),
    ],
)
def test_validation_errors_name_the_topology_column_and_field(
    data: dict[str, Any], expected: list[str]
) -> None:
    message = error_of(data)
    assert "topology 'demo'" in message or "topology 'bad name!'" in message
    for fragment in expected:
        assert fragment in message, f"{fragment!r} not in:\n{message}"


def test_every_problem_is_reported_at_once() -> None:
    message = error_of(
        spec(column("a", "nope"), column("b", args={"text": "input.x"}), column("c", sample=2))
    )
    assert "column 'a', field 'op'" in message
    assert "column 'b', field 'args.text'" in message
    assert "column 'c', field 'sample'" in message


def test_the_python_form_is_validated_the_same_way() -> None:
    with pytest.raises(TopologyError, match=r"column 'n', field 'args': missing argument 'text'"):
        Topology("demo", [Column("n", length, args={})])
    with pytest.raises(TopologyError, match=r"field 'op': .* is not an op; decorate it with @op"):
        Topology("demo", [Column("n", len, args={})])  # type: ignore[arg-type]


def test_columns_run_in_dependency_order() -> None:
    topology = Topology(
        "demo",
        [
            Column("joined", join, args={"first": "columns.n", "second": "columns.m"}),
            Column("n", length, args={"text": "inputs.document"}),
            Column("m", length, args={"text": "output"}, filter={"columns.n": {"gt": 3}}),
        ],
        source=Source(op_name="text-extract"),
    )
    assert topology.levels == (("n",), ("m",), ("joined",))
    assert [c.name for c in topology.compiled] == ["n", "m", "joined"]


# -- paths, filters, sampling ---------------------------------------------------------------


CALL: dict[str, Any] = {
    "id": "c1",
    "op_name": "weave:///acme/app/op/text-extract:v3",
    "attributes": {"env": "prod", "model": "gpt-4o"},
    "inputs": {"document": "Invoice 7", "messages": [{"content": "hi"}]},
    "output": {"total": 120},
}


@pytest.mark.parametrize(
    ("condition", "expected"),
    [
        ({"attributes.env": "prod"}, True),
        ({"attributes.env": {"ne": "prod"}}, False),
        ({"attributes.model": {"in": ["gpt-4o", "gpt-4o-mini"]}}, True),
        ({"attributes.model": {"not_in": ["gpt-4o"]}}, False),
        ({"output.total": {"gt": 100, "le": 120}}, True),
        ({"output.total": {"lt": "a string"}}, False),  # incomparable: does not hold
        ({"output.missing": {"gt": 1}}, False),
        ({"output.missing": {"exists": False}}, True),
        ({"exception": {"exists": False}}, True),
        ({"inputs.document": {"contains": "Invoice"}}, True),
        ({"inputs.document": {"startswith": "Receipt"}}, False),
        ({"inputs.messages.0.content": "hi"}, True),
        ({"any": [{"attributes.env": "dev"}, {"attributes.env": "prod"}]}, True),
        ({"not": {"attributes.env": "prod"}}, False),
        ({"all": [{"attributes.env": "prod"}, {"output.total": {"lt": 100}}]}, False),
        ({"columns.doc_class.label": "invoice"}, True),
    ],
)
def test_filters(condition: dict[str, Any], expected: bool) -> None:
    assert compile_filter(condition).matches(CALL, {"doc_class": {"label": "invoice"}}) is expected


def test_paths_reach_into_calls_and_columns() -> None:
    assert FieldPath.parse("inputs.messages.0.content").resolve(CALL, {}) == "hi"
    assert (
        FieldPath.parse("columns.doc_class.label").resolve(CALL, {"doc_class": {"label": "x"}})
        == "x"
    )
    assert FieldPath.parse("exception").resolve(CALL, {}) is None  # a declared field that is unset


def test_sampling_is_deterministic_and_nested() -> None:
    ids = [f"call-{i}" for i in range(2000)]
    half = {i for i in ids if sampled(i, 0.5)}
    quarter = {i for i in ids if sampled(i, 0.25)}
    assert half == {i for i in ids if sampled(i, 0.5)}
    assert quarter <= half  # a lower rate keeps a subset: runners and rates agree
    assert 890 <= len(half) <= 1110  # 1000 +- 5 standard deviations
    assert all(0 <= sample_point(i) < 1 for i in ids[:50])


def test_op_names_match_weave_refs_and_globs() -> None:
    assert op_name_matches("text-extract", CALL["op_name"])
    assert op_name_matches("text-*", "text-extract")
    assert op_name_matches(CALL["op_name"], CALL["op_name"])
    assert not op_name_matches("extract", "text-extract")
    assert not op_name_matches("text-extract", None)
