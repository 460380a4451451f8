"""The ``explain`` op: for an output that scored below a threshold, ask the LLM judge why.

A scorer column says *how well* each output did; ``explain`` reads that score and,
only where it is below ``threshold``, asks the judge (the same OpenAI-compatible HTTP
layer, endpoint settings, retries and audit trail as :mod:`weave_stream.ops.judge`)
for one short sentence naming the kind of failure. Outputs at or above the threshold
get no value (``None``) and cost nothing. The reasons of an experiment are then
grouped into a few failure kinds (:mod:`weave_stream.experiments.failures`): the
input for improving a prompt.

The ``score`` argument is a number, a pass/fail boolean (False is 0) or a judge's
``{"score": ...}`` value; the prompt is a template over the other arguments.

>>> e = Explain(threshold=0.5, model="gpt-4o-mini")
>>> e.name, e.signature.required, e.deterministic
('explain', ('input', 'output', 'score'), False)
>>> parse_reason('{"reason": "the answer is off topic"}')
{'reason': 'the answer is off topic'}
"""

from __future__ import annotations

import asyncio
from collections.abc import Mapping, Sequence
from typing import Any

import httpx
import orjson

from weave_stream.config import Settings
from weave_stream.errors import OpDefinitionError
from weave_stream.ops.base import CostEstimate, OpResult, Signature
from weave_stream.ops.decorator import op
from weave_stream.ops.judge import JUDGE_UNVERSIONED, JudgeOp
from weave_stream.ops.judge_http import JudgeAnswerError

__all__ = ["DEFAULT_PROMPT", "EXPLAIN_SYSTEM", "Explain", "parse_reason"]

EXPLAIN_SYSTEM = (
    "You explain why an output of an AI application failed an evaluation. Reply with only "
    'a JSON object {"reason": "<one short sentence>"} that names the kind of failure '
    "(missing information, wrong label, off topic, invented facts, ...) in general words, "
    "so that similar failures get similar reasons."
)
DEFAULT_PROMPT = (
    "Input:\n{input}\n\nOutput:\n{output}\n\n"
    "The output scored {score}, below the pass mark. Why did it fail?"
)
MAX_REASON_CHARS = 300


class ExplainOp(JudgeOp):
    """``{"reason": str}`` for outputs whose ``score`` is below ``threshold``; ``None`` above."""

    def __init__(
        self,
        prompt: str = DEFAULT_PROMPT,
        threshold: float = 0.5,
        model: str | None = None,
        system: str | None = None,
        temperature: float = 0.0,
        max_tokens: int = 120,
        json_mode: bool = True,
        prices: Mapping[str, Sequence[float]] | None = None,
        settings: Settings | None = None,
        base_url: str | None = None,
        api_key: str | None = None,
        concurrency: int | None = None,
        timeout: float = 60.0,
        retries: int = 3,
        backoff: float = 1.0,
    ) -> None:
        super().__init__(
            prompt=prompt,
            model=model,
            system=system or EXPLAIN_SYSTEM,
            temperature=temperature,
            max_tokens=max_tokens,
            json_mode=json_mode,
            prices=prices,
            settings=settings,
            base_url=base_url,
            api_key=api_key,
            concurrency=concurrency,
            timeout=timeout,
            retries=retries,
            backoff=backoff,
        )
        if isinstance(threshold, bool) or not isinstance(threshold, int | float):
            raise OpDefinitionError(f"explain: threshold must be a number, got {threshold!r}")
        self.threshold = float(threshold)
        fields = dict.fromkeys((*self.op_signature.required, "score"))
        self.op_signature = Signature(required=tuple(fields))

    def parse(self, content: str) -> dict[str, Any]:
        """The reason in the answer (raises :class:`JudgeAnswerError` when there is none)."""
        return parse_reason(content)

    def estimate(self, inputs: Sequence[Mapping[str, Any]]) -> CostEstimate:
        """The judge's estimate for the inputs below the threshold (unknown scores count)."""
        asked = [item for item in inputs if _failing(_score_of(item.get("score")), self.threshold)]
        return super().estimate(asked)

    async def _judge(
        self,
        client: httpx.AsyncClient,
        limit: asyncio.Semaphore,
        key: str | None,
        item: Mapping[str, Any],
    ) -> OpResult:
        score = _score_of(item.get("score"))
        if isinstance(score, str):
            return OpResult.failure(score)
        if score >= self.threshold:
            return OpResult(value=None)  # it passed: nothing to explain, nothing asked
        return await super()._judge(client, limit, key, {**item, "score": f"{score:g}"})


def parse_reason(content: str) -> dict[str, Any]:
    """``{"reason": str}`` from the model's text, or :class:`JudgeAnswerError`."""
    text = content.strip()
    if text.startswith("```"):
        text = text.strip("`").removeprefix("json").strip()
    try:
        answer = orjson.loads(text)
    except orjson.JSONDecodeError:
        raise JudgeAnswerError(f"the explanation is not JSON: {content[:200]!r}") from None
    reason = answer.get("reason") if isinstance(answer, dict) else None
    if not isinstance(reason, str) or not reason.strip():
        raise JudgeAnswerError(f"the explanation has no 'reason' text: {content[:200]!r}")
    return {"reason": " ".join(reason.split())[:MAX_REASON_CHARS]}


def _score_of(value: Any) -> float | str:
    """The number in a score argument, or why there is none (an error message)."""
    if isinstance(value, Mapping) and "score" in value:
        value = value["score"]
    if isinstance(value, bool):
        return 1.0 if value else 0.0
    if isinstance(value, int | float):
        return float(value)
    return (
        f"explain: the score argument must be a number, a pass/fail boolean or a judge's "
        f"value, got {type(value).__name__} {str(value)[:40]!r}; map it to a score column"
    )


def _failing(score: float | str, threshold: float) -> bool:
    return isinstance(score, str) or score < threshold


Explain = op(
    name="explain",
    deterministic=False,
    batched=True,
    depends=(JudgeOp, parse_reason),  # the judge's request and this parser decide values
    unversioned=JUDGE_UNVERSIONED,
)(ExplainOp)
