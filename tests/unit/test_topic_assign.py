"""The topic column on the local runner: nearest topic or ``outlier``, from the stored map."""

from __future__ import annotations

from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from tests.support.topic_maps import CATEGORIES, corpus, fit_test_map
from weave_stream.errors import TopicError
from weave_stream.notify.slack import slack_payload
from weave_stream.ops import op
from weave_stream.runners.local import run_local
from weave_stream.topic_maps import MapStore
from weave_stream.topic_maps.assign import AssignTopic, TopicIndex
from weave_stream.topic_maps.watch import TopicWatch, WindowCall
from weave_stream.topology.spec import Column, Source, Topology


def fitted_store(tmp_path: Path) -> tuple[Path, Any, Any]:
    inputs, truth = corpus(CATEGORIES)
    topic_map = fit_test_map(inputs, "support", "embed:test")
    store = tmp_path / "store"
    MapStore(store).save(topic_map)
    return store, topic_map, (inputs, truth)


@op
def given_vector(vector: list[float]) -> list[float]:
    return vector


def topology(store: Path, **params: Any) -> Topology:
    return Topology(
        name="support",
        source=Source(),
        columns=[
            Column("doc_embedding", given_vector, args={"vector": "inputs.vector"}),
            Column(
                "topic",
                AssignTopic(topology="support", column="doc_embedding", store=str(store), **params),
                args={"embedding": "columns.doc_embedding"},
            ),
        ],
    )


def test_new_calls_get_their_topic_and_far_ones_are_outliers(tmp_path: Path) -> None:
    store, topic_map, (inputs, truth) = fitted_store(tmp_path)
    fresh, fresh_truth = corpus(CATEGORIES, per=5, seed=9)  # new calls from the same topics
    far = np.random.default_rng(3).normal(size=(3, 384)) * 5
    vectors = [*fresh.vectors.tolist(), *far.tolist()]
    calls = [
        {
            "id": f"n{i}",
            "op_name": "predict",
            "started_at": "2026-12-01T00:00:00Z",
            "inputs": {"vector": v},
        }
        for i, v in enumerate(vectors)
    ]
    table = run_local(topology(store), calls)
    values = {v.call_id: v.value for v in table.values if v.column == "topic"}
    expected = {truth[i]: topic_map.assignments[c] for i, c in enumerate(inputs.call_ids)}
    for i, category in enumerate(fresh_truth):
        assert values[f"n{i}"]["topic_id"] == expected[category]
        assert values[f"n{i}"]["topic"] == topic_map.topic(expected[category]).name
    for i in range(len(fresh_truth), len(vectors)):
        assert values[f"n{i}"]["topic"] == "outlier" and values[f"n{i}"]["topic_id"] == -1
        assert values[f"n{i}"]["distance"] > 0.5
    # A restarted worker (a new op) reads the same stored map: same version, same values.
    again = run_local(topology(store), calls)
    assert {v.call_id: v.value for v in again.values if v.column == "topic"} == values
    assert again.values[1].op_ref == table.values[1].op_ref


def test_a_map_of_another_model_or_dimension_is_refused(tmp_path: Path) -> None:
    store, _, _ = fitted_store(tmp_path)
    with pytest.raises(TopicError, match="fitted on embeddings of embed:test, but the column"):
        run_local(topology(store, embedding_ref="embed:other"), [])
    calls = [
        {
            "id": "x",
            "op_name": "p",
            "started_at": "2026-12-01T00:00:00Z",
            "inputs": {"vector": [0.1] * 16},
        }
    ]
    table = run_local(topology(store), calls)
    error = next(v.error for v in table.values if v.column == "topic")
    assert "fitted on 384-d embeddings" in (error or "") and "refit the map" in (error or "")
    with pytest.raises(TopicError, match="run `weave-stream topics fit support"):
        run_local(topology(tmp_path / "empty"), [])


def test_a_vanished_topic_and_gathering_outliers_raise_alerts(tmp_path: Path) -> None:
    _, topic_map, (inputs, truth) = fitted_store(tmp_path)
    index = TopicIndex(topic_map)
    window, window_truth = corpus(["money", "food", "science"], per=20, seed=5)  # no sports
    born, _ = corpus(["history"], per=12, seed=6)  # a topic the map does not know
    vectors = np.vstack([window.vectors, born.vectors])
    ids = [*window.call_ids, *born.call_ids]
    assigned = index.assign(vectors)
    assert all(a["topic_id"] == -1 for a in assigned[len(window_truth) :])
    calls = [
        WindowCall(c, a["topic_id"], v.tolist(), excerpt=c)
        for c, a, v in zip(ids, assigned, vectors, strict=True)
    ]
    alerts = TopicWatch(topic_map, min_calls=40).check(
        calls, time=datetime(2026, 12, 1, tzinfo=UTC)
    )
    kinds = {(a.kind, a.stats.get("topic")) for a in alerts}
    sports = topic_map.assignments[
        next(c for c, t in zip(inputs.call_ids, truth, strict=True) if t == "sports")
    ]
    assert kinds == {("topic_shift", topic_map.topic(sports).name), ("new_topic", None)}
    new = next(a for a in alerts if a.kind == "new_topic")
    assert new.count == 12 and set(new.call_ids) <= set(born.call_ids)
    shift = next(a for a in alerts if a.kind == "topic_shift")
    assert shift.stats["observed_share"] == 0 and shift.stats["expected_share"] == 0.25
    # No call of the topic that left to quote: the alert says what moved instead.
    name = topic_map.topic(sports).name
    assert (
        shift.excerpt
        == f"topic {name!r}: 0% of the window's 72 calls, 25% of the calls the map was fitted on"
    )
    assert "Topic shift" in str(slack_payload(shift, "{call_id}"))
    assert "New topic" in str(slack_payload(new, "{call_id}"))
