"""Naming topics with the LLM judge endpoint, through the ops layer.

:data:`TopicNamer` is an op (a subclass of the judge, so the endpoint, model, prices,
concurrency limit and retries are the judge's): its input is a topic's representative
documents, its value ``{"name", "description"}``. It runs through the result cache
(:func:`name_topics`), so a refit whose topics show the same documents, or a second
fit of the same calls, asks the LLM nothing. An answer that is not a usable name
(not JSON, no name, a name over :data:`MAX_NAME_CHARS`) is retried, then recorded as
the topic's naming error.

>>> parse_name('{"name": "Refund requests", "description": "Customers asking for money back."}')
{'name': 'Refund requests', 'description': 'Customers asking for money back.'}
>>> parse_name('{"name": ""}')  # doctest: +ELLIPSIS
Traceback (most recent call last):
...
weave_stream.ops.judge_http.JudgeAnswerError: the namer's answer has no usable 'name' ...
"""

from __future__ import annotations

import time
from collections.abc import Mapping, Sequence
from typing import Any

import orjson

from weave_stream.columns.cache import CachedValue, ResultCache, cache_key
from weave_stream.ops.base import CostEstimate, OpResult
from weave_stream.ops.decorator import op
from weave_stream.ops.execute import run_op
from weave_stream.ops.judge import JUDGE_UNVERSIONED, JudgeOp
from weave_stream.ops.judge_http import JudgeAnswerError, answer_json

__all__ = [
    "MAX_NAME_CHARS",
    "NAMING_PROMPT",
    "TopicNamer",
    "estimate_naming",
    "name_topics",
    "parse_name",
]

MAX_NAME_CHARS = 60
EXCERPT_CHARS = 400  # each representative document is cut to this many characters
NAMING_SYSTEM = (
    "You name clusters of production documents of an LLM application. Reply with only a "
    'JSON object: {"name": "<2 to 5 words>", "description": "<one paragraph: what the '
    'documents have in common and how they differ>"}.'
)
NAMING_PROMPT = (
    "Topic documents (the first are nearest the topic's centre, the last are spread "
    "across it):\n\n{documents}\n\nName this topic and describe it."
)


def parse_name(content: str) -> dict[str, str]:
    """``{"name", "description"}`` from the model's text, or :class:`JudgeAnswerError`."""
    answer = answer_json(content, "namer")
    name = answer.get("name") if isinstance(answer, dict) else None
    if not isinstance(name, str) or not name.strip() or len(name.strip()) > MAX_NAME_CHARS:
        raise JudgeAnswerError(
            f"the namer's answer has no usable 'name' (a text of 1 to {MAX_NAME_CHARS} "
            f"characters): {content[:200]!r}"
        )
    description = answer.get("description", "")
    if not isinstance(description, str):
        description = orjson.dumps(description).decode()
    return {"name": " ".join(name.split()), "description": description.strip()}


class TopicNamerOp(JudgeOp):
    """Name a topic from its documents: ``{"name", "description"}`` per input."""

    def __init__(self, model: str | None = None, **options: Any) -> None:
        options.setdefault("prompt", NAMING_PROMPT)
        options.setdefault("system", NAMING_SYSTEM)
        options.setdefault("max_tokens", 300)
        super().__init__(model=model, **options)

    def parse(self, content: str) -> dict[str, str]:
        """The name in the answer (raises :class:`JudgeAnswerError` when it is unusable:
        the judge's request path retries it, then records the error)."""
        return parse_name(content)


TopicNamer = op(
    name="topic_namer",
    deterministic=False,
    batched=True,
    depends=(parse_name, JudgeOp),
    unversioned=JUDGE_UNVERSIONED,
)(TopicNamerOp)


def naming_input(documents: Sequence[str]) -> dict[str, str]:
    """The namer's argument for a topic: its documents, numbered and cut to excerpts."""
    lines = []
    for number, text in enumerate(documents, 1):
        excerpt = " ".join(str(text).split())[:EXCERPT_CHARS]
        lines.append(f"{number}. {excerpt}")
    return {"documents": "\n".join(lines)}


async def _cached(
    namer: Any, inputs: Sequence[Mapping[str, Any]], cache: ResultCache
) -> tuple[list[Any], dict[int, CachedValue]]:
    keys = [cache_key(namer.ref, item, 0) for item in inputs]
    found = await cache.get_many(keys)
    return keys, {i: found[key] for i, key in enumerate(keys) if key in found}


async def estimate_naming(
    namer: Any, inputs: Sequence[Mapping[str, Any]], cache: ResultCache
) -> tuple[int, CostEstimate]:
    """How many inputs the cache lacks, and the namer's estimate of naming those."""
    _, hits = await _cached(namer, inputs, cache)
    missing = [item for i, item in enumerate(inputs) if i not in hits]
    estimate: CostEstimate = namer.estimate(missing) if missing else CostEstimate(0, 0.0, 0.0)
    return len(missing), estimate


async def name_topics(
    namer: Any, inputs: Sequence[Mapping[str, Any]], cache: ResultCache
) -> list[tuple[OpResult, bool]]:
    """One (result, came from cache) per input: cached names, the rest asked of the LLM.

    Only successful names are cached; a failure is asked again on the next fit.
    """
    keys, hits = await _cached(namer, inputs, cache)
    missing = [i for i in range(len(inputs)) if i not in hits]
    computed = await run_op(namer, [inputs[i] for i in missing]) if missing else []
    fresh: dict[Any, CachedValue] = {}
    out: dict[int, tuple[OpResult, bool]] = {}
    for index, result in zip(missing, computed, strict=True):
        out[index] = (result, False)
        if result.ok:
            fresh[keys[index]] = CachedValue(
                value=result.value,
                latency_ms=result.latency_ms,
                cost=result.cost,
                details=dict(result.details),
                computed_at=time.time(),
            )
    await cache.put_many(fresh)
    for index, hit in hits.items():
        out[index] = (OpResult(value=hit.value, details=dict(hit.details), cost=0.0), True)
    return [out[i] for i in range(len(inputs))]
