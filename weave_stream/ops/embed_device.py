"""Where the embedding model runs and how: device, precision, batch sizes.

The settings ``device`` (``auto``, ``cpu``, ``cuda``, ``cuda:N``, ``mps``) and
``precision`` (``auto``, ``float32``, ``float16``, ``bfloat16``) say what the user
asked; :func:`plan_device` turns them, and what this machine's torch can use
(:class:`Accelerators`), into a :class:`DevicePlan`, or raises a
:class:`~weave_stream.errors.ConfigError` that names the fix. ``auto`` is a CUDA GPU,
else Apple's MPS, else the CPU; half precision on a GPU, float32 on the CPU. Vectors
leave the model as normalised float32 whatever the plan (see ``embed_engine``).

>>> cpu_only = Accelerators(cuda_devices=0, cuda_build=None, mps=False, torch="2.13.0+cpu")
>>> plan = plan_device("auto", "auto", cpu_only)
>>> plan.device, plan.precision, plan.token_budget, plan.gather_seconds
('cpu', 'float32', 1024, 0.0)
>>> one_gpu = Accelerators(cuda_devices=1, cuda_build="12.8", mps=False, torch="2.13.0")
>>> plan_device("auto", "auto", one_gpu, tokenizer_threads=8).describe()
'cuda:0 in float16, batches of 65536 tokens, gathering up to 0.05 s, 8 tokenizer threads'
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from typing import Literal

from weave_stream.config import DEVICE_PATTERN, Settings
from weave_stream.errors import ConfigError

__all__ = [
    "CPU_TOKEN_BUDGET",
    "GPU_TOKEN_BUDGET",
    "Accelerators",
    "DevicePlan",
    "Precision",
    "plan_device",
    "plan_for",
]

Precision = Literal["auto", "float32", "float16", "bfloat16"]

# Padded tokens per forward pass. CPU: measured here (2 cores, bench/embed_device.py
# --budgets): batches of 512 to 4,096 tokens ran within a few percent of each other
# on call-like documents, while a fixed 32 texts lost ~half to padding; 1,024 keeps
# a batch's latency low. GPU: from issue 20's H200 figures (fp16, all-MiniLM-L6-v2):
# sorted batches of 512 call-like documents (~65 k padded tokens) ran the forward
# pass at 41 k texts/s; 1,024-token batches fed the GPU at 3 % of that. MPS: not
# measured; a middle value.
CPU_TOKEN_BUDGET = 1024
GPU_TOKEN_BUDGET = 65536
MPS_TOKEN_BUDGET = 16384
# How long the model waits for more texts before running a batch that is not full.
# On the CPU never (a micro-batch of 64 texts fills several 1,024-token batches);
# on a GPU as long as a stream micro-batch waits (settings.batch_max_wait_seconds).
CPU_GATHER_SECONDS = 0.0
# Tokenizer threads feeding the model: one on the CPU overlaps tokenizing the next
# batch with the forward pass (the fast tokenizer releases the GIL); a GPU eats
# ~10x more texts per second than one thread tokenizes (issue 20: 41 k vs 4.5 k).
CPU_TOKENIZER_THREADS = 1
GPU_TOKENIZER_THREADS = 8


@dataclass(frozen=True)
class Accelerators:
    """What this machine's torch can run on."""

    cuda_devices: int
    cuda_build: str | None  # torch.version.cuda: None for a CPU-only build of torch
    mps: bool
    torch: str

    @classmethod
    def probe(cls) -> Accelerators:
        """Ask torch (imports it: ~1 s the first time)."""
        import torch

        mps_backend = getattr(torch.backends, "mps", None)
        return cls(
            cuda_devices=torch.cuda.device_count() if torch.cuda.is_available() else 0,
            cuda_build=torch.version.cuda,
            mps=bool(mps_backend is not None and mps_backend.is_available()),
            torch=torch.__version__,
        )


@dataclass(frozen=True)
class DevicePlan:
    """The device, precision and batching the embedding model runs with."""

    device: str  # "cpu", "cuda:N" or "mps"
    precision: Literal["float32", "float16", "bfloat16"]
    token_budget: int  # padded tokens per forward pass
    gather_seconds: float  # longest wait for more texts to fill a batch
    tokenizer_threads: int  # 0: tokenize on the model's own thread

    @property
    def kind(self) -> str:
        """``cpu``, ``cuda`` or ``mps``."""
        return self.device.split(":")[0]

    def describe(self) -> str:
        """One line for the start-up log."""
        return (
            f"{self.device} in {self.precision}, batches of {self.token_budget} tokens, "
            f"gathering up to {self.gather_seconds:g} s, {self.tokenizer_threads} tokenizer threads"
        )


def plan_device(
    device: str = "auto",
    precision: Precision = "auto",
    accelerators: Accelerators | None = None,
    *,
    token_budget: int | None = None,
    gather_seconds: float | None = None,
    tokenizer_threads: int | None = None,
    gpu_gather_seconds: float = 0.05,
) -> DevicePlan:
    """The plan for ``device`` and ``precision``; ``None`` overrides take the device's default.

    Raises :class:`ConfigError` when the device is malformed or absent, saying what
    this torch can use and what to set instead.
    """
    found = accelerators or Accelerators.probe()
    chosen = _choose_device(device, found)
    kind = chosen.split(":")[0]
    if precision == "auto":
        resolved: Literal["float32", "float16", "bfloat16"] = (
            "float32" if kind == "cpu" else "float16"
        )
    elif precision in ("float32", "float16", "bfloat16"):
        resolved = precision
    else:
        raise ConfigError(
            f"setting precision={precision!r} is not one of auto, float32, float16, bfloat16 "
            "(WEAVE_STREAM_PRECISION); auto is float16 on a GPU and float32 on the CPU"
        )
    default_budget = {"cpu": CPU_TOKEN_BUDGET, "cuda": GPU_TOKEN_BUDGET}.get(kind, MPS_TOKEN_BUDGET)
    default_threads = CPU_TOKENIZER_THREADS if kind == "cpu" else _gpu_tokenizer_threads()
    default_gather = CPU_GATHER_SECONDS if kind == "cpu" else gpu_gather_seconds
    return DevicePlan(
        device=chosen,
        precision=resolved,
        token_budget=token_budget or default_budget,
        gather_seconds=default_gather if gather_seconds is None else gather_seconds,
        tokenizer_threads=default_threads if tokenizer_threads is None else tokenizer_threads,
    )


def _choose_device(asked: str, found: Accelerators) -> str:
    asked = asked.strip().lower()
    if not DEVICE_PATTERN.match(asked):
        raise ConfigError(
            f"setting device={asked!r} is not a device; use auto, cpu, cuda, cuda:N "
            "(N counts from 0) or mps (WEAVE_STREAM_DEVICE)"
        )
    if asked == "auto":
        if found.cuda_devices:
            return "cuda:0"
        return "mps" if found.mps else "cpu"
    if asked == "cpu":
        return "cpu"
    if asked == "mps":
        if not found.mps:
            raise ConfigError(
                f"setting device='mps', but torch {found.torch} has no usable MPS backend "
                "(it needs Apple silicon and macOS 12.3+); set device=auto or device=cpu"
            )
        return "mps"
    index = int(asked.partition(":")[2] or 0)
    if found.cuda_build is None:
        raise ConfigError(
            f"setting device={asked!r}, but torch {found.torch} is a CPU-only build: it "
            "cannot use a GPU. Install a CUDA build of torch (see pytorch.org, e.g. pip "
            "install torch --index-url https://download.pytorch.org/whl/cu128), or set "
            "device=auto (the GPU when there is one) or device=cpu"
        )
    if found.cuda_devices == 0:
        raise ConfigError(
            f"setting device={asked!r}, but torch {found.torch} (CUDA {found.cuda_build}) "
            "sees no CUDA GPU: check nvidia-smi, the driver and CUDA_VISIBLE_DEVICES, or "
            "set device=auto or device=cpu"
        )
    if index >= found.cuda_devices:
        raise ConfigError(
            f"setting device={asked!r}, but torch sees {found.cuda_devices} CUDA GPU(s): "
            f"cuda:0 to cuda:{found.cuda_devices - 1}; pick one of those, or device=cuda"
        )
    return f"cuda:{index}"


def _gpu_tokenizer_threads() -> int:
    return max(1, min(GPU_TOKENIZER_THREADS, (os.cpu_count() or 2) - 1))


def plan_for(settings: Settings, accelerators: Accelerators | None = None) -> DevicePlan:
    """The plan the settings ask for (``device``, ``precision``, ``embed_*``)."""
    return plan_device(
        settings.device,
        settings.precision,
        accelerators,
        token_budget=settings.embed_token_budget,
        gather_seconds=settings.embed_gather_seconds,
        tokenizer_threads=settings.embed_tokenizer_threads,
        gpu_gather_seconds=settings.batch_max_wait_seconds,
    )
