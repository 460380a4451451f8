"""Registered topologies on the real broker: registry, derived streams, cache, isolation."""

from __future__ import annotations

import asyncio
import threading
import time
from collections import Counter
from collections.abc import Callable
from pathlib import Path

from tests.support.metrics import wait_for_metric
from tests.support.records import (
    group_progress_now,
    produce_calls,
    produce_records,
    read_all,
    table_key,
    wait_until_committed,
)
from tests.support.servers.openai import FakeOpenAI, stall
from tests.support.topologies import (
    ASSETS,
    WORDY,
    covers,
    documents,
    register_file,
    topology_workers,
    wait_for_values,
    word_count_topology,
)
from tests.support.waiting import wait_until
from weave_stream.columns.values import derived_key, identity, read_derived
from weave_stream.config import Settings
from weave_stream.runners.backfill import known_results
from weave_stream.runners.local import run_local
from weave_stream.runners.workers import WorkerProcess
from weave_stream.topics import TopicNames
from weave_stream.topology.loader import load_topology
from weave_stream.topology.registrations import registration_for, unregister


def test_registered_topology_streams_one_value_per_call_and_column_with_errors_as_values(
    make_settings: Callable[..., Settings], start_worker: Callable[..., WorkerProcess]
) -> None:
    settings = make_settings()
    worker = start_worker(settings)
    register_file(settings, WORDY)
    calls = documents(["money", "politics", "food"], "stream")
    calls.append({**calls[0], "id": "thirteen", "inputs": {"document": " ".join(["w"] * 13)}})
    produce_calls(settings, calls)
    values = wait_for_values(settings, "wordy", ["words", "size"], covers(calls, ["words", "size"]))

    assert Counter((v.call_id, v.column) for v in values) == Counter(
        {(c["id"], col): 1 for c in calls for col in ("words", "size")}
    )
    by_call = {(v.call_id, v.column): v for v in values}
    for call in calls:
        words = by_call[(call["id"], "words")]
        assert words.value == len(call["inputs"]["document"].split())
        assert words.trace_id == call["trace_id"] and words.topology == "wordy"
        assert words.started_at is not None and words.op_ref.startswith("word_count:")
        assert words.latency_ms is not None and words.computed_at is not None
    failed = by_call[("thirteen", "size")]
    assert failed.value is None and "unlucky" in (failed.error or "")
    assert by_call[("thirteen", "words")].value == 13
    group = settings.topics.topology_group("wordy")
    assert wait_until_committed(settings, group, timeout=30) == (len(calls), 0)
    metrics = worker.metrics()  # the worker's scrape includes its topology workers
    assert metrics['weave_stream_topology_calls_total{topology="wordy"}'] == len(calls)


def test_changed_op_writes_under_its_new_ref_from_then_on_and_old_values_stay(
    make_settings: Callable[..., Settings], start_worker: Callable[..., WorkerProcess]
) -> None:
    settings = make_settings()
    worker = start_worker(settings)
    register_file(settings, WORDY)
    before = documents(["greetings"], "before")
    produce_calls(settings, before)
    old_ref = load_topology(WORDY).column("size").op.ref
    wait_for_values(settings, "wordy", ["size"], covers(before, ["size"], old_ref))

    version = register_file(settings, ASSETS / "wordy_v2.py")
    new_ref = load_topology(ASSETS / "wordy_v2.py").column("size").op.ref
    assert new_ref != old_ref
    # "From then on" is from when the workers run the new version (within seconds).
    info = f'weave_stream_topology_info{{topology="wordy",version="{version}"}}'
    wait_for_metric(worker, info, lambda running: running == 1, what=f"version {version} to run")
    after = documents(["humor"], "after")
    produce_calls(settings, after)
    values = wait_for_values(settings, "wordy", ["size"], covers(after, ["size"], new_ref))
    refs = {v.call_id: v.op_ref for v in values}
    assert all(refs[c["id"]] == old_ref for c in before)  # old values stay, under the old ref
    assert {v.op_ref for v in values if v.call_id in {c["id"] for c in after}} == {new_ref}


def test_unregistered_topology_stops_and_keeps_its_values(
    make_settings: Callable[..., Settings],
    start_worker: Callable[..., WorkerProcess],
    tmp_path: Path,
) -> None:
    settings = make_settings()
    worker = start_worker(settings)
    register_file(settings, WORDY)
    # A witness: a second topology on the same calls that keeps running. Once it has
    # processed a call, a running wordy topology worker would have processed it too.
    register_file(settings, word_count_topology(tmp_path, "witness"))
    first = documents(["sports"], "first")
    produce_calls(settings, first)
    wait_for_values(settings, "wordy", ["words"], covers(first, ["words"]))
    asyncio.run(unregister(settings, "wordy"))
    wait_until(
        worker.metrics,
        30,
        "the wordy topology worker's metrics to leave the worker's scrape",
        until=lambda metrics: not any('topology="wordy"' in key for key in metrics),
        interval=0.5,
        describe=lambda metrics: [key for key in metrics if 'topology="wordy"' in key],
    )
    wait_until(
        lambda: topology_workers(worker),
        30,
        "the wordy topology worker process to end",
        until=lambda running: "wordy" not in running,
    )
    group, valid = settings.topics.topology_group("wordy"), settings.topics.valid
    committed, _ = group_progress_now(settings, group, valid)
    later = documents(["history"], "later")
    produce_calls(settings, later)
    ingested = len(first) + len(later)
    complete = 'weave_stream_calls_ingested_total{kind="complete"}'
    wait_for_metric(worker, complete, lambda count: (count or 0) >= ingested)
    wait_for_values(settings, "witness", ["words"], covers(later, ["words"]))
    wait_until_committed(settings, settings.topics.topology_group("witness"))
    # The witness computed and committed the later calls; wordy wrote and committed nothing.
    values = asyncio.run(read_derived(settings, "wordy", ["words"]))
    assert {v.call_id for v in values} == {c["id"] for c in first}
    assert group_progress_now(settings, group, valid)[0] == committed


def test_slow_judge_in_one_topology_does_not_stall_another(
    make_settings: Callable[..., Settings], start_worker: Callable[..., WorkerProcess]
) -> None:
    with FakeOpenAI() as judge_server:
        judge_server.on("", stall(120))  # every judge request hangs
        settings = make_settings(judge_base_url=judge_server.base_url)
        start_worker(settings)
        register_file(settings, ASSETS / "judged.yaml")
        register_file(settings, WORDY)
        calls = documents(["science", "movies"], "isolation")
        produce_calls(settings, calls)
        wait_for_values(settings, "wordy", ["words", "size"], covers(calls, ["words", "size"]))
        # The judge topology is running, and stuck.
        wait_until(lambda: len(judge_server.requests), 60, "a request to the judge", interval=0.2)
        assert asyncio.run(read_derived(settings, "judged", ["helpful"])) == []


def test_replayed_calls_compute_nothing_new_and_readers_count_each_value_once(
    make_settings: Callable[..., Settings], start_worker: Callable[..., WorkerProcess]
) -> None:
    settings = make_settings()
    worker = start_worker(settings)
    register_file(settings, WORDY)
    calls = documents(["emotion"], "replay")
    produce_calls(settings, calls)
    wait_for_values(settings, "wordy", ["words"], covers(calls, ["words"]))
    computed = (
        'weave_stream_derived_values_total{column="words",outcome="computed",topology="wordy"}'
    )
    cached = 'weave_stream_derived_values_total{column="words",outcome="cached",topology="wordy"}'
    first = worker.metrics()[computed]
    assert first == len(calls)

    produce_calls(settings, calls)  # the same calls again: a replay
    wait_for_metric(worker, cached, lambda count: (count or 0) >= len(calls))
    metrics = worker.metrics()
    assert metrics[cached] == len(calls) and metrics[computed] == first
    raw = asyncio.run(read_derived(settings, "wordy", ["words"], deduplicate=False))
    assert len(raw) == 2 * len(calls)  # re-emitted ...
    once = asyncio.run(read_derived(settings, "wordy", ["words"]))
    assert len(once) == len(calls)  # ... and counted once


def test_results_are_forgotten_after_the_retention(
    make_settings: Callable[..., Settings], start_worker: Callable[..., WorkerProcess]
) -> None:
    settings = make_settings(results_retention_seconds=2)
    worker = start_worker(settings)
    register_file(settings, WORDY)
    calls = documents(["botprofile"], "retention")
    computed = (
        'weave_stream_derived_values_total{column="words",outcome="computed",topology="wordy"}'
    )
    produce_calls(settings, calls)
    wait_for_values(settings, "wordy", ["words"], covers(calls, ["words"]))
    # The timer (every second here) forgets each call past the retention: a tombstone
    # for its key in the results table's changelog says it is gone from the table.
    changelog = TopicNames.changelog(settings.topics.topology_group("wordy"), "results")
    wait_until(
        lambda: {table_key(r.key or b"") for r in read_all(settings, changelog) if r.value is None},
        30,
        "the results of every call to be forgotten",
        until=lambda forgotten: forgotten >= {c["id"] for c in calls},
        describe=lambda forgotten: f"{len(forgotten & {c['id'] for c in calls})} of {len(calls)}",
    )
    produce_calls(settings, calls)
    wait_for_metric(worker, computed, lambda count: (count or 0) >= 2 * len(calls))
    assert worker.metrics()[computed] == 2 * len(calls)  # computed again: state was dropped
    version = registration_for(str(WORDY), settings)[1].version
    info = f'weave_stream_topology_info{{topology="wordy",version="{version}"}}'
    assert worker.metrics()[info] == 1


def test_streaming_and_local_runners_agree(
    make_settings: Callable[..., Settings], start_worker: Callable[..., WorkerProcess]
) -> None:
    settings = make_settings(batch_size=32)
    start_worker(settings)
    register_file(settings, WORDY)
    calls = documents(["trivia"], "agree")[:240]
    calls[5]["inputs"]["document"] = "one two three four five six seven eight nine ten a b c"
    produce_calls(settings, calls)
    streamed = wait_for_values(
        settings, "wordy", ["words", "size"], covers(calls, ["words", "size"])
    )
    local = run_local(load_topology(WORDY), calls)
    key = lambda v: (v.call_id, v.column, v.op_ref, v.trial)  # noqa: E731
    assert len(local.values) == len(streamed) == 2 * len(calls)
    assert {key(v): (v.value, v.error) for v in streamed} == {
        key(v): (v.value, v.error) for v in local.values
    }


def test_registration_while_calls_flow_loses_none(
    make_settings: Callable[..., Settings], start_worker: Callable[..., WorkerProcess]
) -> None:
    settings = make_settings()
    start_worker(settings)
    calls = documents(["tech_support"], "flowing", 600)
    chunks = [calls[i : i + 25] for i in range(0, len(calls), 25)]
    registered = threading.Event()
    produced: list[dict] = []
    after: list[dict] = []  # calls produced once the registration was acknowledged

    def flow() -> None:
        for chunk in chunks:
            seen_registration = registered.is_set()
            produce_calls(settings, chunk)
            produced.extend(chunk)
            if seen_registration:
                after.extend(chunk)
            time.sleep(0.1)

    producer = threading.Thread(target=flow)
    producer.start()
    wait_until(lambda: len(produced), 30, "calls flowing", until=lambda count: count >= 50)
    register_file(settings, WORDY)
    registered.set()
    producer.join()
    assert len(after) >= 300
    # From now on: every call that arrived after the registration gets its values.
    wait_for_values(settings, "wordy", ["words", "size"], covers(after, ["words", "size"]))


def test_a_second_value_of_an_identity_is_ignored_by_every_reader(
    make_settings: Callable[..., Settings], start_worker: Callable[..., WorkerProcess]
) -> None:
    """The one window where a value can be computed twice: a worker that lost its partition
    mid-batch (rebalance) may still write a batch its successor computes too. For a
    non-deterministic op the two values differ. Every reader keeps the first."""
    settings = make_settings()
    start_worker(settings)
    register_file(settings, WORDY)
    calls = documents(["computers"], "twice")
    produce_calls(settings, calls)
    first = wait_for_values(settings, "wordy", ["words"], covers(calls, ["words"]))
    zombie = [v.model_copy(update={"value": -1}) for v in first]  # what a zombie would write
    produce_records(
        settings,
        [(derived_key(v.call_id, v.trial), v.to_json()) for v in zombie],
        topic=settings.topics.derived("wordy", "words"),
    )
    again = asyncio.run(read_derived(settings, "wordy", ["words"]))
    assert sorted((v.call_id, v.value) for v in again) == sorted(
        (v.call_id, v.value) for v in first
    )
    _, written = asyncio.run(known_results(settings, load_topology(WORDY)))
    assert {key for key in written if key[1] == "words"} == {identity(v) for v in first}
