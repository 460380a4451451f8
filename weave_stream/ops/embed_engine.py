"""The embedding engine: one model on one device, kept busy with full, sorted batches.

Callers on any thread submit texts; three stages run side by side, so the model
does not wait for Python and a GPU sees full batches::

    submit(texts) ─► requests ─► [planner] gathers requests (waits up to gather_seconds
                                 for a full batch from callers not in it yet), orders
                                 texts by estimated length, cuts chunks of ~token_budget
                                 tokens
        chunks ─► [tokenizer threads] padded tensors (pinned on CUDA), re-cut by true
                                      length to the budget
        tokenized chunks, in order ─► [device thread] copy, forward, mean-pool,
                                      normalise in float32; the next batch is launched
                                      before this one is read back
                                      ─► each text's vector into its request's result

Tokenizing the next chunks overlaps the current forward pass (the fast tokenizer
releases the GIL; each thread has its own copy, since one instance cannot be used
by two threads at once). Vectors are L2-normalised float32 whatever the device and
precision. The model is loaded on first use, once per (device, precision) in a
process (:data:`~weave_stream.ops.embed_model.MODEL_LOADS` counts loads).
"""

from __future__ import annotations

import contextlib
import copy
import logging
import queue
import threading
import time
from collections import defaultdict
from collections.abc import Hashable, Sequence
from concurrent.futures import Future, InvalidStateError, ThreadPoolExecutor
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import numpy.typing as npt

from weave_stream.errors import OpError
from weave_stream.metrics import EMBED_TEXTS, EMBED_TOKENS
from weave_stream.ops.embed_batches import Batch, Chunk, cut_chunk, estimated_tokens, token_batches
from weave_stream.ops.embed_device import DevicePlan
from weave_stream.ops.embed_model import (
    DIMENSIONS,
    MODEL_LOADS,
    MODEL_PACKAGE,
    forward,
    load_model,
    read_back,
    tokenize,
)

__all__ = ["EmbeddingEngine", "EngineStats"]

log = logging.getLogger(__name__)

_STOP = object()
# A caller counts as active (worth waiting for while gathering) this long after its
# last request.
ACTIVE_CALLER_SECONDS = 2.0


@dataclass
class EngineStats:
    """What an engine has done (the service reports these; tests assert on them)."""

    device: str
    precision: str
    model_loads: int = 0  # loads of this engine's (device, precision) model in this process
    requests: int = 0
    texts: int = 0
    batches: int = 0
    tokens: int = 0  # real tokens through the model
    padded_tokens: int = 0  # tokens including padding
    largest_batch_tokens: int = 0  # the most padded tokens of one forward pass
    groups: int = 0  # planner rounds: requests gathered together count once


@dataclass
class _Request:
    texts: list[str]
    budget: int
    vectors: npt.NDArray[np.float32]
    future: Future[npt.NDArray[np.float32]] = field(default_factory=Future)
    remaining: int = 0
    caller: Hashable = None

    @property
    def estimated(self) -> float:
        return sum(estimated_tokens(text) for text in self.texts)


class EmbeddingEngine:
    """Embed texts on ``plan.device``; thread-safe; requests from any thread are batched together.

    >>> from weave_stream.ops.embed_device import plan_device
    >>> engine = EmbeddingEngine(plan_device("cpu"))
    >>> vectors = engine.embed(["hello", "a longer text about invoices"])
    >>> vectors.shape, vectors.dtype.name, engine.stats().texts
    ((2, 384), 'float32', 2)
    >>> engine.close()
    """

    def __init__(self, plan: DevicePlan) -> None:
        self.plan = plan
        self._stats = EngineStats(plan.device, plan.precision)
        self._stats_lock = threading.Lock()
        self._requests: queue.Queue[Any] = queue.Queue()
        # Bounded: the planner runs at most a few chunks ahead of the model, and requests
        # arriving meanwhile are gathered into the next, fuller group.
        self._chunks: queue.Queue[Any] = queue.Queue(maxsize=2 * plan.tokenizer_threads + 2)
        self._pool = (
            ThreadPoolExecutor(plan.tokenizer_threads, thread_name_prefix="weave-stream-tokenize")
            if plan.tokenizer_threads
            else None
        )
        self._local = threading.local()
        self._last_seen: dict[Hashable, float] = {}  # caller -> last request (planner only)
        self._model: Any = None
        self._model_lock = threading.Lock()
        self._texts = EMBED_TEXTS.labels(plan.device)
        self._text_tokens = EMBED_TOKENS.labels(plan.device, "text")
        self._padding_tokens = EMBED_TOKENS.labels(plan.device, "padding")
        self._threads = [
            threading.Thread(target=self._plan_loop, name="weave-stream-embed-plan", daemon=True),
            threading.Thread(
                target=self._device_loop, name="weave-stream-embed-model", daemon=True
            ),
        ]
        for thread in self._threads:
            thread.start()

    # -- the callers' side ---------------------------------------------------------------
    def submit(
        self, texts: Sequence[str], token_budget: int | None = None, caller: Hashable = None
    ) -> Future[npt.NDArray[np.float32]]:
        """A future of the (n, 384) float32 unit vectors of ``texts``.

        ``caller`` names who asks, for gathering (see :meth:`_gather`): the model service
        passes its client's name; requests without one count as one caller.
        """
        request = _Request(
            list(texts),
            token_budget or self.plan.token_budget,
            np.zeros((len(texts), DIMENSIONS), dtype=np.float32),
            remaining=len(texts),
            caller=caller,
        )
        # Running from now on: a caller that stops waiting (an op's timeout cancels the
        # awaiting task) cannot cancel it under the engine's feet.
        request.future.set_running_or_notify_cancel()
        with self._stats_lock:
            self._stats.requests += 1
        if not texts:
            request.future.set_result(request.vectors)
        else:
            self._requests.put(request)
        return request.future

    def embed(
        self, texts: Sequence[str], token_budget: int | None = None, caller: Hashable = None
    ) -> npt.NDArray[np.float32]:
        """The (n, 384) float32 unit vectors of ``texts``, now (blocks this thread)."""
        return self.submit(texts, token_budget, caller).result()

    def stats(self) -> EngineStats:
        """A copy of the counters."""
        with self._stats_lock:
            snapshot = copy.copy(self._stats)
        snapshot.model_loads = MODEL_LOADS[(self.plan.device, self.plan.precision)]
        return snapshot

    def model(self) -> Any:
        """The engine's SentenceTransformer (loaded now if it is not yet)."""
        with self._model_lock:
            if self._model is None:
                started = time.perf_counter()
                self._model = load_model(self.plan.device, self.plan.precision)
                log.info(
                    "embedding model %s on %s (loaded in %.1f s)",
                    MODEL_PACKAGE,
                    self.describe(),
                    time.perf_counter() - started,
                )
            return self._model

    @property
    def kind(self) -> str:
        """``cpu``, ``cuda`` or ``mps``."""
        return self.plan.kind

    def describe(self) -> str:
        """The device (with the GPU's name), precision and batching, in one line."""
        name = ""
        if self.plan.kind == "cuda":
            import torch

            name = f" ({torch.cuda.get_device_name(torch.device(self.plan.device))})"
        return self.plan.describe().replace(self.plan.device, self.plan.device + name, 1)

    def close(self) -> None:
        """Finish what was submitted, then stop the threads."""
        self._requests.put(_STOP)
        for thread in self._threads:
            thread.join(timeout=60)
        if self._pool is not None:
            self._pool.shutdown(wait=False)

    # -- the planner thread ------------------------------------------------------------
    def _plan_loop(self) -> None:
        while True:
            first = self._requests.get()
            if first is _STOP:
                self._chunks.put(_STOP)
                return
            group, stopping = self._gather(first)
            with self._stats_lock:
                self._stats.groups += 1
            try:
                self.model()
                self._dispatch(group)
            except Exception as exc:  # e.g. the model cannot load: every request hears why
                rows = [(request, i) for request in group for i in range(len(request.texts))]
                self._fail(
                    rows, "loading the model for" if self._model is None else "planning", exc
                )
            if stopping:
                self._chunks.put(_STOP)
                return

    def _gather(self, first: _Request) -> tuple[list[_Request], bool]:
        """``first`` and the requests queued behind it. While the batch is not full, wait up
        to ``gather_seconds`` for more, but only for callers that are not all in it yet: a
        caller waiting for its answer sends nothing more (a topology awaits each batch),
        so waiting for it would only add latency."""
        group, tokens = [first], first.estimated
        self._seen(first)
        deadline = time.monotonic() + self.plan.gather_seconds
        while True:
            wait = deadline - time.monotonic()
            waiting_for = self._active() - {request.caller for request in group}
            try:
                if tokens >= first.budget or wait <= 0 or not waiting_for:
                    following = self._requests.get_nowait()
                else:
                    following = self._requests.get(timeout=wait)
            except queue.Empty:
                return group, False
            if following is _STOP:
                return group, True
            group.append(following)
            tokens += following.estimated
            self._seen(following)

    def _seen(self, request: _Request) -> None:
        self._last_seen[request.caller] = time.monotonic()

    def _active(self) -> set[Hashable]:
        """Callers that sent a request within the last few seconds."""
        horizon = time.monotonic() - ACTIVE_CALLER_SECONDS
        for caller in [c for c, at in self._last_seen.items() if at < horizon]:
            del self._last_seen[caller]
        return set(self._last_seen)

    def _dispatch(self, group: list[_Request]) -> None:
        by_budget: dict[int, list[tuple[_Request, int]]] = defaultdict(list)
        for request in group:
            by_budget[request.budget].extend((request, i) for i in range(len(request.texts)))
        for budget, rows in by_budget.items():
            texts = [request.texts[i] for request, i in rows]
            for indexes in token_batches(texts, budget):
                chunk = Chunk([rows[i] for i in indexes], [texts[i] for i in indexes], budget)
                if self._pool is not None:
                    for piece in range(len(chunk.spans)):
                        self._pool.submit(self._tokenize_piece, chunk, piece)
                self._chunks.put(chunk)

    # -- the tokenizer threads ---------------------------------------------------------
    def _tokenize_piece(self, chunk: Chunk, piece: int) -> None:
        try:
            tokenizer = getattr(self._local, "tokenizer", None)
            if tokenizer is None:  # one tokenizer instance cannot serve two threads at once
                tokenizer = self._local.tokenizer = copy.deepcopy(self.model().tokenizer)
            start, end = chunk.spans[piece]
            if chunk.add(piece, self.tokenize(chunk.texts[start:end], tokenizer)):
                chunk.finish(self._cut(chunk))
        except Exception as exc:
            chunk.fail(exc)

    def _tokenize_inline(self, chunk: Chunk) -> list[Batch]:
        for piece, (start, end) in enumerate(chunk.spans):
            chunk.add(piece, self.tokenize(chunk.texts[start:end]))
        return self._cut(chunk)

    def _cut(self, chunk: Chunk) -> list[Batch]:
        pad = self.model().tokenizer.pad_token_id or 0
        # A copy from pinned memory does not wait for the GPU's current work.
        return cut_chunk(chunk, pad, pin=self.plan.kind == "cuda")

    def tokenize(self, texts: list[str], tokenizer: Any = None) -> dict[str, Any]:
        """Features for ``texts`` exactly as the model's own ``preprocess`` makes them."""
        return tokenize(self.model(), texts, tokenizer)

    # -- the device thread -------------------------------------------------------------
    def _device_loop(self) -> None:
        import torch

        torch_device = torch.device(self.plan.device)
        if self.plan.kind == "cuda":
            torch.cuda.set_device(torch_device)  # this thread's launches and events go there
        in_flight: tuple[Batch, Any] | None = None
        while True:
            try:
                chunk = self._chunks.get(block=in_flight is None)
            except queue.Empty:  # nothing else is ready: deliver what is done
                assert in_flight is not None
                self._deliver(*in_flight)
                in_flight = None
                continue
            if chunk is _STOP:
                if in_flight is not None:
                    self._deliver(*in_flight)
                return
            if in_flight is not None and (self._pool is None or not chunk.future.done()):
                self._deliver(*in_flight)  # rather than hold it while the next is tokenized
                in_flight = None
            try:
                batches = chunk.future.result() if self._pool else self._tokenize_inline(chunk)
            except Exception as exc:
                self._fail(chunk.rows, "tokenizing", exc)
                continue
            for batch in batches:
                try:
                    output = forward(self._model, batch.features, torch_device)
                except Exception as exc:
                    self._fail(batch.rows, "running the model on", exc)
                    continue
                if in_flight is not None:
                    self._deliver(*in_flight)  # after the next batch is launched: no GPU gap
                in_flight = (batch, output)

    def _deliver(self, batch: Batch, output: Any) -> None:
        try:
            vectors = read_back(output)
        except Exception as exc:  # a failure of an asynchronous launch surfaces here
            self._fail(batch.rows, "running the model on", exc)
            return
        with self._stats_lock:  # counted before any caller hears back
            stats = self._stats
            stats.texts += len(batch.rows)
            stats.batches += 1
            stats.tokens += batch.tokens
            stats.padded_tokens += batch.padded
            stats.largest_batch_tokens = max(stats.largest_batch_tokens, batch.padded)
        self._texts.inc(len(batch.rows))
        self._text_tokens.inc(batch.tokens)
        self._padding_tokens.inc(batch.padded - batch.tokens)
        by_request: dict[int, tuple[_Request, list[int], list[int]]] = {}
        for position, (request, index) in enumerate(batch.rows):
            entry = by_request.setdefault(id(request), (request, [], []))
            entry[1].append(position)
            entry[2].append(index)
        for request, positions, indexes in by_request.values():
            if request.future.done():  # it failed on another batch
                continue
            request.vectors[indexes] = vectors[positions]
            request.remaining -= len(indexes)
            if request.remaining == 0:
                with contextlib.suppress(InvalidStateError):  # failed meanwhile, elsewhere
                    request.future.set_result(request.vectors)

    def _fail(self, rows: list[tuple[_Request, int]], stage: str, exc: BaseException) -> None:
        log.error("embedding failed %s a batch on %s: %r", stage, self.plan.device, exc)
        for request in {id(request): request for request, _ in rows}.values():
            with contextlib.suppress(InvalidStateError):  # answered meanwhile, elsewhere
                request.future.set_exception(_failure(stage, len(rows), exc, self.plan.device))


def _failure(stage: str, size: int, exc: BaseException, device: str = "") -> OpError:
    where = f" on {device}" if device else ""
    if isinstance(exc, OpError):
        return exc
    return OpError(
        f"embedding failed while {stage} a batch of {size} text{'s' * (size != 1)}{where}: "
        f"{type(exc).__name__}: {exc}"
    )
