"""Cutting texts into model batches: similar lengths together, a token budget per batch.

A batch is padded to its longest text, so batching texts of mixed lengths by count
wastes most of the model's work on padding. Texts are first ordered by *estimated*
length (4 characters a token: no tokenizer needed, so this runs before
tokenization) and cut into chunks of about ``token_budget`` padded tokens; once a
chunk is tokenized, its *true* lengths re-sort and re-cut it so that no forward
pass exceeds the budget (:func:`split_to_budget`).

>>> token_batches(["a" * 400, "b", "c" * 40, "d"], token_budget=40)
[[1, 3, 2], [0]]
>>> [rows.tolist() for rows in split_to_budget(np.array([9, 3, 4, 3]), token_budget=8)]
[[1, 3], [2], [0]]
"""

from __future__ import annotations

import threading
from collections.abc import Mapping, Sequence
from concurrent.futures import Future
from dataclasses import dataclass
from typing import Any

import numpy as np
import numpy.typing as npt

__all__ = [
    "MAX_TOKENS",
    "TOKENIZE_TEXTS",
    "Batch",
    "Chunk",
    "cut_chunk",
    "estimated_tokens",
    "merge_features",
    "split_to_budget",
    "take_rows",
    "token_batches",
]

MAX_TOKENS = 256  # the model truncates longer texts
# Texts one tokenizer thread takes at a time: a GPU batch (hundreds of texts) is
# tokenized by several threads at once, and its forward pass starts sooner.
TOKENIZE_TEXTS = 64
Row = tuple[Any, int]  # (whose text: a request, which of its texts)


@dataclass
class Batch:
    """One forward pass: its rows, their padded features, real and padded token counts."""

    rows: list[Row]
    features: dict[str, Any]
    tokens: int
    padded: int


class Chunk:
    """Texts for about one forward pass, tokenized in pieces of :data:`TOKENIZE_TEXTS`
    (by several threads at once); the piece that completes it cuts its batches."""

    def __init__(self, rows: list[Row], texts: list[str], budget: int) -> None:
        self.rows = rows
        self.texts = texts
        self.budget = budget
        step = TOKENIZE_TEXTS
        self.spans = [(a, min(a + step, len(texts))) for a in range(0, len(texts), step)]
        self.pieces: list[dict[str, Any] | None] = [None] * len(self.spans)
        self.future: Future[list[Batch]] = Future()
        self._left = len(self.spans)
        self._lock = threading.Lock()

    def add(self, piece: int, features: dict[str, Any]) -> bool:
        """Store a tokenized piece; True for the piece that completes the chunk."""
        with self._lock:
            self.pieces[piece] = features
            self._left -= 1
            return self._left == 0

    def finish(self, batches: list[Batch]) -> None:
        with self._lock:
            if not self.future.done():
                self.future.set_result(batches)

    def fail(self, exc: BaseException) -> None:
        with self._lock:
            if not self.future.done():
                self.future.set_exception(exc)


def cut_chunk(chunk: Chunk, pad_token_id: int, pin: bool = False) -> list[Batch]:
    """A tokenized chunk's batches: rows sorted by true length, each within its budget
    (``pin``: in page-locked memory, for copies to a GPU that do not wait)."""
    pieces = [piece for piece in chunk.pieces if piece is not None]
    features = merge_features(pieces, pad_token_id)
    lengths = features["attention_mask"].sum(dim=1).numpy()
    batches = []
    for part in split_to_budget(lengths, chunk.budget):
        width = int(lengths[part].max())
        taken = take_rows(features, part, width)
        if pin:
            taken = {k: v.pin_memory() if hasattr(v, "pin_memory") else v for k, v in taken.items()}
        rows = [chunk.rows[i] for i in part.tolist()]
        batches.append(Batch(rows, taken, int(lengths[part].sum()), len(part) * width))
    return batches


def estimated_tokens(text: str) -> float:
    """Estimated tokens of ``text`` as the model sees it (with its two special tokens)."""
    return min(len(text) / 4 + 2, MAX_TOKENS)


def token_batches(texts: Sequence[str], token_budget: int) -> list[list[int]]:
    """Indices of ``texts`` in batches of similar length, each padded to about
    ``token_budget`` estimated tokens (a text longer than the budget gets a batch of
    its own), shortest first."""
    order = sorted(range(len(texts)), key=lambda i: len(texts[i]))
    batches: list[list[int]] = []
    for index in order:
        # Sorted by length, so this text is the longest of the batch it joins.
        if batches and (len(batches[-1]) + 1) * estimated_tokens(texts[index]) <= token_budget:
            batches[-1].append(index)
        else:
            batches.append([index])
    return batches


def split_to_budget(lengths: npt.NDArray[np.integer[Any]], token_budget: int) -> list[np.ndarray]:
    """Row indices of a tokenized chunk, by true length, cut so that each part padded to
    its longest row holds at most ``token_budget`` tokens (a row longer than the budget
    is a part of its own)."""
    order = np.argsort(lengths, kind="stable")
    parts: list[np.ndarray] = []
    start = 0
    for end in range(1, len(order) + 1):
        if end < len(order) and (end - start + 1) * int(lengths[order[end]]) <= token_budget:
            continue
        parts.append(order[start:end])
        start = end
    return parts


def take_rows(features: Mapping[str, Any], rows: np.ndarray, width: int) -> dict[str, Any]:
    """The ``rows`` of a padded batch of tokenizer ``features``, trimmed to ``width``
    columns (every tensor of shape (rows, tokens) is cut; other entries are kept)."""
    import torch

    index = torch.from_numpy(rows)
    taken: dict[str, Any] = {}
    for name, value in features.items():
        if isinstance(value, torch.Tensor) and value.dim() == 2:
            taken[name] = value.index_select(0, index)[:, :width].contiguous()
        else:
            taken[name] = value
    return taken


def merge_features(parts: Sequence[Mapping[str, Any]], pad_token_id: int = 0) -> dict[str, Any]:
    """Padded tokenizer ``features`` of several sub-batches as one, padded to the widest
    (as the tokenizer pads: ``pad_token_id`` in ``input_ids``, 0 elsewhere)."""
    import torch

    if len(parts) == 1:
        return dict(parts[0])
    merged: dict[str, Any] = {}
    width = max(int(part["attention_mask"].shape[1]) for part in parts)
    for name, value in parts[0].items():
        if isinstance(value, torch.Tensor) and value.dim() == 2:
            merged[name] = torch.cat(
                [
                    torch.nn.functional.pad(
                        part[name],
                        (0, width - part[name].shape[1]),
                        value=pad_token_id if name == "input_ids" else 0,
                    )
                    for part in parts
                ]
            )
        else:
            merged[name] = value
    return merged
