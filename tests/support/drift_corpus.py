"""Real embeddings of real documents of different kinds, for the drift tests.

Documents are the conversations of ``chatterbot-corpus`` (via
:func:`weave_stream.demo.samples.corpus_documents`), deduplicated: all English ones (the
known kind), and a slice of Japanese ones (a new kind, far from English in the
model's space). They are encoded with the offline all-MiniLM-L6-v2 model,
normalized, through the disk cache of :mod:`tests.support.corpora`.
"""

from __future__ import annotations

import functools
from dataclasses import dataclass

import numpy as np

from tests.support.corpora import embed
from weave_stream.demo.samples import corpus_documents

__all__ = ["Corpus", "corpus"]

JAPANESE_DOCUMENTS = 200


@dataclass(frozen=True)
class Corpus:
    """Texts and their embeddings, per kind."""

    english: list[str]
    english_categories: list[str]
    japanese: list[str]
    english_vectors: np.ndarray
    japanese_vectors: np.ndarray


def _unique(language: str, limit: int | None = None) -> tuple[list[str], list[str]]:
    texts: dict[str, str] = {}
    for document in corpus_documents(language):
        texts.setdefault(document.text, document.category)
    pairs = list(texts.items())[:limit]
    return [text for text, _ in pairs], [category for _, category in pairs]


@functools.cache
def corpus() -> Corpus:
    """The corpus, encoded on first use (cached on disk across runs)."""
    english, categories = _unique("english")
    japanese, _ = _unique("japanese", JAPANESE_DOCUMENTS)

    def encode(texts: list[str]) -> np.ndarray:
        return embed(tuple(texts))  # cached on disk across runs

    return Corpus(
        english=english,
        english_categories=categories,
        japanese=japanese,
        english_vectors=encode(english),
        japanese_vectors=encode(japanese),
    )
