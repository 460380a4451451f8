"""The embed op with the real offline model: shape, normalisation, determinism, the event loop."""

from __future__ import annotations

import asyncio
from pathlib import Path
from typing import Any

import numpy as np
import orjson
import pytest
from click.testing import CliRunner

from weave_stream.cli import cli
from weave_stream.config import load_settings
from weave_stream.demo.samples import corpus_documents, sample_calls
from weave_stream.ops import Embed, resolve_op, run_op
from weave_stream.ops.embed import (
    DIMENSIONS,
    configure_model,
    encode_sync,
    model_backend,
    use_backend,
)


def embed(texts: list[Any]) -> list[Any]:
    results = asyncio.run(run_op(Embed(), [{"text": t} for t in texts]))
    return results


@pytest.fixture(scope="module")
def texts() -> list[str]:
    return [d.text for d in corpus_documents("english", categories=["science", "money"])[:40]]


def test_vectors_are_384_unit_float32_numbers(texts: list[str]) -> None:
    results = embed(texts)
    assert all(r.error is None for r in results)
    vectors = np.array([r.value for r in results])
    assert vectors.shape == (len(texts), DIMENSIONS)
    assert np.allclose(np.linalg.norm(vectors, axis=1), 1.0, atol=1e-5)
    as_float32 = vectors.astype(np.float32).astype(np.float64)
    assert np.array_equal(as_float32, vectors)  # each number is exactly a float32
    assert all(isinstance(x, float) for x in results[0].value)  # JSON-friendly


def test_the_same_text_gives_the_same_vector_whatever_its_batch(texts: list[str]) -> None:
    alone = embed([texts[3]])[0].value
    in_batch = embed(texts)[3].value
    again = embed(texts)[3].value
    assert in_batch == again  # same batch: bit for bit
    assert np.allclose(alone, in_batch, atol=1e-5)  # padding in a batch moves the last digits only


def test_texts_of_mixed_lengths_keep_their_own_vectors_across_length_sorted_batches() -> None:
    texts = ["short", "a much longer sentence about invoices and payments " * 6, "mid length text"]
    texts = texts * 3 + ["tiny", "another long one, about the weather and the sea " * 8]
    together = encode_sync(texts, token_budget=128)  # several batches, sorted by length
    for text, vector in zip(texts, together, strict=True):
        assert np.allclose(encode_sync([text])[0], vector, atol=1e-5), text


def test_similar_texts_are_nearer_than_unrelated_ones() -> None:
    a, b, c = (
        np.array(r.value)
        for r in embed(
            [
                "How do I reset my password?",
                "I forgot my password; how can I change it?",
                "The orchestra played Beethoven's fifth symphony.",
            ]
        )
    )
    assert a @ b > a @ c + 0.3


def test_a_value_that_is_not_text_is_an_error_value_not_an_exception() -> None:
    good, bad, empty = embed(["fine", None, ""])
    assert good.error is None and empty.error is None  # an empty text is a text
    assert bad.value is None and bad.error is not None and "text must be a string" in bad.error


def test_inference_does_not_block_the_event_loop(texts: list[str]) -> None:
    encode_sync(["warm up"])  # load the model first: loading is not what is measured

    async def scenario() -> tuple[int, bool]:
        ticks = 0
        done = asyncio.Event()

        async def ticker() -> None:
            nonlocal ticks
            while not done.is_set():
                ticks += 1
                await asyncio.sleep(0.005)

        task = asyncio.create_task(ticker())
        await asyncio.sleep(0)
        ticks_before = ticks
        results = await run_op(Embed(), [{"text": t} for t in texts * 5])
        ticks_during = ticks - ticks_before
        done.set()
        await task
        return ticks_during, all(r.ok for r in results)

    ticks_during, ok = asyncio.run(scenario())
    assert ok
    # A blocked loop could not tick at all until the whole batch was embedded.
    assert ticks_during >= 2


def test_the_version_names_the_model_and_not_the_inner_batch_size() -> None:
    assert Embed().ref == Embed(token_budget=256).ref
    assert Embed().signature.required == ("text",)
    assert Embed().deterministic


def test_the_ref_does_not_change_with_the_device_or_precision_the_settings_pick() -> None:
    previous = use_backend(None)
    refs, vectors = set(), []
    try:
        for precision in ("float32", "bfloat16"):
            use_backend(None)  # the next op made from settings makes the process's backend
            settings = load_settings(env={}, device="cpu", precision=precision)
            embed_op = resolve_op("embed", settings=settings)  # as a topology file loads it
            results = asyncio.run(run_op(embed_op, [{"text": "an invoice for March"}]))
            assert f"cpu in {precision}" in model_backend().describe()
            refs.add(embed_op.ref)
            vectors.append(np.array(results[0].value))
    finally:
        configure_model(None)
        use_backend(previous)
    assert len(refs) == 1  # where a value is computed is not what it is
    assert vectors[0] @ vectors[1] > 0.999  # the same vector, within half precision


def test_a_local_run_says_which_device_and_precision_computed_its_embeddings(
    tmp_path: Path,
) -> None:
    calls = sample_calls(corpus_documents("english", categories=["science"])[:3])
    (tmp_path / "calls.jsonl").write_bytes(b"\n".join(orjson.dumps(c) for c in calls))
    (tmp_path / "vectors.yaml").write_text(
        "name: vectors\nsource: {op_name: text-extract}\n"
        "columns:\n  - {name: embedding, op: embed, args: {text: inputs.document}}\n"
    )
    previous = use_backend(None)
    try:
        ran = CliRunner().invoke(
            cli,
            [
                "run",
                str(tmp_path / "vectors.yaml"),
                "--input",
                str(tmp_path / "calls.jsonl"),
                "--out",
                str(tmp_path / "out.jsonl"),
                "--quiet",
            ],
            env={"WEAVE_STREAM_DATA_DIR": str(tmp_path), "WEAVE_STREAM_DEVICE": "cpu"},
        )
    finally:
        configure_model(None)
        use_backend(previous)
    assert ran.exit_code == 0, ran.output
    assert "vectors: embeddings on cpu in float32, batches of 1024 tokens" in ran.output
