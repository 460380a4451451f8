"""register / topologies / backfill / unregister as a user runs them."""

from __future__ import annotations

import asyncio
import json
import re
from collections.abc import Callable

import orjson

from tests.support.cli import weave_stream
from tests.support.records import produce_calls, wait_for_records
from tests.support.topologies import ASSETS, WORDY, covers, documents, wait_for_values
from tests.support.waiting import wait_until
from weave_stream.columns.cache import MemoryCache
from weave_stream.columns.plan import plan_topology
from weave_stream.columns.values import read_derived
from weave_stream.config import Settings
from weave_stream.demo.samples import corpus_documents, sample_calls
from weave_stream.ingest.call import parse_call
from weave_stream.runners.local import batches, run_local
from weave_stream.runners.workers import WorkerProcess
from weave_stream.topology.loader import load_topology


def test_topology_computes_from_registration_on_and_backfill_fills_the_past(
    make_settings: Callable[..., Settings], start_worker: Callable[..., WorkerProcess]
) -> None:
    settings = make_settings()
    start_worker(settings)
    flags = ["--broker", settings.broker or "", "--prefix", settings.topic_prefix]
    past = documents(["gossip"], "past")  # started 2026-11-26T03:00Z onwards
    produce_calls(settings, past)
    wait_for_records(settings, settings.topics.valid, lambda r: len(r) >= len(past))

    registered = weave_stream("register", str(WORDY), *flags)
    assert registered.returncode == 0, registered.stderr
    assert "registered wordy version" in registered.stdout
    later = sample_calls(corpus_documents("english", ["psychology"]), seed="later")
    produce_calls(settings, later)
    wait_for_values(settings, "wordy", ["words", "size"], covers(later, ["words", "size"]))
    computed = {v.call_id for v in asyncio.run(read_derived(settings, "wordy", ["words"]))}
    assert computed.isdisjoint({c["id"] for c in past})  # from now on: not the past

    listing = json.loads(weave_stream("topologies", "--format", "json", *flags).stdout)
    assert [row["name"] for row in listing] == ["wordy"]
    assert listing[0]["version"] in registered.stdout

    window = ["--from", "2026-11-26T00:00:00Z", "--to", "2026-11-27T00:00:00Z"]
    plan = weave_stream("plan", "wordy", *window, *flags)
    assert plan.returncode == 0, plan.stderr
    # The same plan as a local run whose cache holds what the stream computed.
    topology = load_topology(WORDY)
    cache = MemoryCache()
    run_local(topology, later, cache)
    everything = sorted(
        (parse_call(orjson.dumps(call)) for call in past + later),
        key=lambda call: (call.started_at, call.id),  # the backfill's order and batches
    )
    expected = asyncio.run(plan_topology(topology, batches(everything, settings.batch_size), cache))
    assert _total_row(plan.stdout) == _total_row(expected.render())
    assert expected.matched == len(past) + len(later)

    done = weave_stream("backfill", "wordy", *window, *flags)
    assert done.returncode == 0, done.stderr
    # Past values are all written; evaluations are at most what the plan priced (a
    # value whose input depends on another column is priced before that input is known).
    unlucky = [c for c in past + later if len(c["inputs"]["document"].split()) == 13]
    unlucky_later = [c for c in unlucky if c in later]
    computed, written = _backfilled(done.stdout)
    assert 0 < computed <= expected.to_compute
    # Every past value, and the failures of the stream: a failure is retried.
    assert written == 2 * len(past) + len(unlucky_later)
    values = asyncio.run(read_derived(settings, "wordy", ["words", "size"]))
    assert covers(past + later, ["words", "size"])(values)
    # Again: only failures (never cached) are computed again.
    again = weave_stream("backfill", "wordy", *window, *flags)
    computed, written = _backfilled(again.stdout)
    assert written == len(unlucky) > 0  # identical inputs: one evaluation per batch
    assert 1 <= computed <= len(unlucky)

    # A plan over budget refuses to start, and says why with the plan.
    judged = weave_stream("register", str(ASSETS / "judged.yaml"), *flags)
    assert judged.returncode == 0, judged.stderr
    refused = weave_stream("backfill", "judged", *window, "--budget", "0", *flags)
    assert refused.returncode == 1
    assert "not starting" in refused.stderr and "budget" in refused.stderr
    assert "Plan for topology 'judged'" in refused.stdout

    gone = weave_stream("unregister", "wordy", *flags)
    assert gone.returncode == 0 and "unregistered wordy" in gone.stdout
    wait_until(
        lambda: [
            row["name"]
            for row in json.loads(weave_stream("topologies", "--format", "json", *flags).stdout)
        ],
        10,
        "`weave-stream topologies` to list judged alone",
        until=lambda names: names == ["judged"],
        interval=0,
    )


def _total_row(rendered: str) -> list[str]:
    return next(line for line in rendered.splitlines() if line.startswith("total")).split()


def _backfilled(stdout: str) -> tuple[int, int]:
    match = re.search(r"\+ (\d+) computed \+ .*; (\d+) written", stdout)
    assert match, stdout
    return int(match.group(1)), int(match.group(2))
