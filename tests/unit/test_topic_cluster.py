"""Choosing the number of topics: the silhouette, a size floor on flat data, and a
refit's hysteresis (the quality on real text is measured in bench/topics.py)."""

from __future__ import annotations

import numpy as np

from weave_stream.topic_maps.cluster import ClusterParams, choose_k, cluster, size_floor


def blobs(count: int, per: int, spread: float, seed: int = 0) -> np.ndarray:
    rng = np.random.default_rng(seed)
    centres = rng.normal(size=(count, 64))
    return np.vstack([c + rng.normal(scale=spread, size=(per, 64)) for c in centres])


def test_flat_data_is_split_into_at_least_the_size_floor() -> None:
    # No structure at all: the silhouette is near 0 at every k and peaks at a small k by
    # chance; a map of 2 topics for 300 documents would hide everything.
    flat = np.random.default_rng(1).normal(size=(300, 64))
    result = cluster(flat, ClusterParams(seed=0, max_topics=8))
    assert max(result.silhouette_by_k.values()) < 0.25
    assert result.k >= size_floor(300) == 6


def test_clear_structure_below_the_floor_is_kept() -> None:
    result = cluster(blobs(2, 150, 0.2), ClusterParams(seed=0, max_topics=8))
    assert result.k == 2
    assert sorted(np.bincount(result.labels).tolist()) == [150, 150]


def test_a_refit_keeps_its_k_unless_another_is_clearly_better() -> None:
    scores = {4: 0.300, 5: 0.305, 6: 0.250}
    assert choose_k(scores, 1000) == 5
    assert choose_k(scores, 1000, previous_k=4, keep_within=0.01) == 4
    assert choose_k(scores, 1000, previous_k=6, keep_within=0.01) == 5
    assert choose_k(scores, 1000, previous_k=9, keep_within=0.01) == 5  # not a candidate
    # Through cluster(): the previous centres' count is the previous k.
    data = blobs(4, 40, 0.3)
    first = cluster(data, ClusterParams(seed=0, max_topics=8))
    again = cluster(data, ClusterParams(seed=0, max_topics=8), init=first.centres)
    assert again.k == first.k == 4
    assert np.array_equal(again.labels, first.labels)


def test_size_floor_grows_slowly_with_the_corpus() -> None:
    assert [size_floor(n) for n in (10, 300, 2_000, 100_000)] == [2, 6, 8, 14]


def test_a_topic_of_duplicates_still_takes_in_their_variants() -> None:
    # Templated prompts: one topic is 30 copies of one document. Its own distances are all
    # 0, so without a floor its radius is 0 and every variant of it would be an outlier.
    rng = np.random.default_rng(11)  # not blobs' seed: the template is no blob's centre
    spread = blobs(3, 60, 0.35, seed=3)
    template = rng.normal(size=64)
    data = np.vstack([spread, np.tile(template, (30, 1))])
    data /= np.linalg.norm(data, axis=1, keepdims=True)
    result = cluster(data, ClusterParams(seed=0, k=4))
    copies = int(result.labels[-1])
    assert np.all(result.labels[-30:] == copies)
    distances = 1.0 - np.einsum("ij,ij->i", data, result.centres[result.labels])
    assert distances[-30:].max() < 1e-3  # the copies sit on their centre
    assert result.radii[copies] > 0.5 * np.median(result.radii)  # the map's spread, not 0
    variant = template + rng.normal(scale=0.2, size=64)
    variant /= np.linalg.norm(variant)
    assert 0.0 < 1.0 - float(variant @ result.centres[copies]) < result.radii[copies]
    # The floor is the map's typical spread, not more: a call far from every topic is out.
    stranger = rng.normal(size=64)
    stranger /= np.linalg.norm(stranger)
    assert np.all(1.0 - result.centres @ stranger > result.radii)
