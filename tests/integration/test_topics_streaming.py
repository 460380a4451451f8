"""A topology's ``topics:`` section in worker processes: the topic column waits for a map,
then assigns; a window of calls whose topic mix moved raises alerts delivered to a webhook."""

from __future__ import annotations

import json
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

from tests.support.records import produce_calls
from tests.support.servers.webhooks import Receiver
from tests.support.topic_maps import CATEGORIES, corpus, fit_test_map
from tests.support.topologies import ASSETS, covers, register_file, wait_for_values
from tests.support.waiting import wait_until
from weave_stream.config import Settings
from weave_stream.runners.workers import WorkerProcess
from weave_stream.topic_maps import MapStore, TopicInputs

HOUR = datetime(2026, 11, 29, 10, 0, tzinfo=UTC)


def as_calls(inputs: TopicInputs, start: datetime) -> list[dict[str, Any]]:
    return [
        {
            "id": call_id,
            "op_name": "text-extract",
            "started_at": (start + timedelta(seconds=10 * i)).isoformat(),
            "ended_at": (start + timedelta(seconds=10 * i + 1)).isoformat(),
            "inputs": {"document": text, "vector": vector.tolist()},
        }
        for i, (call_id, text, vector) in enumerate(
            zip(inputs.call_ids, inputs.texts, inputs.vectors, strict=True)
        )
    ]


def test_the_topic_column_waits_for_its_map_then_assigns_and_alerts_on_a_shift(
    tmp_path: Path,
    make_settings: Callable[..., Settings],
    start_worker: Callable[..., WorkerProcess],
) -> None:
    with Receiver() as hook:
        targets = tmp_path / "targets.yaml"
        targets.write_text(
            json.dumps(
                {
                    "targets": [
                        {
                            "kind": "webhook",
                            "name": "hook",
                            "url": hook.url,
                            "secret": "a-secret-of-the-topics-test",
                        }
                    ]
                }
            )
        )
        settings = make_settings(alert_targets_file=targets)
        worker = start_worker(settings)
        register_file(settings, ASSETS / "topical.py")

        # No map yet: the values say so, and the worker's health says the column waits.
        early, _ = corpus(["money"], per=3, seed=1)
        early_calls = as_calls(early, HOUR - timedelta(hours=5))
        produce_calls(settings, early_calls)
        values = wait_for_values(
            settings, "topical", ["doc_embedding", "topic"], covers(early_calls, ["topic"])
        )
        errors = [v.error or "" for v in values if v.column == "topic"]
        assert all("no topic map for topical.doc_embedding yet" in e for e in errors), errors
        component = "topology/topical/topics/topic"
        waiting = wait_until(
            lambda: worker.readiness()[1]["components"].get(component, {}),
            30,
            f"{component} waiting in the worker's /readyz",
            until=lambda state: state.get("state") == "waiting",
        )
        assert "weave-stream topics fit topical --column doc_embedding" in waiting["detail"]

        # A map fitted beforehand (from the embeddings the worker computes: same op ref).
        embedding_ref = next(v.op_ref for v in values if v.column == "doc_embedding")
        training, truth = corpus(CATEGORIES)
        topic_map = fit_test_map(training, "topical", embedding_ref)
        MapStore(settings.store_location).save(topic_map)
        expected = {
            t: topic_map.assignments[c] for c, t in zip(training.call_ids, truth, strict=True)
        }

        # One hour of calls without sports, and a group of a topic the map does not know.
        shifted, shifted_truth = corpus(["money", "food", "science"], per=27, seed=9)
        born, _ = corpus(["history"], per=12, seed=6)
        window = as_calls(shifted, HOUR) + as_calls(born, HOUR + timedelta(minutes=30))
        produce_calls(settings, window)
        values = wait_for_values(settings, "topical", ["topic"], covers(window, ["topic"]))
        ids = {call["id"] for call in window}
        failed = {v.call_id: v.error for v in values if v.call_id in ids and v.value is None}
        assert not failed, failed  # the map saved before the calls came assigns every one
        topics = {v.call_id: v.value for v in values if v.call_id in ids}
        for call_id, category in zip(shifted.call_ids, shifted_truth, strict=True):
            assert topics[call_id]["topic_id"] == expected[category], call_id
        assert all(topics[c]["topic"] == "outlier" for c in born.call_ids)

        # A call of the next hours: the stream passed the window, so it is checked.
        tick, _ = corpus(["money"], per=1, seed=2)
        produce_calls(settings, as_calls(tick, HOUR + timedelta(hours=2)))

        def delivered() -> dict[str, list[dict[str, Any]]]:
            kinds: dict[str, list[dict[str, Any]]] = {}
            for request in hook.accepted():
                body = json.loads(request.body)
                kinds.setdefault(body["kind"], []).append(body)
            return kinds

        kinds = wait_until(
            delivered,
            30,
            "topic_shift and new_topic alerts at the webhook",
            until=lambda k: "topic_shift" in k and "new_topic" in k,
        )
        sports = topic_map.topic(expected["sports"]).name
        (shift,) = [a for a in kinds["topic_shift"] if a["stats"]["topic"] == sports]
        assert shift["stats"]["observed_share"] == 0 and shift["topology"] == "topical"
        assert shift["monitor"] == "topics:doc_embedding" and shift["count"] >= 1
        (new,) = kinds["new_topic"]
        assert set(new["call_ids"]) <= set(born.call_ids) and new["stats"]["group_size"] == 12
        assert new["excerpt"]  # the document the embedding column read
        metrics = worker.metrics()
        counted = {
            k: v for k, v in metrics.items() if k.startswith("weave_stream_topic_calls_total")
        }
        assert sum(counted.values()) == len(early_calls) + len(window) + 1
        # The column's info series moved to the op ref of the map it follows now.
        (mapped_ref,) = {v.op_ref for v in values if v.call_id in ids and v.column == "topic"}
        info = [k for k in metrics if k.startswith("weave_stream_column_info{")]
        assert [k for k in info if 'column="topic"' in k] == [
            f'weave_stream_column_info{{column="topic",op="topic",op_ref="{mapped_ref}",'
            'topology="topical"}'
        ], info
        wait_until(
            lambda: worker.readiness()[1]["components"],
            10,
            f"{component} ok once its map exists",
            until=lambda components: components[component]["state"] == "ok",
        )
