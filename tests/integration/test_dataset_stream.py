"""A topology's "from now on" dataset on the real broker: each matching call once, under SIGKILL.

The topology worker writes the calls its rule keeps to ``<prefix>.datasets``; the store
sink adds them with its offsets in one Delta commit per batch. Workers are SIGKILLed
while they add rows; afterwards the dataset holds exactly the calls the rule keeps
(its filter, its sampling), at most the cap per day, each once.
"""

from __future__ import annotations

import asyncio
import threading
import time
from collections import Counter
from collections.abc import Callable
from datetime import UTC, datetime

from tests.support.records import produce_calls
from tests.support.topologies import ASSETS, register_file
from tests.support.waiting import wait_until
from weave_stream.broker.kafka import highwaters
from weave_stream.config import Settings
from weave_stream.datasets import Dataset
from weave_stream.demo.samples import corpus_documents, sample_calls
from weave_stream.runners.workers import WorkerProcess
from weave_stream.store import Store
from weave_stream.topology.loader import load_topology

ASSET = ASSETS / "wordy_datasets.py"
CAP = 20


def dataset_rows(settings: Settings) -> list[dict]:
    store = Store(settings.store_location)
    if "datasets" not in store.present():
        return []
    versions = store.table("datasets").to_pyarrow_table(columns=["kind"]).column("kind")
    if "version" not in versions.to_pylist():
        return []
    return Dataset("wordy-docs", store).rows()


def sink_caught_up(settings: Settings) -> bool:
    """Whether the store holds the sink's commit of every record on the datasets topic."""
    ends = asyncio.run(highwaters(settings, settings.topics.datasets))
    store = Store(settings.store_location)
    app_ids = {f"{settings.topics.datasets}:{p}": end for p, end in ends.items() if end}
    found = store.transaction_versions("datasets", list(app_ids))
    return all(found[a] == end - 1 for a, end in app_ids.items())


def test_a_from_now_on_dataset_adds_each_kept_call_once_under_sigkill(
    make_settings: Callable[..., Settings], start_worker: Callable[..., WorkerProcess]
) -> None:
    (rule,) = load_topology(ASSET).dataset_rules
    docs = corpus_documents("english", ["tech_support", "trivia", "money", "food"])
    day_a = sample_calls(docs[:200], seed="sets-a", start=datetime(2026, 11, 26, 3, tzinfo=UTC))
    day_b = sample_calls(docs[200:220], seed="sets-b", start=datetime(2026, 11, 27, tzinfo=UTC))
    calls = day_a + day_b

    def kept(day: list[dict]) -> set[str]:
        wordy = [c for c in day if len(c["inputs"]["document"].split()) > 8]
        return {c["id"] for c in wordy if rule.sampled(c["id"])}

    kept_a, kept_b = kept(day_a), kept(day_b)
    assert len(kept_a) > CAP > len(kept_b) > 0  # the cap binds on day A only
    assert len(kept_a) < sum(len(c["inputs"]["document"].split()) > 8 for c in day_a)
    settings = make_settings(store_batch_seconds=0.2, store_batch_rows=30, batch_size=16)
    worker = start_worker(settings, "sets")
    register_file(settings, ASSET)
    producer = threading.Thread(
        target=lambda: [
            (produce_calls(settings, calls[i : i + 20]), time.sleep(0.3))
            for i in range(0, len(calls), 20)
        ]
    )
    producer.start()
    # SIGKILL while the sink is adding rows
    wait_until(
        lambda: len(dataset_rows(settings)), 120, "the first dataset rows", until=lambda n: n >= 5
    )
    worker.kill()
    worker = start_worker(settings, "sets")
    producer.join()
    want = CAP + len(kept_b)
    rows = wait_until(
        lambda: (dataset_rows(settings), sink_caught_up(settings)),
        180,
        f"{want} dataset rows and the sink caught up",
        until=lambda found: len(found[0]) >= want and found[1],
        interval=0.5,
        describe=lambda found: (len(found[0]), found[1]),
    )[0]
    by_call = Counter(row["source_call"] for row in rows)
    assert set(by_call.values()) == {1}  # each call at most once, SIGKILLs and all
    assert {c for c in by_call if c in kept_b} == kept_b  # under the cap: every kept call
    assert len([c for c in by_call if c in kept_a]) == CAP  # over it: the cap
    assert set(by_call) <= kept_a | kept_b  # nothing the rule did not keep
    documents = {c["id"]: c["inputs"]["document"] for c in calls}
    for row in rows:
        assert row["document"] == documents[row["source_call"]]
        assert row["words"] == len(row["document"].split())
        assert row["source_ref"] == f"weave:///acme/support-bot/call/{row['source_call']}"
    versions = Dataset("wordy-docs", Store(settings.store_location)).versions()
    assert [v.version for v in versions] == list(range(len(versions)))
    assert len(versions) < len(rows)  # batched: not a version per row
    assert versions[-1].mapping == {"document": "inputs.document", "words": "wordy_sets.words"}
