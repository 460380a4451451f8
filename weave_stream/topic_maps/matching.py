"""Matching a refit's topics to the previous map's, so ids and names carry over.

Centres are matched one to one by the Hungarian algorithm on cosine distance
(:func:`scipy.optimize.linear_sum_assignment`); a pair farther apart than
``max_distance`` is no match (the old topic is *gone*, the new one *born*). Both maps
then assign the refit's calls (nearest centre), which gives the stability (share of
calls whose topic id is the same under both) and the adjusted Rand index; a new
topic that takes at least ``share`` of two or more old topics' calls *merged* them,
an old topic whose calls go to two or more new ones (each at least ``share``) *split*.

>>> import numpy as np
>>> old = np.eye(3, dtype=np.float32)
>>> new = np.array([[0, 1, 0], [1, 0, 0], [0, 0, 1]], dtype=np.float32)
>>> match_centres(old, new, max_distance=0.5)
{0: 1, 1: 0, 2: 2}
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence

import numpy as np
from scipy.optimize import linear_sum_assignment
from sklearn.metrics import adjusted_rand_score

from weave_stream.topic_maps.cluster import unit_rows

__all__ = ["compare_assignments", "match_centres", "nearest"]


def match_centres(old: np.ndarray, new: np.ndarray, max_distance: float) -> dict[int, int]:
    """New centre index -> old centre index, for pairs within ``max_distance`` (cosine)."""
    if len(old) == 0 or len(new) == 0:
        return {}
    distance = 1.0 - unit_rows(new) @ unit_rows(old).T
    rows, cols = linear_sum_assignment(distance)
    return {
        int(r): int(c) for r, c in zip(rows, cols, strict=True) if distance[r, c] <= max_distance
    }


def nearest(vectors: np.ndarray, centres: np.ndarray) -> np.ndarray:
    """The index of the nearest centre (cosine) of each vector."""
    return np.asarray(np.argmax(unit_rows(vectors) @ unit_rows(centres).T, axis=1))


def compare_assignments(
    old_ids: Sequence[int],
    new_ids: Sequence[int],
    share: float = 0.3,
) -> tuple[float, float, dict[int, tuple[int, ...]], dict[int, tuple[int, ...]]]:
    """Stability, ARI, merged (new <- olds) and split (old -> news) of two id assignments."""
    old = np.asarray(old_ids)
    new = np.asarray(new_ids)
    if len(old) == 0:
        return 1.0, 1.0, {}, {}
    stability = float(np.mean(old == new))
    ari = float(adjusted_rand_score(old, new))
    merged = _spread(new, old, share)
    split = _spread(old, new, share)
    return stability, ari, merged, split


def _spread(by: np.ndarray, into: np.ndarray, share: float) -> dict[int, tuple[int, ...]]:
    """For each id of ``by``, the ids of ``into`` holding at least ``share`` of its calls,
    where there are two or more of them."""
    out: dict[int, tuple[int, ...]] = {}
    for key in np.unique(by):
        members = into[by == key]
        counts: Mapping[int, int] = dict(zip(*np.unique(members, return_counts=True), strict=True))
        big = tuple(sorted(int(k) for k, c in counts.items() if c >= share * len(members)))
        if len(big) >= 2:
            out[int(key)] = big
    return out
