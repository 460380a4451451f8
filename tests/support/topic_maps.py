"""Topic-map test data: seeded 384-d blobs, one per chatterbot-corpus category, each point
carrying a real document of its category (so the stand-in namer reads real text)."""

from __future__ import annotations

import asyncio

import numpy as np

from weave_stream.columns.cache import MemoryCache
from weave_stream.demo.judge_standin import StandInJudge
from weave_stream.demo.samples import corpus_documents
from weave_stream.store.topic_map import TopicMap
from weave_stream.topic_maps import ClusterParams, TopicInputs, TopicNamer, fit_map

__all__ = ["CATEGORIES", "PARAMS", "corpus", "fit_test_map"]

CATEGORIES = ["money", "food", "science", "sports"]
PARAMS = ClusterParams(seed=0, max_topics=8, min_topic_size=5)


def corpus(categories: list[str], per: int = 15, seed: int = 0) -> tuple[TopicInputs, list[str]]:
    """``per`` documents of each category, each a point of its category's blob (384-d)."""
    rng = np.random.default_rng(seed)
    centres = np.random.default_rng(42).normal(size=(len(CATEGORIES) + 2, 384))
    ids, vectors, texts, truth = [], [], [], []
    for category in categories:
        documents = corpus_documents("english", [category])
        centre = centres[[*CATEGORIES, "history", "health"].index(category)]
        for index in range(per):
            ids.append(f"{category}-{seed}-{index}")
            vectors.append(centre + rng.normal(scale=0.3, size=384))
            texts.append(documents[index % len(documents)].text)
            truth.append(category)
    scores = {"quality": [float(i % 5) / 4 for i in range(len(ids))]}
    return TopicInputs(ids, np.asarray(vectors, dtype=np.float32), texts, scores), truth


def fit_test_map(inputs: TopicInputs, topology: str, embedding_ref: str) -> TopicMap:
    """A map of ``inputs`` (column ``doc_embedding``, :data:`PARAMS`) named by the stand-in
    judge, with a fresh cache."""
    with StandInJudge() as judge:
        return asyncio.run(
            fit_map(
                inputs,
                topology=topology,
                column="doc_embedding",
                embedding_ref=embedding_ref,
                params=PARAMS,
                namer=TopicNamer(model="gpt-4o-mini", base_url=judge.base_url),
                cache=MemoryCache(),
            )
        )
