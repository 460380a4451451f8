"""A topology's ``topics:`` section: the spec, the column it adds (following CURRENT),
the window scheduling of the stream's topic alerts, and a scheduled refit."""

from __future__ import annotations

import asyncio
import dataclasses
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from tests.support.topic_maps import CATEGORIES, corpus, fit_test_map
from weave_stream.config import Settings
from weave_stream.demo.judge_standin import StandInJudge
from weave_stream.errors import TopicError, TopologyError
from weave_stream.ops import op
from weave_stream.runners.local import run_local
from weave_stream.topic_maps import MapStore, assign
from weave_stream.topic_maps.watch import TopicWatch, WindowCall
from weave_stream.topic_maps.windows import TopicWindows
from weave_stream.topology.loader import topology_from_dict
from weave_stream.topology.spec import Column, Topology


@op
def given_vector(vector: list[float]) -> list[float]:
    return vector


VECTOR_COLUMN = {"name": "doc_embedding", "op": "tests.unit.test_topic_stream:given_vector"}


def spec(topics: list[dict[str, Any]], settings: Settings | None = None) -> Topology:
    return topology_from_dict(
        {
            "name": "support",
            "columns": [{**VECTOR_COLUMN, "args": {"vector": "inputs.vector"}}],
            "topics": topics,
        },
        settings=settings,
    )


def test_a_topics_entry_adds_its_column_and_round_trips() -> None:
    topology = spec([{"column": "doc_embedding", "refit": "1d", "watch": {"window": "10m"}}])
    assert [c.name for c in topology.compiled] == ["doc_embedding", "topic"]
    added = topology.column("topic")
    assert added.depends_on == {"doc_embedding"} and added.op.name == "topic"
    entry = topology.topics[0]
    assert (entry.refit, entry.since, entry.watch.window, entry.watch.enabled) == (
        86400.0,
        604800.0,
        600.0,
        True,
    )
    data = topology.to_dict()
    assert [c["name"] for c in data["columns"]] == ["doc_embedding"]  # added, not written
    again = topology_from_dict(data)
    assert [c.name for c in again.compiled] == ["doc_embedding", "topic"]
    assert again.column("topic").op.ref == added.op.ref
    copied = dataclasses.replace(topology, description="copy")  # passes columns back in
    assert [c.name for c in copied.columns] == ["doc_embedding", "topic"]
    # an aggregate may group by the added column like by any other
    grouped = spec([{"column": "doc_embedding", "name": "subject"}]).to_dict()
    grouped["aggregates"] = [
        {"name": "mix", "window": "1h", "group_by": ["columns.subject.topic"], "metrics": {}}
    ]
    assert topology_from_dict(grouped).aggregates[0].name == "mix"


@pytest.mark.parametrize(
    ("entry", "message"),
    [
        ({"column": "nope"}, "field column: 'nope' is not a column of the topology (its columns: "),
        ({"column": "doc_embedding", "name": "doc_embedding"}, "already has a column"),
        ({"column": "doc_embedding", "frozen": True, "refit": "1d"}, "a frozen map is never"),
        ({"column": "doc_embedding", "refit": "daily"}, "field refit: 'daily' is not a duration"),
        ({"column": "doc_embedding", "watch": {"z": 3}}, "field watch.z: Extra inputs"),
        ({"column": "doc_embedding", "max_topics": 1}, "field max_topics: Input should be"),
        ({"colum": "doc_embedding"}, "field colum: Extra inputs are not permitted"),
    ],
)
def test_a_bad_topics_entry_is_refused_naming_the_field(
    entry: dict[str, Any], message: str
) -> None:
    with pytest.raises(TopologyError, match="topology 'support' is invalid") as raised:
        spec([entry])
    assert message in str(raised.value)


def test_two_entries_may_not_add_the_same_column() -> None:
    with pytest.raises(TopologyError, match="two topics are named 'topic'"):
        spec([{"column": "doc_embedding"}, {"column": "doc_embedding"}])


def test_python_topologies_take_topics_too() -> None:
    topology = Topology(
        "support",
        [Column("doc_embedding", given_vector, args={"vector": "inputs.vector"})],
        topics=[{"column": "doc_embedding", "watch": False}],
    )
    assert topology.topics[0].watch.enabled is False
    assert [c.name for c in topology.compiled] == ["doc_embedding", "topic"]


def calls(vectors: Any, prefix: str = "n") -> list[dict[str, Any]]:
    return [
        {
            "id": f"{prefix}{i}",
            "op_name": "predict",
            "started_at": "2026-12-01T00:00:00Z",
            "inputs": {"vector": list(map(float, v))},
        }
        for i, v in enumerate(vectors)
    ]


def test_the_column_waits_for_a_map_then_follows_current(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    # While a map is in use, CURRENT is read once a second at most; without one, every
    # batch looks, so the first map is used by the very next batch (an hour here).
    monkeypatch.setattr(assign, "FOLLOW_CHECK_SECONDS", 3600.0)
    settings = Settings(store_url=str(tmp_path / "store"), data_dir=tmp_path / "data")
    topology = spec([{"column": "doc_embedding"}], settings=settings)
    fresh, truth = corpus(CATEGORIES, per=3, seed=9)
    before = run_local(topology, calls(fresh.vectors))  # no map: not fatal, each value says so
    errors = {v.error for v in before.values if v.column == "topic"}
    assert len(errors) == 1 and "no topic map for support.doc_embedding yet" in str(errors.pop())
    inputs, _ = corpus(CATEGORIES)
    embedding_ref = topology.column("doc_embedding").op.ref
    topic_map = fit_test_map(inputs, "support", embedding_ref)
    MapStore(settings.store_location).save(topic_map)
    after = run_local(topology, calls(fresh.vectors))  # the same column, now with a map
    values = [v for v in after.values if v.column == "topic"]
    assert all(v.error is None for v in values)
    by_category = {truth[i]: values[i].value["topic_id"] for i in range(len(truth))}
    assert len(set(by_category.values())) == len(CATEGORIES)  # one topic per category
    assert values[0].op_ref != next(v.op_ref for v in before.values if v.column == "topic")
    # A map of another embedding model made current: refused before a local run, and
    # each value of a running stream says why (the column follows CURRENT).
    MapStore(settings.store_location).save(dataclasses.replace(topic_map, embedding_ref="e:2"))
    with pytest.raises(TopicError, match="fitted on embeddings of e:2, but the column"):
        run_local(spec([{"column": "doc_embedding"}], settings=settings), calls(fresh.vectors))


def test_windows_are_checked_once_the_stream_or_the_clock_passes_them() -> None:
    clock = [0.0]
    windows = TopicWindows(size=60, grace=10, idle=5, clock=lambda: clock[0])
    for t in (0, 20, 59):
        assert windows.add(t, WindowCall(f"a{t}", 0))
    windows.add(65, WindowCall("b65", 1))  # inside the grace: the first window waits
    assert windows.due(now=1e9) == []  # the stream is not idle yet
    windows.add(70, WindowCall("b70", 1))  # 70 >= 60 + 10: the stream passed it
    due = windows.due(now=0)
    assert [(w.start, [c.call_id for c in w.calls]) for w in due] == [(0, ["a0", "a20", "a59"])]
    assert windows.due(now=0) == []  # each window once
    assert not windows.add(30, WindowCall("late", 0)) and windows.late == 1
    assert windows.due(now=125) == []  # the clock is past 60-120 + grace, but calls still come
    clock[0] = 10.0  # idle for 10 s: the clock closes it
    assert [w.start for w in windows.due(now=131)] == [60]


def test_windows_hold_bounded_state() -> None:
    windows = TopicWindows(size=10, grace=0, max_open=2, max_calls=5)
    for i in range(50):
        windows.add(5, WindowCall(f"c{i}", i % 2))
    for start in (100, 200):  # out of order: the stream's watermark is 200 after these
        windows.add(start + 1, WindowCall(f"w{start}", 0))
    due = windows.due(now=0)
    assert [w.start for w in due] == [0, 100]  # passed by the stream
    assert (due[0].seen, len(due[0].calls)) == (50, 5)  # a sample of the window's calls
    patient = TopicWindows(size=10, grace=1000, max_open=2)  # nothing passed by the stream
    for start in (0, 10, 20, 30):
        patient.add(start, WindowCall(f"x{start}", 0))
    assert [w.start for w in patient.due(now=0)] == [0, 10]  # the oldest beyond two, early
    assert patient.open_windows == 2


def test_a_due_window_raises_the_shift_alert() -> None:
    inputs, truth = corpus(CATEGORIES, per=20)
    assignments = {c: CATEGORIES.index(t) for c, t in zip(inputs.call_ids, truth, strict=True)}
    from weave_stream.store.topic_map import Topic, TopicMap

    topics = tuple(
        Topic(i, name, "", tuple(np.zeros(384)), 0.3, 20, 0.25) for i, name in enumerate(CATEGORIES)
    )
    topic_map = TopicMap("support", "doc_embedding", "e:1", "topicmap:1", topics)
    windows = TopicWindows(size=3600, grace=0)
    hour = 1_796_000_400.0  # 2026-11-29T23:00:00Z, a whole hour
    for call_id, topic_id in assignments.items():
        if topic_id != 3:  # sports vanished
            windows.add(hour + 100, WindowCall(call_id, topic_id))
    windows.add(hour + 7200, WindowCall("next", 0))
    (window,) = windows.due(now=0)
    alerts = TopicWatch(topic_map, min_calls=50).check(window.calls, time=window.end)
    (vanished,) = [a for a in alerts if a.stats["topic"] == "sports"]
    assert vanished.kind == "topic_shift" and vanished.stats["observed_share"] == 0
    assert vanished.call_ids  # the map kept no examples: the window's calls stand in
    assert vanished.time.timestamp() == hour + 3600


def store_calls(inputs: Any, start: str = "2026-12-01T00:00:00Z") -> list[dict[str, Any]]:
    from datetime import datetime, timedelta

    first = datetime.fromisoformat(start)
    return [
        {
            "id": call_id,
            "op_name": "predict",
            "started_at": (first + timedelta(seconds=i)).isoformat(),
            "inputs": {"vector": vector.tolist(), "document": text},
        }
        for i, (call_id, vector, text) in enumerate(
            zip(inputs.call_ids, inputs.vectors, inputs.texts, strict=True)
        )
    ]


def refitted_topology(name: str, folder: Path, judge_url: str) -> tuple[Settings, Topology]:
    """Settings on a store in ``folder``, and a topology whose topics are refitted hourly
    over every call stored (the documents embedded: ``inputs.document``)."""
    settings = Settings(
        store_url=str(folder / "store"), data_dir=folder / "data", judge_base_url=judge_url
    )
    column = {
        **VECTOR_COLUMN,
        "op": "tests.unit.test_topic_stream:vector_of_document",
        "args": {"text": "inputs.document", "vector": "inputs.vector"},
    }
    topics = [{"column": "doc_embedding", "refit": "1h", "since": "3650d"}]
    spec = {"name": name, "columns": [column], "topics": topics}
    return settings, topology_from_dict(spec, settings=settings)


def test_a_scheduled_refit_fits_then_stands_and_a_failed_one_keeps_the_map(
    tmp_path: Path,
) -> None:
    from weave_stream.runners.streaming.health import HEALTH
    from weave_stream.runners.streaming.topic_agent import TopicColumnWatch

    with StandInJudge() as judge:
        settings, topology = refitted_topology("support", tmp_path, judge.base_url)
        watch = TopicColumnWatch(settings, topology, topology.topics[0])
        maps = MapStore(settings.store_location)
        few, _ = corpus(["money"], per=3, seed=1)
        run_local(topology, store_calls(few), store=settings.store_location)
        asyncio.run(watch.refit())  # too few calls, no map yet: waiting, and says why
        state = HEALTH.snapshot()[f"{watch.component}/refit"]
        assert state["state"] == "waiting" and "a topic fit needs at least" in state["detail"]
        assert maps.current_ref("support", "doc_embedding") is None
        assert watch.refresh() is None
        assert HEALTH.snapshot()[watch.component]["state"] == "waiting"

        inputs, _ = corpus(CATEGORIES)
        run_local(topology, store_calls(inputs), store=settings.store_location)
        asyncio.run(watch.refit())
        assert HEALTH.snapshot()[f"{watch.component}/refit"]["state"] == "ok"
        first = maps.current("support", "doc_embedding")
        assert len(first.topics) == len(CATEGORIES) and first.call_count == 63
        assert watch.refresh() == first
        assert HEALTH.snapshot()[watch.component]["state"] == "ok"
        asyncio.run(watch.refit())  # the same calls: the map stands (no new version)
        assert maps.refs("support", "doc_embedding") == [first.ref]
        watch.spec = watch.spec.model_copy(update={"budget": 0.0})  # any naming: refused
        extra, _ = corpus(["money"], per=6, seed=7)
        run_local(topology, store_calls(extra), store=settings.store_location)
        asyncio.run(watch.refit())
        state = HEALTH.snapshot()[f"{watch.component}/refit"]
        assert state["state"] == "failed" and "over the budget" in state["last_error"]
        assert maps.current_ref("support", "doc_embedding") == first.ref  # the map stays
        watch.spec = topology.topics[0]
        maps.save(first.with_frozen())  # `topics freeze`: refits skip it
        more, _ = corpus(CATEGORIES, per=5, seed=4)
        run_local(topology, store_calls(more), store=settings.store_location)
        asyncio.run(watch.refit())
        assert maps.current("support", "doc_embedding").ref == first.ref
    HEALTH.forget(watch.component)
    HEALTH.forget(f"{watch.component}/refit")


@op
def vector_of_document(text: str, vector: list[float]) -> list[float]:
    return vector


def test_the_leader_refit_timer_moves_current_and_the_column_info_follows(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    import faust

    from weave_stream.broker.sink import RecordSink
    from weave_stream.metrics import COLUMN_INFO, TOPIC_REFITS
    from weave_stream.runners.streaming.health import HEALTH
    from weave_stream.runners.streaming.topic_agent import attach_topics

    monkeypatch.setattr(assign, "FOLLOW_CHECK_SECONDS", 0.0)  # the op reads CURRENT each time
    app = faust.App("refit-timer", broker="kafka://127.0.0.1:9", autodiscover=False)
    timers: list[tuple[float, bool, Any]] = []
    register_timer = app.timer

    def recorded_timer(interval: float, on_leader: bool = False, **options: Any) -> Any:
        def register(function: Any) -> Any:
            timers.append((interval, on_leader, function))
            return register_timer(interval, on_leader=on_leader, **options)(function)

        return register

    monkeypatch.setattr(app, "timer", recorded_timer)

    def column_refs() -> set[str]:
        return {
            sample.labels["op_ref"]
            for metric in COLUMN_INFO.collect()
            for sample in metric.samples
            if sample.labels["topology"] == "timed" and sample.labels["column"] == "topic"
        }

    def refits(outcome: str) -> float:
        return TOPIC_REFITS.labels("timed", "topic", outcome)._value.get()

    with StandInJudge() as judge:
        settings, topology = refitted_topology("timed", tmp_path, judge.base_url)
        (watch,) = attach_topics(app, settings, topology, RecordSink("127.0.0.1:9"))
        # Only the leader refits, once per refit interval; the map state timer runs everywhere.
        (refit_timer,) = [function for _, leader, function in timers if leader]
        assert [(i, leader) for i, leader, _ in timers] == [(2.0, False), (3600.0, True)]
        no_map = column_refs()
        assert no_map == {topology.column("topic").op.ref}  # shown from the start

        inputs, _ = corpus(CATEGORIES)
        run_local(topology, store_calls(inputs), store=settings.store_location)
        fitted_before = refits("fitted")
        asyncio.run(refit_timer())  # no map yet: the timer fits the first one
        maps = MapStore(settings.store_location)
        first = maps.current("timed", "doc_embedding")
        assert len(first.topics) == len(CATEGORIES) and refits("fitted") == fitted_before + 1
        first_refs = column_refs()
        assert len(first_refs) == 1 and first_refs != no_map  # the op ref names the map

        born, _ = corpus(["history"], per=15, seed=5)
        later = "2026-12-02T00:00:00Z"
        run_local(topology, store_calls(born, start=later), store=settings.store_location)
        asyncio.run(refit_timer())
        second = maps.current("timed", "doc_embedding")
        assert second.ref != first.ref and second.refit is not None
        assert second.refit.previous_ref == first.ref and len(second.refit.born) == 1
        assert {t.name for t in first.topics} <= {t.name for t in second.topics}  # carried over
        assert HEALTH.snapshot()[f"{watch.component}/refit"]["state"] == "ok"
        assert watch.refresh() == second
        assert column_refs() == {topology.column("topic").op.ref} != first_refs  # old one gone
    HEALTH.forget(watch.component)
    HEALTH.forget(f"{watch.component}/refit")


def test_topics_fit_takes_the_column_and_knobs_of_the_topics_entry(tmp_path: Path) -> None:
    import yaml
    from click.testing import CliRunner

    from weave_stream.cli.main import cli

    spec_file = tmp_path / "support.yaml"
    spec_file.write_text(
        yaml.safe_dump(
            {
                "name": "support",
                "columns": [
                    {
                        "name": "doc_embedding",
                        "op": "tests.unit.test_topic_stream:vector_of_document",
                        "args": {"text": "inputs.document", "vector": "inputs.vector"},
                    }
                ],
                "topics": [{"column": "doc_embedding", "max_topics": 3, "since": "3650d"}],
            }
        )
    )
    store = tmp_path / "store"
    inputs, _ = corpus(CATEGORIES)
    settings = Settings(store_url=str(store), data_dir=tmp_path / "data")
    run_local(
        topology_from_dict(yaml.safe_load(spec_file.read_text())), store_calls(inputs), store=store
    )
    with StandInJudge() as judge:
        flags = ["--store-url", str(store), "--data-dir", str(tmp_path / "data")]
        flags += ["--judge-base-url", judge.base_url, "--judge-model", "gpt-4o-mini"]
        result = CliRunner().invoke(cli, ["topics", "fit", str(spec_file), *flags])
        assert result.exit_code == 0, result.output
        fitted = MapStore(settings.store_location).current("support", "doc_embedding")
        assert fitted.params["max_topics"] == 3 and len(fitted.topics) <= 3
        # show and drill take the column of the only topics: entry too
        on_store = flags[:4]
        shown = CliRunner().invoke(cli, ["topics", "show", str(spec_file), *on_store])
        assert shown.exit_code == 0 and fitted.ref in shown.output, shown.output
        drilled = CliRunner().invoke(cli, ["topics", "drill", str(spec_file), "0", *on_store])
        assert drilled.exit_code == 0 and "topic 0 " in drilled.output, drilled.output
        bare = tmp_path / "bare.yaml"
        bare.write_text(spec_file.read_text().split("topics:")[0])
        unnamed = CliRunner().invoke(cli, ["topics", "show", str(bare), *on_store])
        assert unnamed.exit_code != 0
        assert "declares 0 topics: entries (none); name the embedding column with --column" in (
            unnamed.output
        )
        frozen = spec_file.read_text().replace("max_topics: 3", "max_topics: 4\n  frozen: true")
        spec_file.write_text(frozen)
        refused = CliRunner().invoke(cli, ["topics", "fit", str(spec_file), *flags])
    assert refused.exit_code != 0 and "says frozen: true" in refused.output, refused.output
    assert MapStore(settings.store_location).current("support", "doc_embedding") == fitted


def test_the_worker_hook_counts_topics_and_alerts_once_the_stream_passes_a_window(
    tmp_path: Path,
) -> None:
    import orjson

    from weave_stream.ingest.call import call_from_json
    from weave_stream.metrics import TOPIC_CALLS
    from weave_stream.runners.streaming.health import HEALTH
    from weave_stream.runners.streaming.topic_agent import TopicColumnWatch

    settings = Settings(store_url=str(tmp_path / "store"), data_dir=tmp_path / "data")
    entry = {"column": "doc_embedding", "name": "subject", "watch": {"grace": 0, "min_calls": 40}}
    data = {
        "name": "hooked",
        "columns": [
            {
                "name": "doc_embedding",
                "op": "tests.unit.test_topic_stream:vector_of_document",
                "args": {"text": "inputs.document", "vector": "inputs.vector"},
            }
        ],
        "topics": [entry],
    }
    topology = topology_from_dict(data, settings=settings)
    training, truth = corpus(CATEGORIES)
    topic_map = fit_test_map(training, "hooked", topology.column("doc_embedding").op.ref)
    MapStore(settings.store_location).save(topic_map)
    topology = topology_from_dict(data, settings=settings)  # a worker starting: map found
    watch = TopicColumnWatch(settings, topology, topology.topics[0])
    shifted, _ = corpus(["money", "food", "science"], per=20, seed=3)  # no sports
    tick, _ = corpus(["money"], per=1, seed=8)
    raw = [*store_calls(shifted), *store_calls(tick, start="2026-12-01T02:00:00Z")]
    for call in raw:
        call["ended_at"] = call["started_at"]
    values = run_local(topology, raw).values
    calls = [call_from_json(orjson.dumps(c)) for c in raw]
    watch.observe(calls[:-1], [v for v in values if v.call_id != raw[-1]["id"]])
    current = watch.refresh()
    assert current is not None
    assert HEALTH.snapshot()[watch.component]["state"] == "ok"
    assert watch.due_alerts(0, current) == []  # the stream has not passed the window yet
    watch.observe(calls[-1:], [v for v in values if v.call_id == raw[-1]["id"]])
    alerts = watch.due_alerts(0, current)
    sports = topic_map.topic(topic_map.assignments[training.call_ids[truth.index("sports")]])
    (shift,) = [a for a in alerts if a.stats["topic"] == sports.name]
    assert shift.kind == "topic_shift" and shift.monitor == "topics:doc_embedding"
    assert shift.stats["window_calls"] == len(raw) - 1 and shift.stats["observed_share"] == 0
    assert shift.call_ids  # the map's example calls of the vanished topic
    counted = sum(
        TOPIC_CALLS.labels("hooked", "subject", t.name)._value.get() for t in topic_map.topics
    )
    assert counted == len(raw)
    HEALTH.forget(watch.component)
