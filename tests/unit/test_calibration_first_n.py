"""A classify column's ``calibration: {first_n: N}``: checked at load, resolved from the calls.

The sample is the texts of the first N calls the column classifies *in call order*
(started_at, then id), so the same calls give the same op ref in whatever order
they come; different first calls give another ref; fewer than N calls leave the
column uncalibrated (its own ref) with a warning. One test runs the real model.
"""

from __future__ import annotations

import asyncio
import json
import random
from typing import Any

import pytest
import yaml

from tests.support.corpora import texts
from weave_stream.errors import OpDefinitionError, TopologyError, WeaveStreamWarning
from weave_stream.ingest.call import Call, parse_call_object
from weave_stream.ops import Classify, run_op
from weave_stream.runners.calibration import calibrate_from_store
from weave_stream.runners.local import plan_local, run_local
from weave_stream.store.calibrations import CalibrationFiles
from weave_stream.store.tables import open_store
from weave_stream.store.writer import StoreWriter
from weave_stream.topology.calibrate import calibrate, with_samples
from weave_stream.topology.loader import load_topology
from weave_stream.topology.spec import Column, Source, Topology

LABELS = {"chat": "small talk with a chatbot", "news": "a news report"}
START = 1795662000


def topology(first_n: Any = 10, **column: Any) -> Topology:
    params = {"labels": LABELS, "calibration": {"first_n": first_n}}
    args = column.pop("args", {"text": "inputs.q"})
    return Topology(
        "t",
        [Column("kind", "classify", args=args, params=params, **column)],
        source=Source(op_name="ask"),
    )


def calls(count: int, *, start: int = 0, op_name: str = "ask") -> list[dict[str, Any]]:
    return [
        {
            "id": f"{op_name}-{i:03d}",
            "op_name": op_name,
            "started_at": START + i,
            "ended_at": START + i + 1,
            "inputs": {"q": f"question number {i}"},
        }
        for i in range(start, start + count)
    ]


def calls_of(records: list[dict[str, Any]]) -> list[Call]:
    return [parse_call_object(record) for record in records]


@pytest.mark.parametrize(
    ("calibration", "expected"),
    [
        ({"first_n": 5}, "first_n must be a whole number from 10 to 20000"),
        ({"first_n": "200"}, "got '200'"),
        ({"first_n": True}, "got True"),
        ({"first_n": 30_000}, "got 30000"),
        ({"last_n": 200}, "a calibration mapping is {first_n: N}"),
    ],
)
def test_a_bad_first_n_names_the_column_the_value_and_the_fix(
    calibration: dict[str, Any], expected: str
) -> None:
    with pytest.raises(TopologyError) as caught:
        Topology("t", [Column("kind", "classify", {"text": "inputs.q"},
                              {"labels": LABELS, "calibration": calibration})])  # fmt: skip
    message = str(caught.value)
    assert "column 'kind', field 'params.calibration'" in message and expected in message
    assert message.count("\n") == 1  # one problem, not a second one from building the op


def test_first_n_needs_a_classify_op_and_call_fields() -> None:
    with pytest.raises(TopologyError, match="applies to the classify op, not 'embed'"):
        Topology("t", [Column("e", "embed", {"text": "inputs.q"},
                              {"calibration": {"first_n": 50}})])  # fmt: skip
    with pytest.raises(TopologyError, match=r"args\.text is 'columns\.summary', another column"):
        Topology("t", [
            Column("summary", "embed", {"text": "inputs.q"}),
            Column("kind", "classify", {"text": "columns.summary"},
                   {"labels": LABELS, "calibration": {"first_n": 50}}),
        ])  # fmt: skip
    with pytest.raises(TopologyError, match="the column's filter reads other columns"):
        topology(filter={"columns.other": {"exists": True}})
    # A built op cannot take it: it knows no calls.
    with pytest.raises(OpDefinitionError, match="is a topology setting"):
        Classify(labels=LABELS, calibration={"first_n": 50})


def test_the_spec_round_trips_and_runs_uncalibrated_until_resolved(tmp_path: Any) -> None:
    spec = topology(50)
    assert spec.column("kind").op.ref == Classify(labels=LABELS).ref
    assert [(r.column, r.n, r.text.text) for r in spec.calibrations] == [("kind", 50, "inputs.q")]
    written = spec.to_dict()
    assert written["columns"][0]["params"]["calibration"] == {"first_n": 50}
    path = tmp_path / "t.yaml"
    path.write_text(yaml.safe_dump(written))
    again = load_topology(path)
    assert again.calibrations == spec.calibrations
    assert again.column("kind").op.ref == spec.column("kind").op.ref


def test_the_same_calls_give_the_same_ref_in_any_order() -> None:
    stream = calls(30)
    shuffled = random.Random(7).sample(stream, len(stream))
    first, second = calibrate(topology(), stream), calibrate(topology(), shuffled)
    assert first.samples["kind"] == tuple(f"question number {i}" for i in range(10))
    assert first.call_ids == second.call_ids and first.samples == second.samples
    ref = first.topology.column("kind").op.ref
    assert ref == second.topology.column("kind").op.ref
    assert ref == Classify(labels=LABELS, calibration=list(first.samples["kind"])).ref
    assert ref != topology().column("kind").op.ref  # the uncalibrated op
    # Resolving the resolved topology again is a no-op: nothing is left to resolve.
    assert calibrate(first.topology, stream).topology.column("kind").op.ref == ref


def test_other_first_calls_or_another_n_change_the_ref() -> None:
    ref = calibrate(topology(), calls(30)).topology.column("kind").op.ref
    earlier = calls(1, start=-1)  # one call before all others: it is among the first 10
    assert calibrate(topology(), calls(30) + earlier).topology.column("kind").op.ref != ref
    assert calibrate(topology(11), calls(30)).topology.column("kind").op.ref != ref
    later = calls(5, start=100)  # calls after the first 10 change nothing
    assert calibrate(topology(), calls(30) + later).topology.column("kind").op.ref == ref


def test_only_calls_the_column_classifies_count() -> None:
    other_op = calls(20, start=-50, op_name="other")  # earlier, but not the source's
    no_text = [{**call, "inputs": {"q": "  "}} for call in calls(5, start=-10)]
    filtered = topology(filter={"attributes.env": "prod"})
    prod = [{**call, "attributes": {"env": "prod"}} for call in calls(12, start=40)]
    resolved = calibrate(topology(), other_op + no_text + calls(10))
    assert resolved.call_ids["kind"] == tuple(f"ask-{i:03d}" for i in range(10))
    chosen = calibrate(filtered, calls(30) + prod).call_ids["kind"]
    assert chosen == tuple(f"ask-{i:03d}" for i in range(40, 50))


def test_fewer_than_n_calls_leave_the_column_uncalibrated_with_a_warning() -> None:
    short = calibrate(topology(), calls(7))
    assert short.samples == {} and short.found == {"kind": 7}
    assert short.notes == [
        "column 'kind': calibration needs the first 10 calls of the source with a text at "
        "inputs.q; 7 found, so it is computed uncalibrated (give more calls, or a smaller "
        "first_n)"
    ]
    assert short.topology.column("kind").op.ref == topology().column("kind").op.ref
    with pytest.warns(WeaveStreamWarning, match="topology 't', column 'kind': .* 7 found"):
        plan, _ = asyncio.run(plan_local(topology(), calls(7)))
    assert plan.calls == 7
    with pytest.raises(ValueError, match=r"columns \['nope'\] have no calibration"):
        with_samples(topology(), {"nope": ["a", "b"]})


def test_the_local_runner_classifies_with_the_first_n_of_its_input() -> None:
    """Real model: the run's values carry the calibrated ref and equal the op's own."""
    chat, news = texts("chat").texts[:8], texts("news").texts[:8]
    stream: list[dict[str, Any]] = [
        {"id": f"c{i:02d}", "op_name": "ask", "started_at": START + i, "inputs": {"q": text}}
        for i, text in enumerate(t for pair in zip(chat, news, strict=True) for t in pair)
    ]
    table = run_local(topology(12), list(reversed(stream)))
    frame = table.to_pandas().set_index("call_id").sort_index()
    first_12 = [call["inputs"]["q"] for call in stream[:12]]
    direct = Classify(labels=LABELS, calibration=first_12)
    assert {value.op_ref for value in table.values} == {direct.ref}
    results = asyncio.run(run_op(direct, [{"text": call["inputs"]["q"]} for call in stream]))
    assert frame["kind"].map(lambda v: v["label"]).tolist() == [r.value["label"] for r in results]


def test_the_store_resolves_once_it_holds_n_calls_and_keeps_that_sample(tmp_path: Any) -> None:
    """What a streaming worker does: the same sample as the local runner, then kept."""
    store = open_store(tmp_path / "store")
    writer = StoreWriter(store)
    spec = topology()
    assert calibrate_from_store(store, spec).found == {"kind": 0}  # no calls table yet
    stream = [parse_call_object(call) for call in calls(30)]
    writer.write_calls(stream[23:] + calls_of(calls(8, op_name="other")))
    waiting = calibrate_from_store(store, spec)  # 7 calls of the source stored
    assert waiting.found == {"kind": 7} and waiting.samples == {} and waiting.pending
    assert not CalibrationFiles(store).path("t", "kind").exists()
    writer.write_calls(stream[:23])
    resolved = calibrate_from_store(store, spec, chunk=4)
    local = calibrate(spec, stream)
    assert resolved.call_ids == local.call_ids
    assert resolved.topology.column("kind").op.ref == local.topology.column("kind").op.ref
    # A call started before all of them, stored later, does not move the kept sample.
    writer.write_calls(calls_of(calls(1, start=-1)))
    again = calibrate_from_store(store, spec)
    assert again.call_ids == local.call_ids
    kept = CalibrationFiles(store).path("t", "kind")
    assert json.loads(kept.read_text())["call_ids"] == list(local.call_ids["kind"])
    # Another first_n is another sample, taken afresh (and it replaces the old one).
    assert calibrate_from_store(store, topology(12)).call_ids["kind"][0] == "ask--01"


def test_a_worker_keeps_a_sample_only_once_two_looks_agree(tmp_path: Any) -> None:
    store = open_store(tmp_path / "store")
    StoreWriter(store).write_calls(calls_of(calls(12, start=5)))
    seen: dict[str, tuple[str, ...]] = {}

    def settled(column: str, ids: tuple[str, ...]) -> bool:  # as the worker's watch does
        agreed, seen[column] = seen.get(column) == ids, ids
        return agreed

    first = calibrate_from_store(store, topology(), settled=settled)
    assert first.pending and not CalibrationFiles(store).path("t", "kind").exists()
    StoreWriter(store).write_calls(calls_of(calls(5)))  # another sink commits earlier calls
    assert calibrate_from_store(store, topology(), settled=settled).pending  # they moved
    kept = calibrate_from_store(store, topology(), settled=settled)
    assert kept.call_ids["kind"] == tuple(f"ask-{i:03d}" for i in range(10))


def test_first_n_needs_the_centroid_method_and_says_so_at_load() -> None:
    params = {"labels": LABELS, "method": "river", "calibration": {"first_n": 10}}
    with pytest.raises(TopologyError, match="needs method 'centroid', got method 'river'"):
        Topology("t", [Column("kind", "classify", {"text": "inputs.q"}, params)])


def test_a_kept_sample_of_another_source_is_not_used(tmp_path: Any) -> None:
    store = open_store(tmp_path / "store")
    StoreWriter(store).write_calls(calls_of(calls(12) + calls(12, op_name="other")))
    asks = calibrate_from_store(store, topology())
    assert asks.call_ids["kind"][0] == "ask-000"
    other = Topology(
        "t",
        [Column("kind", "classify", args={"text": "inputs.q"},
                params={"labels": LABELS, "calibration": {"first_n": 10}})],
        source=Source(op_name="other"),
    )  # fmt: skip
    # Same topology name, column, N and text path: only the source changed.
    assert other.calibrations[0].key != topology().calibrations[0].key
    assert calibrate_from_store(store, other).call_ids["kind"][0] == "other-000"


def test_a_text_path_that_finds_nothing_stops_reading_the_store_and_says_why(
    tmp_path: Any,
) -> None:
    store = open_store(tmp_path / "store")
    StoreWriter(store).write_calls(calls_of(calls(250)))
    typo = topology(args={"text": "inputs.qestion"})
    with pytest.raises(TopologyError, match=r"found 0 calls with a text at inputs.qestion among "
                                            r"the first 2\d\d calls"):  # fmt: skip
        calibrate_from_store(store, typo, chunk=10)


def test_a_worker_whose_sample_cannot_be_taken_fails_its_component_and_keeps_looking(
    tmp_path: Any,
) -> None:
    from weave_stream.config import Settings
    from weave_stream.runners.streaming.calibration_agent import CalibrationWatch
    from weave_stream.runners.streaming.health import HEALTH

    settings = Settings(store_url=str(tmp_path / "store"), data_dir=tmp_path / "data")
    StoreWriter(open_store(None, settings)).write_calls(calls_of(calls(250)))
    watch = CalibrationWatch(settings, topology(args={"text": "inputs.qestion"}))
    component = watch.components["kind"]
    try:
        asyncio.run(watch.check())  # the error ends this look, not the looks to come
        state = HEALTH.snapshot()[component]
        assert state["state"] == "failed" and "check the column's args.text" in state["last_error"]
        assert not watch.resolved and watch.topology is watch.base  # still uncalibrated
    finally:
        HEALTH.forget(component)
