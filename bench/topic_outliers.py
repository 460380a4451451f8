"""Topic radii: how many calls of the fitted kind, and of new kinds, fall outside every topic.

A topic column calls a call an ``outlier`` when it lies beyond its nearest topic's
radius. A radius is ``radius_margin`` (1.25) times the 0.95 quantile of the topic's
fitted distances; the *floor* (``radius_floor_quantile`` 0.75) makes it at least the
map's typical spread, since a topic of (near-)identical documents, such as templated
prompts, has a radius near 0 and calls each variant an outlier. Baseline: no floor
(``radius_floor_quantile=0``), on the same fit, seed by seed.

Per corpus: fit on a random half of the *stable* calls; the share of the other half
flagged (false outliers: lower is better) and the share of each new kind flagged
(higher is better; most new text is absorbed by wide topics, which the ``new_topic``
alert catches as a gathering of outliers and ``topic_shift`` as a moved share).

* ``chat``: chatterbot-corpus English (2026 conversations, many of them repeated
  templates); new kinds: Japanese chatterbot, news, Spanish chat.
* ``mixed``: five kinds of real text of tests/assets/corpora.jsonl.gz (chat, trivia,
  coding, jokes, Python docs; 400 each); new kinds: the seven others there.

Figures: ``topic_false_outliers`` per corpus (value: with the floor; baseline: without)
and ``topic_new_kind_outliers`` per corpus (mean over the new kinds).

Run: ``.venv/bin/python bench/topic_outliers.py [--seeds 3]`` (cached embeddings; the
first run embeds the Japanese corpus, about 10 s).
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from bench.topics import embedded
from tests.support.corpora import NEW_KINDS, STABLE_KINDS, texts
from weave_stream.topic_maps.cluster import ClusterParams, cluster, unit_rows

PER_KIND = 400  # stable texts of each kind in ``mixed``
NEW_PER_KIND = 300


def flagged(vectors: np.ndarray, centres: np.ndarray, radii: np.ndarray) -> float:
    """The share of ``vectors`` beyond their nearest centre's radius."""
    similarity = vectors @ centres.T
    nearest = similarity.argmax(axis=1)
    return float(np.mean(1.0 - similarity.max(axis=1) > radii[nearest]))


def corpora() -> dict[str, tuple[np.ndarray, dict[str, np.ndarray]]]:
    news = {kind: unit_rows(texts(kind).vectors[:NEW_PER_KIND]) for kind in NEW_KINDS}
    mixed = unit_rows(np.vstack([texts(kind).vectors[:PER_KIND] for kind in STABLE_KINDS]))
    chat, _ = embedded("english")
    japanese, _ = embedded("japanese")
    chat_news = {"japanese": japanese, "news": news["news"], "spanish": news["spanish"]}
    return {"chat": (chat, chat_news), "mixed": (mixed, news)}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--seeds", type=int, default=3)
    args = parser.parse_args()
    figures = []
    print(f"{'corpus':<8}{'seed':>5}{'topics':>8}  {'held-out flagged':>17}  new kinds flagged")
    for name, (stable, news) in corpora().items():
        held_floor, held_none, new_floor, new_none = [], [], [], []
        for seed in range(args.seeds):
            order = np.random.default_rng(seed).permutation(len(stable))
            fit, held = stable[order[: len(order) // 2]], stable[order[len(order) // 2 :]]
            with_floor = cluster(fit, ClusterParams(seed=seed))
            # The same fit (the radius does not move the clustering) without the floor.
            without = cluster(fit, ClusterParams(seed=seed, radius_floor_quantile=0.0))
            assert np.array_equal(with_floor.labels, without.labels)
            held_floor.append(flagged(held, with_floor.centres, with_floor.radii))
            held_none.append(flagged(held, without.centres, without.radii))
            kinds_floor = [flagged(x, with_floor.centres, with_floor.radii) for x in news.values()]
            kinds_none = [flagged(x, without.centres, without.radii) for x in news.values()]
            new_floor.append(float(np.mean(kinds_floor)))
            new_none.append(float(np.mean(kinds_none)))
            shown = " ".join(
                f"{kind}={a:.2f}({b:.2f})"
                for kind, a, b in zip(news, kinds_floor, kinds_none, strict=True)
            )
            print(
                f"{name:<8}{seed:>5}{with_floor.k:>8}  {held_floor[-1]:>8.3f} ({held_none[-1]:.3f})"
                f"  {shown}"
            )
        for bench, value, baseline in (
            ("topic_false_outliers", held_floor, held_none),
            ("topic_new_kind_outliers", new_floor, new_none),
        ):
            mean, base = float(np.mean(value)), float(np.mean(baseline))
            figures.append(
                {
                    "bench": bench,
                    "corpus": name,
                    "value": round(mean, 4),
                    "baseline": round(base, 4),
                    "ratio": round(mean / base, 4) if base else None,
                }
            )
    print("(in brackets: without the floor)")
    for figure in figures:
        print(json.dumps(figure))


if __name__ == "__main__":
    main()
