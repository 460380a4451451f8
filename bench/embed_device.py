"""Embeddings on the device found here: the model's limit, sentence-transformers' best, the op.

In one run, on the device torch finds (``--device auto``: a CUDA GPU, else MPS, else
the CPU), in the precision the op uses there (float16 on a GPU, float32 on a CPU),
round by round (interleaved, medians reported):

* ``forward``: the bare model (forward pass, pooling, normalisation, vectors back on
  the host) on pre-tokenized, length-sorted batches: the limit, tokenization excluded
  (best of a few batch sizes, picked first);
* ``encode``: ``SentenceTransformer.encode`` at its best fixed batch size (picked first);
* ``op``: the ``embed`` op through the executor (``run_op``), on the engine with the
  device's default settings: tokenizer threads, token budget, sorted batches.

Figures: ``embed_op_vs_model_forward`` (goal on an H200-class GPU >= 0.5) and
``embed_op_vs_encode`` (goal >= 1.0 on every device); with ``--service`` also
``embed_service_vs_in_process`` (the op through a model service process over a Unix
socket, against the engine in this process); with ``--sweep`` the op at several token
budgets and tokenizer threads (how the CPU defaults were chosen).

Documents are call-like: user/assistant turns of chatterbot-corpus conversations (six
languages) concatenated and cut to lengths drawn around a median of 87 tokens with a
p90 of 256 (issue 20's mix). Nothing is downloaded.

Run: ``python bench/embed_device.py [--quick] [--docs N] [--rounds R] [--device D]
[--service] [--sweep]``; on a GPU machine, as is.
"""

from __future__ import annotations

import argparse
import asyncio
import importlib.resources
import json
import math
import os
import random
import statistics
import subprocess
import sys
import tempfile
import time
import uuid
from collections.abc import Callable
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
os.environ.setdefault("HF_HUB_OFFLINE", "1")

import yaml

from weave_stream.ops import Embed, run_op
from weave_stream.ops.embed import use_backend
from weave_stream.ops.embed_device import DevicePlan, plan_device
from weave_stream.ops.embed_engine import EmbeddingEngine
from weave_stream.ops.embed_model import load_model
from weave_stream.ops.embed_service import ServiceClient

REPO = Path(__file__).resolve().parent.parent
LANGUAGES = ("english", "spanish", "german", "french", "portuguese", "italian")


def call_like_documents(count: int, tokenizer: Any, seed: int = 20) -> list[str]:
    """``count`` documents of user/assistant turns, ~87 tokens median, ~256 at p90."""
    rng = random.Random(seed)
    root = Path(str(importlib.resources.files("chatterbot_corpus"))) / "data"
    turns: list[str] = []
    for language in LANGUAGES:
        for path in sorted((root / language).glob("*.yml")):
            for conversation in (yaml.safe_load(path.read_text("utf-8")) or {}).get(
                "conversations", []
            ):
                said = [str(t).strip() for t in conversation if t is not None and str(t).strip()]
                turns.extend(f"{('user', 'assistant')[i % 2]}: {t}" for i, t in enumerate(said))
    sigma = math.log(256 / 87) / 1.2816  # lognormal with median 87 and p90 256
    documents, cursor = [], rng.randrange(len(turns))
    for _ in range(count):
        target = min(400, max(6, round(rng.lognormvariate(math.log(87), sigma)))) - 2
        text = ""
        while True:
            while len(text) < target * 6:
                text += turns[cursor % len(turns)] + "\n"
                cursor += 1
            offsets = tokenizer(text, add_special_tokens=False, return_offsets_mapping=True)
            spans = offsets["offset_mapping"]
            if len(spans) >= target:
                documents.append(text[: spans[target - 1][1]])
                break
            text += turns[cursor % len(turns)] + "\n"
            cursor += 1
    return documents


def forward_rate(model: Any, plan: DevicePlan, texts: list[str], batch_size: int) -> float:
    """Texts/s of the model alone on pre-tokenized batches of ``batch_size``, sorted by length."""
    import torch

    order = sorted(range(len(texts)), key=lambda i: len(texts[i]))
    batches = [
        model.preprocess([texts[i] for i in order[s : s + batch_size]])
        for s in range(0, len(order), batch_size)
    ]
    device = torch.device(plan.device)
    synchronize()
    started = time.perf_counter()
    outputs = []
    with torch.inference_mode():
        for features in batches:
            on_device = {
                k: v.to(device, non_blocking=True) if isinstance(v, torch.Tensor) else v
                for k, v in features.items()
            }
            embeddings = model(on_device)["sentence_embedding"]
            outputs.append(torch.nn.functional.normalize(embeddings.float(), dim=1))
        torch.cat(outputs).cpu().numpy()
    return len(texts) / (time.perf_counter() - started)


def encode_rate(model: Any, texts: list[str], batch_size: int) -> float:
    synchronize()
    started = time.perf_counter()
    model.encode(texts, batch_size=batch_size, normalize_embeddings=True, convert_to_numpy=True)
    return len(texts) / (time.perf_counter() - started)


def op_rate(texts: list[str]) -> float:
    """Texts/s of the embed op over ``texts``, through the process's backend."""
    inputs = [{"text": t} for t in texts]
    started = time.perf_counter()
    results = asyncio.run(run_op(Embed(), inputs))
    elapsed = time.perf_counter() - started
    assert all(r.ok for r in results), next(r.error for r in results if not r.ok)
    return len(texts) / elapsed


def synchronize() -> None:
    import torch

    if torch.cuda.is_available():
        torch.cuda.synchronize()


def best_of(label: str, sizes: tuple[int, ...], rate: Callable[[int], float]) -> int:
    rates = {size: rate(size) for size in sizes}
    print(
        f"{label}, texts/s by batch size: " + ", ".join(f"{s}: {r:.0f}" for s, r in rates.items())
    )
    return max(rates, key=lambda size: rates[size])


class Service:
    """A ``weave-stream model-service`` process with the same device settings."""

    def __init__(self, plan: DevicePlan) -> None:
        self.path = str(Path(tempfile.gettempdir()) / f"ws-bench-{uuid.uuid4().hex[:8]}.sock")
        env = {k: v for k, v in os.environ.items() if not k.startswith("WEAVE_STREAM_")}
        env.update(WEAVE_STREAM_DEVICE=plan.device, WEAVE_STREAM_PRECISION=plan.precision)
        self.process = subprocess.Popen(
            [sys.executable, "-m", "weave_stream", "model-service", "--socket", self.path],
            env=env,
            cwd=REPO,
            stderr=subprocess.DEVNULL,
        )
        self.client = ServiceClient(self.path, "bench", connect_wait_seconds=600)

    def stop(self) -> None:
        self.client.close()
        self.process.terminate()
        self.process.wait(timeout=60)


def sweep(texts: list[str], plan: DevicePlan, budgets: list[int], threads: list[int]) -> None:
    """The op at each (token budget, tokenizer threads), two interleaved passes."""
    engines = {
        (b, t): EmbeddingEngine(
            plan_device(plan.device, plan.precision, token_budget=b, tokenizer_threads=t)
        )
        for b in budgets
        for t in threads
    }
    rates: dict[tuple[int, int], list[float]] = {key: [] for key in engines}
    for _ in range(2):
        for key, engine in engines.items():
            use_backend(engine)
            rates[key].append(op_rate(texts))
    print("\nop texts/s by token budget (rows) and tokenizer threads (columns):")
    print("budget " + "".join(f"{t:>10}" for t in threads))
    for b in budgets:
        print(f"{b:>6} " + "".join(f"{statistics.median(rates[(b, t)]):>10.1f}" for t in threads))
    for engine in engines.values():
        engine.close()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--device", default="auto")
    parser.add_argument("--precision", default="auto")
    parser.add_argument(
        "--docs", type=int, default=None, help="default: 4096 on a GPU, 384 on a CPU"
    )
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--quick", action="store_true", help="fewer documents, one round")
    parser.add_argument(
        "--service", action="store_true", help="also the op through a model service"
    )
    parser.add_argument(
        "--sweep", action="store_true", help="also token budgets x tokenizer threads"
    )
    args = parser.parse_args()

    plan = plan_device(args.device, args.precision)
    gpu = plan.kind != "cpu"
    count = args.docs or (4096 if gpu else 384) // (4 if args.quick else 1)
    rounds = 1 if args.quick else args.rounds
    model = load_model(plan.device, plan.precision)
    texts = call_like_documents(count, model.tokenizer)
    lengths = sorted(
        len(ids) for ids in model.tokenizer(texts, truncation=True, max_length=256)["input_ids"]
    )
    engine = EmbeddingEngine(plan)
    use_backend(engine)
    print(f"device: {engine.describe()}; torch threads {torch_threads()}")
    print(
        f"{count} call-like documents: tokens median {lengths[len(lengths) // 2]}, "
        f"p90 {lengths[int(len(lengths) * 0.9)]}, mean {sum(lengths) / len(lengths):.0f}"
    )
    op_rate(texts[:64])  # warm-up: threads, kernels, allocator
    forward_sizes = (128, 512, 2048) if gpu else (8, 32)
    encode_sizes = (32, 128, 512, 2048) if gpu else (8, 16, 32, 64)
    best_forward = best_of("forward", forward_sizes, lambda b: forward_rate(model, plan, texts, b))
    best_encode = best_of("encode", encode_sizes, lambda b: encode_rate(model, texts, b))
    service = Service(plan) if args.service else None
    if service is not None:
        service.client.embed(texts[:64])  # loads the service's model
    figures: dict[str, list[float]] = {"forward": [], "encode": [], "op": [], "service": []}
    for round_number in range(rounds):
        figures["forward"].append(forward_rate(model, plan, texts, best_forward))
        figures["encode"].append(encode_rate(model, texts, best_encode))
        use_backend(engine)
        figures["op"].append(op_rate(texts))
        if service is not None:
            use_backend(service.client)
            figures["service"].append(op_rate(texts))
        print(
            f"round {round_number + 1}: "
            + ", ".join(f"{k} {v[-1]:.0f}/s" for k, v in figures.items() if v)
        )
    if service is not None:
        service.stop()
    if args.sweep:
        sweep(texts, plan, [512, 1024, 2048, 4096], [0, 1, 2])
    report(plan, figures, best_forward, best_encode, count)


def report(
    plan: DevicePlan, figures: dict[str, list[float]], forward: int, encode: int, count: int
) -> None:
    median = {k: statistics.median(v) for k, v in figures.items() if v}
    print(f"\n{'subject':<10}{'texts/s':>10}   rounds")
    for name, values in figures.items():
        if values:
            print(f"{name:<10}{median[name]:>10.0f}   " + ", ".join(f"{v:.0f}" for v in values))
    lines = [
        (
            "embed_op_vs_model_forward",
            median["op"],
            median["forward"],
            f"sorted batches of {forward}",
        ),
        ("embed_op_vs_encode", median["op"], median["encode"], f"encode batch {encode}"),
    ]
    if "service" in median:
        lines.append(
            ("embed_service_vs_in_process", median["service"], median["op"], "Unix socket")
        )
    print()
    for bench, value, baseline, note in lines:
        print(
            json.dumps(
                {
                    "bench": bench,
                    "device": plan.device,
                    "precision": plan.precision,
                    "unit": "texts/s",
                    "docs": count,
                    "value": round(value, 1),
                    "baseline": round(baseline, 1),
                    "ratio": round(value / baseline, 3),
                    "note": note,
                }
            )
        )


def torch_threads() -> int:
    import torch

    return torch.get_num_threads()


if __name__ == "__main__":
    main()
