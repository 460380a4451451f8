"""A drift monitor end to end on real embeddings: English known, then Japanese arrives."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from pathlib import Path

import numpy as np
import pytest

from tests.support.drift_corpus import Corpus, corpus
from weave_stream.drift.findings import Finding
from weave_stream.drift.monitor import DriftMonitor
from weave_stream.drift.observation import Observation, excerpt, observation_from_call
from weave_stream.drift.snapshot import DATA_FILE
from weave_stream.ingest.call import Call
from weave_stream.metrics import MONITOR_LEARNED
from weave_stream.topology.monitors import Monitor

T0 = datetime(2026, 11, 26, tzinfo=UTC)


@pytest.fixture(scope="module")
def documents() -> Corpus:
    """The corpus with English in a random order: its files are sorted by category, and a
    reference of the first categories would make the later ones novel (rightly)."""
    loaded = corpus()
    order = np.random.default_rng(0).permutation(len(loaded.english))
    return Corpus(
        english=[loaded.english[i] for i in order],
        english_categories=[loaded.english_categories[i] for i in order],
        japanese=loaded.japanese,
        english_vectors=loaded.english_vectors[order],
        japanese_vectors=loaded.japanese_vectors,
    )


def spec(**overrides: object) -> Monitor:
    entry = {
        "name": "doc_drift",
        "column": "doc_embedding",
        "text": "inputs.document",
        "reference": {"first_n": 600},
        "calibration_quantile": 0.95,
        "shift": {"calls": 40},
        "cooldown_seconds": 3600,
        "group_by": ["attributes.env"],
        "learning": {"learn_acknowledged": True, "capacity": 10},
        **overrides,
    }
    return Monitor.model_validate(entry)


def reference(documents: Corpus) -> tuple[list[str], np.ndarray]:
    return [f"en-{i}" for i in range(600)], documents.english_vectors[:600]


def observations(
    vectors: np.ndarray, texts: list[str], prefix: str, start: float, env: str = "prod"
) -> list[Observation]:
    return [
        Observation(
            call_id=f"{prefix}-{i}",
            vector=vector,
            time=T0 + timedelta(seconds=start + i),
            group=(("attributes.env", env),),
            text=text,
        )
        for i, (vector, text) in enumerate(zip(vectors, texts, strict=True))
    ]


def run(
    monitor: DriftMonitor, stream: list[Observation], batch: int = 32
) -> tuple[list[bool], list[Finding]]:
    novel: list[bool] = []
    findings: list[Finding] = []
    for start in range(0, len(stream), batch):
        result = monitor.observe(stream[start : start + batch])
        assert [s.call_id for s in result.scores] == [
            o.call_id for o in stream[start : start + batch]
        ]
        novel += [s.novel for s in result.scores]
        findings += result.findings
    findings += monitor.flush(T0 + timedelta(days=1))
    return novel, findings


def test_english_then_japanese_raises_grouped_novelty_and_shift_alerts(documents: Corpus) -> None:
    ids, vectors = reference(documents)
    texts = dict(zip(ids, documents.english[:600], strict=True))
    monitor = DriftMonitor.build("extract", spec(), ids, vectors, excerpt_of=texts.get)
    english = observations(documents.english_vectors[600:], documents.english[600:], "en-new", 0)
    japanese = observations(documents.japanese_vectors, documents.japanese, "ja", 1000)

    novel, findings = run(monitor, english + japanese)

    english_novel, japanese_novel = novel[: len(english)], novel[len(english) :]
    assert np.mean(english_novel) <= 0.05 + 0.04 and np.mean(japanese_novel) >= 0.9
    novelty = [f for f in findings if f.kind == "novel_example"]
    shift = [f for f in findings if f.kind == "distribution_shift"]
    # Every novel example is in exactly one alert, and the storm gave few alerts.
    assert sum(f.count for f in novelty) == sum(novel) and len(novelty) <= 3
    japanese_alert = next(f for f in novelty if f.call_ids[0].startswith("ja-"))
    assert japanese_alert.excerpt and japanese_alert.nearest_known_call in texts
    assert japanese_alert.nearest_known_excerpt == excerpt(texts[japanese_alert.nearest_known_call])
    assert japanese_alert.group_dict == {"attributes.env": "prod"}
    # The shift is seen only once Japanese arrives, by the sliding whitened-mean test.
    assert shift and all(c.startswith("ja-") for f in shift for c in f.call_ids[-1:])
    assert {f.detector for f in shift} == {"sliding_whitened_mean"}
    # Each shows an excerpt of a call of the new kind (the call that tipped its window).
    assert all(f.excerpt in {excerpt(text) for text in documents.japanese} for f in shift)


def test_english_alone_raises_no_distribution_shift(documents: Corpus) -> None:
    ids, vectors = reference(documents)
    monitor = DriftMonitor.build("extract", spec(), ids, vectors)
    english = observations(documents.english_vectors[600:], documents.english[600:], "en-new", 0)

    _, findings = run(monitor, english)

    assert [f for f in findings if f.kind == "distribution_shift"] == []


def test_groups_are_watched_and_alerted_separately(documents: Corpus) -> None:
    ids, vectors = reference(documents)
    monitor = DriftMonitor.build("extract", spec(), ids, vectors)
    half = len(documents.japanese) // 2
    prod = observations(documents.japanese_vectors[:half], documents.japanese[:half], "ja-p", 0)
    staging = observations(
        documents.japanese_vectors[half:], documents.japanese[half:], "ja-s", 0, env="staging"
    )

    _, findings = run(monitor, [o for pair in zip(prod, staging, strict=False) for o in pair])

    groups = {f.group_dict["attributes.env"] for f in findings if f.kind == "novel_example"}
    assert groups == {"prod", "staging"}


def test_a_monitor_reopens_from_its_snapshot_and_rebuilds_a_corrupt_one(
    documents: Corpus, tmp_path: Path
) -> None:
    ids, vectors = reference(documents)
    loads: list[int] = []

    def load_reference() -> tuple[list[str], np.ndarray]:
        loads.append(1)
        return ids, vectors

    first = DriftMonitor.open(
        "extract", spec(), tmp_path, fingerprint="v1", load_reference=load_reference
    )
    again = DriftMonitor.open(
        "extract", spec(), tmp_path, fingerprint="v1", load_reference=load_reference
    )
    assert loads == [1]
    queries = observations(documents.japanese_vectors[:20], documents.japanese[:20], "ja", 0)
    assert [s.distance for s in again.observe(queries).scores] == pytest.approx(
        [s.distance for s in first.observe(queries).scores]
    )
    assert again.scorer.threshold == first.scorer.threshold
    assert again.shift_test is not None and first.shift_test is not None
    assert again.shift_test.threshold == first.shift_test.threshold
    assert again.shift_test.spread == first.shift_test.spread is not None
    assert np.allclose(again.shift_test.mean, first.shift_test.mean)

    (tmp_path / DATA_FILE).write_bytes(b"not an index")
    rebuilt = DriftMonitor.open(
        "extract", spec(), tmp_path, fingerprint="v1", load_reference=load_reference
    )

    assert loads == [1, 1] and len(rebuilt.scorer.index) == 600


def test_acknowledged_examples_are_learned_and_saved_with_the_snapshot(
    documents: Corpus, tmp_path: Path
) -> None:
    ids, vectors = reference(documents)
    monitor = DriftMonitor.build("extract", spec(), ids, vectors)
    japanese = observations(documents.japanese_vectors[:1], documents.japanese[:1], "ja", 0)
    before = MONITOR_LEARNED.labels("extract", "doc_drift", "added")._value.get()

    assert monitor.observe(japanese).scores[0].novel
    assert monitor.acknowledge(["ja-0"]).added == ["ja-0"]
    monitor.save(tmp_path, fingerprint="v1")
    reopened = DriftMonitor.open(
        "extract", spec(), tmp_path, fingerprint="v1", load_reference=lambda: ([], vectors[:0])
    )

    assert MONITOR_LEARNED.labels("extract", "doc_drift", "added")._value.get() == before + 1
    score = reopened.observe(japanese).scores[0]
    assert not score.novel and score.nearest_known_call == "ja-0"


def test_an_observation_reads_group_text_and_time_from_a_call() -> None:
    call = Call.model_validate(
        {
            "id": "c1",
            "op_name": "extract",
            "started_at": "2026-11-26T03:00:00Z",
            "inputs": {"document": "Invoice 7"},
            "attributes": {"env": "prod"},
        }
    )
    monitor_spec = spec(group_by=["attributes.env", "attributes.region"])

    observation = observation_from_call(call, np.ones(4), monitor_spec)

    assert observation.call_id == "c1" and observation.text == "Invoice 7"
    assert observation.group == (("attributes.env", "prod"), ("attributes.region", ""))
    assert observation.time == datetime(2026, 11, 26, 3, tzinfo=UTC)
