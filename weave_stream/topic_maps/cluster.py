"""Clustering embeddings into topics: k-means, with the number of topics chosen by silhouette.

Chosen by measurement (bench/topics.py, five labelled corpora: chatterbot-corpus in
English, Italian and Dutch, ten kinds of text, Wikipedia passages by article):
k-means on unit vectors with k picked by the best cosine silhouette matched or beat
k-means *told* k on structured text; HDBSCAN (scikit-learn) scored 0.40-0.45 on
English against 0.55 and left 26-32 % of documents as noise; a stability-based
choice (the most reproducible k over subsamples) picked k = 2 on three corpora of
five. On flat data (Dutch through an English model) the silhouette peaks at k = 2 by
chance, so :func:`choose_k` falls back to a size floor there. The silhouette is
computed on a seeded sample (``selection_sample``), so choosing k costs the same at
100 k calls as at 2 k; the final k-means runs on every vector.

A refit starts from the previous map's centres (``init``) and keeps the previous k
unless another is clearly better: topics that persist stay where they were, which is
what makes ids carry over (stability on two random halves, bench/topics.py).

>>> import numpy as np
>>> rng = np.random.default_rng(0)
>>> blobs = np.vstack([rng.normal(c, 0.05, (30, 3)) for c in ([1, 0, 0], [0, 1, 0], [0, 0, 1])])
>>> result = cluster(blobs, ClusterParams(seed=0, max_topics=6, min_topic_size=5))
>>> result.k, sorted(np.bincount(result.labels).tolist())
(3, [30, 30, 30])
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import asdict, dataclass, field
from typing import Any

import numpy as np
from sklearn.cluster import KMeans
from sklearn.metrics import silhouette_score

from weave_stream.errors import TopicError

__all__ = [
    "ClusterParams",
    "Clustering",
    "choose_k",
    "cluster",
    "minimum_documents",
    "size_floor",
    "unit_rows",
]

WEAK_STRUCTURE = 0.25  # a best silhouette at or below it: "no substantial structure"


@dataclass(frozen=True)
class ClusterParams:
    """What a fit is told: the seed and the bounds on the number and size of topics."""

    seed: int = 0
    min_topics: int = 2
    max_topics: int = 30
    min_topic_size: int = 5
    selection_sample: int = 2000
    radius_quantile: float = 0.95
    radius_margin: float = 1.25  # new calls of a topic spread a little wider than its fit
    # A radius is at least this quantile of every fitted call's distance to its centre:
    # a topic of (near-)identical documents (templated prompts) has a radius near 0 and
    # would call each variant an outlier (bench/topics.py --parts outliers).
    radius_floor_quantile: float = 0.75
    k: int | None = None  # a fixed number of topics (skips the silhouette search)
    keep_k_within: float = 0.02  # a refit keeps the previous k if its silhouette is this close

    def to_dict(self) -> dict[str, Any]:
        """The parameters as JSON (they are part of the map's ref)."""
        return asdict(self)


@dataclass(frozen=True)
class Clustering:
    """Labels (one per vector), unit centres, radii (cosine distance) and the k search."""

    labels: np.ndarray
    centres: np.ndarray
    radii: np.ndarray
    k: int
    silhouette_by_k: Mapping[int, float] = field(default_factory=dict)


def minimum_documents(params: ClusterParams) -> int:
    """How many documents a fit needs: ``min_topics`` topics of ``min_topic_size`` each."""
    return max(params.min_topics * params.min_topic_size, params.min_topics + 1)


def unit_rows(vectors: Any) -> np.ndarray:
    """``vectors`` as float32 rows of length 1 (zero rows stay zero)."""
    array = np.asarray(vectors, dtype=np.float32)
    norms = np.linalg.norm(array, axis=1, keepdims=True)
    return np.divide(array, norms, out=np.zeros_like(array), where=norms > 0)


def cluster(vectors: Any, params: ClusterParams, init: np.ndarray | None = None) -> Clustering:
    """Cluster ``vectors`` (n x d); ``init``: previous centres to start from (a refit)."""
    data = unit_rows(vectors)
    needed = minimum_documents(params)
    if len(data) < needed:
        raise TopicError(
            f"a topic fit needs at least {needed} documents ({params.min_topics} topics of "
            f"min_topic_size {params.min_topic_size}), got {len(data)}: widen --since or "
            "--where, or lower --min-topic-size"
        )
    scores: dict[int, float] = {}
    if params.k is not None:
        k = params.k
    else:
        k, scores = _choose_k(data, params, init)
    model = KMeans(k, init=_init(data, k, init, params.seed), n_init=1, random_state=params.seed)
    labels = model.fit_predict(data)
    centres = unit_rows(model.cluster_centers_)
    # Radius: a high quantile of the members' distances (so stray members do not make a
    # topic swallow everything around it), at least the map's typical spread (a topic of
    # duplicates has none), with a margin: fresh calls of the same topic fall past the
    # fit's own quantile that often, and they are not outliers.
    distances = 1.0 - np.einsum("ij,ij->i", data, centres[labels])
    floor = float(np.quantile(distances, params.radius_floor_quantile))
    radii = np.array(
        [
            params.radius_margin
            * max(float(np.quantile(distances[labels == topic], params.radius_quantile)), floor)
            if np.any(labels == topic)
            else 0.0
            for topic in range(k)
        ],
        dtype=np.float32,
    )
    return Clustering(labels.astype(np.int64), centres, radii, k, scores)


def _choose_k(
    data: np.ndarray, params: ClusterParams, previous: np.ndarray | None = None
) -> tuple[int, dict[int, float]]:
    rng = np.random.default_rng(params.seed)
    sample = data
    if len(data) > params.selection_sample:
        sample = data[np.sort(rng.choice(len(data), params.selection_sample, replace=False))]
    largest = min(params.max_topics, len(sample) // params.min_topic_size)
    smallest = min(params.min_topics, largest)
    scores: dict[int, float] = {}
    for k in range(max(2, smallest), max(2, largest) + 1):
        labels = KMeans(k, n_init=1, random_state=params.seed).fit_predict(sample)
        if len(set(labels.tolist())) < 2:
            continue
        scores[k] = float(silhouette_score(sample, labels, metric="cosine"))
    previous_k = None if previous is None or len(previous) == 0 else len(previous)
    if previous_k in scores:
        # The previous map's k is scored as a refit would fit it (from its centres), not
        # from a random start: that is the candidate the hysteresis weighs.
        start = _init(sample, previous_k, previous, params.seed)
        warm = KMeans(previous_k, init=start, n_init=1, random_state=params.seed)
        labels = warm.fit_predict(sample)
        if len(set(labels.tolist())) >= 2:
            score = float(silhouette_score(sample, labels, metric="cosine"))
            scores[previous_k] = max(scores[previous_k], score)
    if not scores:
        return max(1, smallest), scores
    return choose_k(scores, len(data), previous_k, params.keep_k_within), scores


def choose_k(
    scores: Mapping[int, float],
    documents: int,
    previous_k: int | None = None,
    keep_within: float = 0.0,
) -> int:
    """The number of topics, from the silhouette of each candidate k.

    The best silhouette, unless the data shows no substantial structure (best at or
    below ``WEAK_STRUCTURE``, Kaufman & Rousseeuw's bound) and that best is a k below
    :func:`size_floor`: on such flat data the silhouette peaks at k = 2 or 3 by chance
    (a shuffled null of the Dutch corpus scores 0.12 at k = 2), and too few topics lose
    far more than a few too many, so k is then the best at or above the floor. A refit
    (``previous_k``) keeps the previous k where its silhouette is within ``keep_within``
    of the chosen one: ids carry over best when the topics' number holds.

    >>> flat = {2: 0.13, 3: 0.10, 6: 0.02, 9: 0.03}
    >>> choose_k(flat, 314), choose_k({2: 0.6, 6: 0.2}, 314)
    (9, 2)
    >>> choose_k({8: 0.100, 10: 0.104}, 2000, previous_k=8, keep_within=0.01)
    8
    """
    best = max(scores, key=lambda k: (scores[k], -k))
    floor = size_floor(documents)
    above = {k: v for k, v in scores.items() if k >= floor}
    if best < floor and scores[best] <= WEAK_STRUCTURE and above:
        best = max(above, key=lambda k: (above[k], -k))
    if (
        previous_k is not None
        and previous_k in scores
        and scores[previous_k] >= scores[best] - keep_within
    ):
        return previous_k
    return best


def size_floor(documents: int) -> int:
    """The fewest topics that flat data of ``documents`` is split into: about one more
    per doubling of the corpus (6 at 300 documents, 8 at 2,000, 14 at 100,000)."""
    return max(2, int(np.log2(max(documents, 8) / 4)))


def _init(data: np.ndarray, k: int, previous: np.ndarray | None, seed: int) -> Any:
    if previous is None or len(previous) == 0:
        return "k-means++"
    start = unit_rows(previous)[:k]
    if len(start) < k:
        # More topics than before: add the points farthest from every previous centre
        # (deterministic, and where new topics are most likely to be).
        nearest = (data @ start.T).max(axis=1)
        order = np.argsort(nearest, kind="stable")
        start = np.vstack([start, data[order[: k - len(start)]]])
    return start
