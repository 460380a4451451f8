"""A worker's topologies embed through one model: its model service, on the real broker."""

from __future__ import annotations

import json
import re
import urllib.request
from collections.abc import Callable
from pathlib import Path

import numpy as np

from tests.support.records import produce_calls
from tests.support.topologies import covers, documents, register_file, wait_for_values
from weave_stream.config import Settings
from weave_stream.ops.embed_model import load_model
from weave_stream.runners.workers import WorkerProcess

EMBEDS = """\
name: shared_embeds
source: {op_name: text-extract}
columns:
  - {name: embedding, op: embed, args: {text: inputs.document}}
"""
CLASSIFIES = """\
name: shared_topics
source: {op_name: text-extract}
columns:
  - name: topic
    op: classify
    params: {labels: {food: "food, eating and cooking", sports: "sports and games"}}
    args: {text: inputs.document}
"""


def test_two_topologies_of_a_worker_share_one_loaded_model(
    make_settings: Callable[..., Settings],
    start_worker: Callable[..., WorkerProcess],
    tmp_path: Path,
) -> None:
    settings = make_settings()
    worker = start_worker(settings)
    for name, spec in (("shared_embeds", EMBEDS), ("shared_topics", CLASSIFIES)):
        (tmp_path / f"{name}.yaml").write_text(spec)
        register_file(settings, tmp_path / f"{name}.yaml")
    calls = documents(["food", "sports"], "shared-model", count=12)
    produce_calls(settings, calls)
    embedded = wait_for_values(
        settings, "shared_embeds", ["embedding"], covers(calls, ["embedding"]), timeout=180
    )
    topics = wait_for_values(settings, "shared_topics", ["topic"], covers(calls, ["topic"]), 180)

    texts = {c["id"]: c["inputs"]["document"] for c in calls}
    vectors = np.array([v.value for v in embedded], dtype=np.float32)
    expected = load_model().encode([texts[v.call_id] for v in embedded], normalize_embeddings=True)
    assert np.abs(vectors - expected).max() < 1e-5
    assert {v.value["label"] for v in topics} <= {"food", "sports"}

    metrics = worker.metrics()  # the worker's, its topology processes' and its model service's
    loads = {k: v for k, v in metrics.items() if k.startswith("weave_stream_embed_model_loads")}
    assert sum(loads.values()) == 1, loads  # not one per topology process
    embedded_texts = sum(v for k, v in metrics.items() if k.startswith("weave_stream_embed_texts"))
    assert embedded_texts >= 2 * len(calls)  # both topologies' texts went through it
    with urllib.request.urlopen(f"{worker.url}/readyz", timeout=10) as answer:
        components = json.loads(answer.read())["components"]
    assert components["model-service"]["state"] == "ok"
    said = "\n".join(p.read_text() for p in (settings.data_dir / "logs").glob("*model-service.log"))
    assert re.search(r"model service on unix:\S+: \S+.* in (float32|float16), batches of", said)
