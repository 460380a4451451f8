"""Topics: quality against true categories, stability of refits, fit time at 100 k.

Corpora (real labelled text shipped in a package, nothing downloaded): the
conversations of chatterbot-corpus in English (2026 documents, 21 categories),
Italian (562, 19) and Dutch (314, 16); from tests/assets/corpora.jsonl.gz, ``kinds``
(200 texts of each of ten kinds, labelled by kind: 1893, 10) and ``encyclopedia``
(Wikipedia passages labelled by article: 1000, 92). All embedded with
all-MiniLM-L6-v2 (cached under ~/.cache/weave-stream/, keyed by the texts' digest).
Dutch through an English model is nearly flat; kinds is well separated; encyclopedia
has more categories than a map's ``max_topics``.

Figures, one JSON line each:

* ``topics_ami_vs_kmeans`` per corpus: adjusted mutual information between the
  topics of weave-stream's fit (k-means, k chosen by silhouette, *not told* the
  number of categories) and the true categories; baseline: plain k-means *told* the
  true number (scikit-learn, same seed), interleaved seed by seed. Goal: ratio >= 1.
* ``topics_refit_stability`` per corpus: fit on one random half, refit on the other
  half from that map; the share of the second half's documents whose topic carries
  over (their id under the old map's nearest centre equals their new id). Baseline:
  the same refit started cold (no previous centres). Goal >= 0.8.
* ``topics_fit_seconds_100k``: the fit without the LLM step (k search + k-means +
  radii) on 100 k 384-d vectors (the English embeddings resampled with noise).
* ``topic_column_vs_embed``: the local runner over ``--column-calls`` English calls
  with the embed column alone (baseline) and with the topic column beside it
  (subject), fresh caches, interleaved over ``--rounds``; ratio = baseline seconds /
  subject seconds (throughput kept). Goal >= 0.95.

Run: ``.venv/bin/python bench/topics.py [--seeds 3] [--rows 100000] [--parts ...]
[--corpora english,dutch]``.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import os
import sys
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from sklearn.cluster import KMeans
from sklearn.metrics import adjusted_mutual_info_score

from weave_stream.demo.samples import corpus_documents
from weave_stream.topic_maps.cluster import ClusterParams, cluster, unit_rows
from weave_stream.topic_maps.matching import compare_assignments, match_centres, nearest

CORPORA = ("english", "italian", "dutch", "kinds", "encyclopedia")
MIXED_PER_KIND = 200  # the "kinds" corpus: the first 200 texts of each of ten kinds
CACHE = Path.home() / ".cache/weave-stream/bench-topics"


def embedded(language: str) -> tuple[np.ndarray, np.ndarray]:
    """Unit embeddings and category labels of one corpus (a chatterbot language, or one
    built from tests/assets/corpora.jsonl.gz: ``kinds``, ``encyclopedia``)."""
    if language in ("kinds", "encyclopedia"):
        return _assets(language)
    documents = corpus_documents(language)
    texts = [d.text for d in documents]
    digest = hashlib.sha256("\0".join(texts).encode()).hexdigest()[:16]
    path = CACHE / f"{language}-{digest}.npy"
    if path.exists():
        vectors = np.load(path)
    else:
        os.environ.setdefault("HF_HUB_OFFLINE", "1")
        from weave_stream.ops.embed import encode_sync

        started = time.perf_counter()
        vectors = np.asarray(encode_sync(texts), dtype=np.float32)
        print(
            f"  embedded {len(texts)} {language} documents in {time.perf_counter() - started:.0f}s"
        )
        CACHE.mkdir(parents=True, exist_ok=True)
        np.save(path, vectors)
    return unit_rows(vectors), np.asarray([d.category for d in documents])


def _assets(name: str) -> tuple[np.ndarray, np.ndarray]:
    """``kinds``: ten kinds of text (chat, trivia, coding, jokes, Python docs, news,
    reviews, encyclopedia, Spanish and German chat), labelled by kind: well separated,
    few categories. ``encyclopedia``: Wikipedia passages labelled by article (92): many
    fine categories, more than a map's ``max_topics``."""
    from tests.support.corpora import NEW_KINDS, STABLE_KINDS, texts

    if name == "encyclopedia":
        found = texts("encyclopedia")
        return unit_rows(found.vectors), np.asarray(found.labels)
    vectors, labels = [], []
    for kind in STABLE_KINDS + NEW_KINDS:
        some = texts(kind).vectors[:MIXED_PER_KIND]
        vectors.append(some)
        labels += [kind] * len(some)
    return unit_rows(np.vstack(vectors)), np.asarray(labels)


def topics_of(
    vectors: np.ndarray, seed: int, init: np.ndarray | None = None
) -> tuple[np.ndarray, np.ndarray]:
    result = cluster(vectors, ClusterParams(seed=seed), init=init)
    return result.labels, result.centres


def stability(vectors: np.ndarray, seed: int, warm: bool) -> float:
    """Fit on one half, refit on the other (warm: from the first map's centres)."""
    order = np.random.default_rng(seed).permutation(len(vectors))
    first, second = vectors[order[: len(order) // 2]], vectors[order[len(order) // 2 :]]
    _, old_centres = topics_of(first, seed)
    labels, new_centres = topics_of(second, seed, init=old_centres if warm else None)
    matched = match_centres(old_centres, new_centres, max_distance=0.35)
    new_ids = [matched.get(label, 1000 + label) for label in labels.tolist()]
    old_ids = nearest(second, old_centres).tolist()
    share, _, _, _ = compare_assignments(old_ids, new_ids)
    return share


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--seeds", type=int, default=3)
    parser.add_argument("--rows", type=int, default=100_000)
    parser.add_argument("--column-calls", type=int, default=256)
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--parts", default="quality,fit,column")
    parser.add_argument("--corpora", default=",".join(CORPORA), help="of " + ", ".join(CORPORA))
    args = parser.parse_args()
    parts = set(args.parts.split(","))
    figures = []
    if "quality" in parts:
        figures += quality(args.seeds, args.corpora.split(","))
    if "fit" in parts:
        figures.append(fit_time(args.rows))
    if "column" in parts:
        figures.append(column_cost(args.column_calls, args.rounds))
    for figure in figures:
        print(json.dumps(figure))


def quality(seeds: int, corpora: list[str]) -> list[dict[str, object]]:
    """AMI against true categories and refit stability, per corpus."""
    figures: list[dict[str, object]] = []
    print(
        f"{'corpus':<10}{'docs':>6}{'cats':>6}{'topics':>8}{'AMI':>8}{'kmeans@k':>10}"
        f"{'stab warm':>11}{'stab cold':>11}"
    )
    for language in corpora:
        vectors, labels = embedded(language)
        categories = len(set(labels.tolist()))
        ours, told, ks, warm, cold = [], [], [], [], []
        for seed in range(seeds):  # interleaved: baseline and subject per seed
            baseline = KMeans(categories, n_init=1, random_state=seed).fit_predict(vectors)
            told.append(adjusted_mutual_info_score(labels, baseline))
            found, centres = topics_of(vectors, seed)
            ours.append(adjusted_mutual_info_score(labels, found))
            ks.append(len(centres))
            cold.append(stability(vectors, seed, warm=False))
            warm.append(stability(vectors, seed, warm=True))
        ami, base = float(np.mean(ours)), float(np.mean(told))
        print(
            f"{language:<10}{len(vectors):>6}{categories:>6}{np.mean(ks):>8.1f}{ami:>8.3f}"
            f"{base:>10.3f}{np.mean(warm):>11.3f}{np.mean(cold):>11.3f}"
        )
        figures.append(
            {
                "bench": "topics_ami_vs_kmeans",
                "corpus": language,
                "value": round(ami, 4),
                "baseline": round(base, 4),
                "ratio": round(ami / base, 4),
                "topics": float(np.mean(ks)),
                "categories": categories,
            }
        )
        figures.append(
            {
                "bench": "topics_refit_stability",
                "corpus": language,
                "value": round(float(np.mean(warm)), 4),
                "baseline": round(float(np.mean(cold)), 4),
                "ratio": round(float(np.mean(warm)) / float(np.mean(cold)), 4),
            }
        )
    return figures


def fit_time(rows: int) -> dict[str, object]:
    """Seconds to fit ``rows`` 384-d vectors, without naming."""
    english, _ = embedded("english")
    rng = np.random.default_rng(0)
    picks = english[rng.integers(0, len(english), rows)]
    big = unit_rows(picks + rng.normal(scale=0.4 / np.sqrt(384), size=picks.shape))
    started = time.perf_counter()
    result = cluster(big, ClusterParams(seed=0))
    seconds = time.perf_counter() - started
    print(f"fit of {rows} x 384 without the LLM step: {seconds:.1f}s ({result.k} topics)")
    return {
        "bench": "topics_fit_seconds_100k",
        "rows": rows,
        "value": round(seconds, 2),
        "baseline": None,
        "ratio": None,
        "topics": result.k,
    }


def column_cost(count: int, rounds: int) -> dict[str, object]:
    """The local runner with the embed column alone, then with the topic column too."""
    import asyncio
    import tempfile

    from weave_stream.columns.cache import MemoryCache
    from weave_stream.demo.judge_standin import StandInJudge
    from weave_stream.demo.samples import sample_calls
    from weave_stream.ops.embed import Embed
    from weave_stream.runners.local import run_local
    from weave_stream.topic_maps import MapStore, TopicInputs, TopicNamer, fit_map
    from weave_stream.topic_maps.assign import AssignTopic
    from weave_stream.topology.spec import Column, Source, Topology

    vectors, _ = embedded("english")
    documents = corpus_documents("english")
    embed = Embed()
    store = tempfile.mkdtemp()
    ids = [f"c{i}" for i in range(len(vectors))]
    inputs = TopicInputs(ids, vectors, [d.text for d in documents])
    with StandInJudge() as judge:
        topic_map = asyncio.run(
            fit_map(
                inputs,
                topology="bench",
                column="doc_embedding",
                embedding_ref=embed.ref,
                params=ClusterParams(seed=0),
                cache=MemoryCache(),
                namer=TopicNamer(model="gpt-4o-mini", base_url=judge.base_url),
            )
        )
    MapStore(store).save(topic_map)
    picks = np.random.default_rng(1).choice(len(documents), count, replace=False)
    calls = sample_calls([documents[i] for i in picks], seed="bench-topics")
    embed_column = Column("doc_embedding", embed, args={"text": "inputs.document"})
    topic_column = Column(
        "topic",
        AssignTopic(topology="bench", column="doc_embedding", embedding_ref=embed.ref, store=store),
        args={"embedding": "columns.doc_embedding"},
    )
    alone = Topology(name="bench", source=Source(), columns=[embed_column])
    both = Topology(name="bench", source=Source(), columns=[embed_column, topic_column])
    run_local(both, calls[:8])  # load the model and the map before timing
    times: dict[str, list[float]] = {"embed": [], "embed+topic": []}
    for _ in range(rounds):
        for name, topology in (("embed", alone), ("embed+topic", both)):
            started = time.perf_counter()
            table = run_local(topology, calls, MemoryCache())
            times[name].append(time.perf_counter() - started)
            failed = [v.error for v in table.values if v.error]
            if failed:
                raise SystemExit(f"{len(failed)} values failed, e.g. {failed[0]}")
    base, subject = float(np.median(times["embed"])), float(np.median(times["embed+topic"]))
    print(f"{count} calls: embed {base:.2f}s, embed+topic {subject:.2f}s (median of {rounds})")
    # The topic column's own cost, without the model's noise: the same two topologies
    # over 1000 calls whose embeddings are already in the cache.
    many = sample_calls(documents[:1000], seed="bench-topics-own")
    warm = MemoryCache()
    run_local(alone, many, warm)
    own: dict[str, list[float]] = {"embed": [], "embed+topic": []}
    for _ in range(rounds):
        for name, topology in (("embed", alone), ("embed+topic", both)):
            cache = MemoryCache()
            asyncio.run(cache.put_many(warm._values))
            started = time.perf_counter()
            run_local(topology, many, cache)
            own[name].append(time.perf_counter() - started)
    topic_ms = (float(np.median(own["embed+topic"])) - float(np.median(own["embed"]))) / 1000 * 1e3
    print(f"the topic column's own cost: {topic_ms:.3f} ms per call (embeddings cached)")
    return {
        "bench": "topic_column_vs_embed",
        "value": round(count / subject, 2),
        "baseline": round(count / base, 2),
        "ratio": round(base / subject, 4),
        "unit": "calls/s",
        "topic_ms_per_call": round(topic_ms, 4),
        "embed_ms_per_call": round(base / count * 1e3, 2),
    }


if __name__ == "__main__":
    main()
