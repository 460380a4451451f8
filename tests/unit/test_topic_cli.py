"""``weave-stream topics plan|fit|show|drill|freeze`` over a store the local runner wrote.

The embedding column is a seeded stand-in for the model (one blob per category of
chatterbot-corpus text), so the test runs in seconds; the stand-in namer answers on
loopback. The model's own embeddings are clustered in bench/topics.py.
"""

from __future__ import annotations

import hashlib
import shutil
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from click.testing import CliRunner, Result

from weave_stream.cli.main import cli
from weave_stream.demo.judge_standin import StandInJudge
from weave_stream.demo.samples import corpus_documents, sample_calls
from weave_stream.errors import TopicError
from weave_stream.ops import op
from weave_stream.query import calls
from weave_stream.runners.local import run_local
from weave_stream.topology.loader import load_topology

CATEGORIES = ("money", "food", "science")
_CENTRES = np.random.default_rng(7).normal(size=(len(CATEGORIES), 32))


@op
def blob_embed(text: str, category: str) -> list[float]:
    """A vector near its category's centre (the demo calls carry it as output.topic)."""
    seed = int(hashlib.sha256(text.encode()).hexdigest()[:8], 16)
    noise = np.random.default_rng(seed).normal(scale=0.3, size=32)
    return [float(x) for x in _CENTRES[CATEGORIES.index(category)] + noise]


@op
def length_score(text: str) -> dict[str, Any]:
    return {"score": min(1.0, len(text) / 200), "reason": "length"}


TOPOLOGY = """
name: topical
source: {op_name: text-extract}
columns:
  - name: doc_embedding
    op: "tests.unit.test_topic_cli:blob_embed"
    args: {text: inputs.document, category: output.topic}
  - {name: quality, op: "tests.unit.test_topic_cli:length_score", args: {text: inputs.document}}
"""


@pytest.fixture(scope="module")
def world(tmp_path_factory: pytest.TempPathFactory) -> Iterator[dict[str, Any]]:
    root = tmp_path_factory.mktemp("topics")
    documents = []
    for category in CATEGORIES:
        documents += corpus_documents("english", [category])[:14]
    (root / "topical.yaml").write_text(TOPOLOGY)
    topology = load_topology(root / "topical.yaml")
    run_local(topology, sample_calls(documents), store=root / "store")
    with StandInJudge() as judge:
        yield {"root": root, "judge": judge}


def run(world: dict[str, Any], *args: str) -> Result:
    root = world["root"]
    options = [
        "--data-dir",
        str(root / "data"),
        "--store-url",
        str(root / "store"),
    ]
    if args[0] in ("fit", "plan"):
        options += ["--judge-base-url", world["judge"].base_url, "--judge-model", "gpt-4o-mini"]
    topology = str(root / "topical.yaml")
    argv = ["topics", args[0], topology, *args[1:], "--column", "doc_embedding", *options]
    return CliRunner().invoke(cli, argv, catch_exceptions=False)


def test_plan_fit_show_drill_and_freeze(world: dict[str, Any]) -> None:
    plan = run(world, "plan", "--max-topics", "6")
    assert plan.exit_code == 0, plan.output
    assert "42 calls -> 3 topics; names cached: 0; LLM calls: 3" in plan.output
    refused = run(world, "fit", "--max-topics", "6", "--budget", "0.0000001")
    assert refused.exit_code == 1 and "over the budget" in refused.output
    fitted = run(world, "fit", "--max-topics", "6", "--fresh")
    assert fitted.exit_code == 0, fitted.output
    assert "3 topics over 42 calls; names: 0 cached, 3 asked" in fitted.output
    again = run(world, "plan", "--max-topics", "6", "--fresh")
    assert "names cached: 3; LLM calls: 0" in again.output and "cost: $0.0000" in again.output
    plot = world["root"] / "topics.png"
    shown = run(world, "show", "--plot", str(plot))
    assert shown.exit_code == 0, shown.output
    assert "not an LLM" in shown.output and "quality_low" in shown.output
    assert plot.read_bytes().startswith(b"\x89PNG")
    # The shares' bucket is a duration like every other one; a zero one is refused.
    assert run(world, "show", "--plot", str(plot), "--every", "30m").exit_code == 0
    zero = run(world, "show", "--plot", str(plot), "--every", "0")
    assert zero.exit_code == 1 and "--every) is '0': write 10m, 1h or 1d" in zero.output
    drilled = run(world, "drill", "0")
    assert drilled.exit_code == 0, drilled.output
    assert "14 calls" in drilled.output and "inputs.document" in drilled.output
    assert run(world, "freeze").exit_code == 0
    frozen = run(world, "fit", "--max-topics", "6")
    assert frozen.exit_code == 1 and "frozen" in frozen.output
    assert run(world, "freeze", "--off").exit_code == 0
    same = run(world, "fit", "--max-topics", "6")
    assert same.exit_code == 0, same.output
    assert "stands: the calls and parameters are those of the current map" in same.output
    refit = run(world, "fit", "--max-topics", "5")  # other parameters: a refit from it
    assert refit.exit_code == 0, refit.output
    assert "stability 1.000" in refit.output and "born [], gone []" in refit.output
    # The calls the map was fitted on hold no surprise: no topic alert.
    watched = run(world, "watch", "--since", "3650d", "--min-calls", "10")
    assert watched.exit_code == 0, watched.output
    assert "42 calls since 3650d" in watched.output and "no topic alerts" in watched.output


def test_an_unknown_column_names_the_columns(world: dict[str, Any], tmp_path: Path) -> None:
    root = world["root"]
    argv = ["topics", "plan", str(root / "topical.yaml"), "--column", "nope"]
    result = CliRunner().invoke(cli, [*argv, "--store-url", str(root / "store")])
    assert result.exit_code == 1
    assert "has no column 'nope'" in result.output and "doc_embedding, quality" in result.output


def test_calls_topics_from_python(world: dict[str, Any], tmp_path: Path) -> None:
    """``calls(...).topics()``: fitted calls keep their fit's topic, new calls get their
    nearest one; the summary counts them per topic (in a copy of the store)."""
    root = world["root"]
    store = tmp_path / "store"
    shutil.copytree(root / "store", store, ignore=shutil.ignore_patterns("topic_maps"))
    query = calls(store=store, columns=["inputs.document", "output.topic"])
    with pytest.raises(TopicError, match="run `weave-stream topics fit topical --column"):
        query.topics("topical", "doc_embedding").to_pandas()
    argv = ["topics", "fit", str(root / "topical.yaml"), "--column", "doc_embedding"]
    options = ["--store-url", str(store), "--data-dir", str(tmp_path / "data")]
    options += ["--judge-base-url", world["judge"].base_url, "--judge-model", "gpt-4o-mini"]
    fitted = CliRunner().invoke(cli, [*argv, "--max-topics", "6", *options])
    assert fitted.exit_code == 0, fitted.output
    documents = [d for c in CATEGORIES for d in corpus_documents("english", [c])[14:18]]
    topology = load_topology(root / "topical.yaml")
    run_local(topology, sample_calls(documents, seed="later"), store=store)

    frame = query.topics("topical", "doc_embedding").to_pandas()
    assert len(frame) == 42 + len(documents) and frame["topic_id"].notna().all()
    assert frame["topic_from"].value_counts().to_dict() == {"fit": 42, "nearest": len(documents)}
    # One topic per category, fitted and new calls alike (the blobs are far apart).
    by_category = frame.groupby("output.topic")["topic"].agg(set)
    assert all(len(names) == 1 for names in by_category) and len(frame["topic"].unique()) == 3
    summary = query.topics("topical", "doc_embedding").summary().set_index("topic")
    counts = frame["topic"].value_counts()
    assert summary["calls"].to_dict() == counts.to_dict()
    assert summary["share"].sum() == pytest.approx(1.0)
    assert summary["fit_size"].tolist() == [14, 14, 14] and "outlier" not in summary.index
