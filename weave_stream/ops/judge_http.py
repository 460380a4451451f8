"""The judge's HTTP side: one chat-completions request, its failure modes, the answer, prices.

:func:`chat_completion` never raises for an HTTP or network problem: it returns a
:class:`Reply` whose ``error`` says what failed and whether retrying may help
(429, 5xx, timeouts and connection errors may; other 4xx do not).

>>> parse_answer('```json\\n{"score": 4, "reason": "clear"}\\n```', (1, 5))
{'score': 4.0, 'reason': 'clear'}
>>> price_of(PRICES, "gpt-4o-mini-2024-07-18")
(0.15, 0.6)
"""

from __future__ import annotations

import asyncio
import re
import weakref
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

import httpx
import orjson

from weave_stream.durations import parse_retry_after
from weave_stream.errors import OpError
from weave_stream.metrics import JUDGE_TOKENS

__all__ = [
    "PRICES",
    "JudgeAnswerError",
    "Reply",
    "answer_json",
    "chat_completion",
    "concurrency_limit",
    "parse_answer",
    "price_of",
]

# USD per million tokens (prompt, completion), list prices; a judge's ``prices`` adds or overrides.
PRICES: dict[str, tuple[float, float]] = {
    "gpt-4o-mini": (0.15, 0.60),
    "gpt-4o": (2.50, 10.00),
    "gpt-4.1": (2.00, 8.00),
    "gpt-4.1-mini": (0.40, 1.60),
    "gpt-4.1-nano": (0.10, 0.40),
    "o4-mini": (1.10, 4.40),
}
# A server asking for a longer wait than this gets this; re-run later for the rest.
MAX_RETRY_AFTER_SECONDS = 60.0
_FENCE = re.compile(r"^\s*```(?:json)?\s*(.*?)\s*```\s*$", re.DOTALL)
_limits: weakref.WeakKeyDictionary[asyncio.AbstractEventLoop, dict[str, asyncio.Semaphore]] = (
    weakref.WeakKeyDictionary()
)


class JudgeAnswerError(OpError):
    """The model answered, but not with ``{"score": number, "reason": text}``."""


@dataclass(frozen=True)
class Reply:
    """What one request gave: the answer's text and usage, or an error."""

    content: str = ""
    prompt_tokens: int = 0
    completion_tokens: int = 0
    error: str | None = None
    retriable: bool = False
    retry_after: float | None = None
    status: int | None = None

    def cost(self, prices: Mapping[str, tuple[float, float]], model: str) -> float | None:
        """Dollars for this reply's tokens, or None when ``model`` has no price."""
        price = price_of(prices, model)
        if price is None:
            return None
        return (self.prompt_tokens * price[0] + self.completion_tokens * price[1]) / 1e6


def price_of(prices: Mapping[str, tuple[float, float]], model: str) -> tuple[float, float] | None:
    """The price of ``model``, or of its longest priced prefix (dated snapshots), or None."""
    if model in prices:
        return prices[model]
    candidates = [name for name in prices if model.startswith(name + "-")]
    return prices[max(candidates, key=len)] if candidates else None


def concurrency_limit(base_url: str, concurrency: int) -> asyncio.Semaphore:
    """The semaphore that caps requests to ``base_url`` in this event loop (first size wins)."""
    per_loop = _limits.setdefault(asyncio.get_running_loop(), {})
    return per_loop.setdefault(base_url, asyncio.Semaphore(concurrency))


async def chat_completion(
    client: httpx.AsyncClient, body: Mapping[str, Any], *, secret: str | None
) -> Reply:
    """POST ``body`` to ``/chat/completions``; a :class:`Reply` whatever happens."""
    where = f"judge request to {_public_url(client.base_url)} (model {body.get('model')})"
    try:
        response = await client.post("/chat/completions", json=body)
    except httpx.TimeoutException:
        timeout = client.timeout.read
        return Reply(error=f"{where} timed out after {timeout}s", retriable=True)
    except httpx.TransportError as exc:
        message = _scrub(f"{where} failed: {type(exc).__name__}: {exc}", secret)
        return Reply(error=message, retriable=True)
    status = response.status_code
    if status == 429 or status >= 500:
        retry_after = parse_retry_after(response.headers)
        if retry_after is not None:
            retry_after = min(retry_after, MAX_RETRY_AFTER_SECONDS)
        wait = f"; retrying after {retry_after:g}s as asked" if retry_after is not None else ""
        snippet = _scrub(response.text[:200], secret)
        return Reply(
            error=f"{where} got HTTP {status}{wait}: {snippet}",
            retriable=True,
            retry_after=retry_after,
            status=status,
        )
    if status >= 400:
        snippet = _scrub(response.text[:200], secret)
        hint = " (check judge_api_key / OPENAI_API_KEY)" if status in (401, 403) else ""
        return Reply(
            error=f"{where} was refused with HTTP {status}{hint}: {snippet}", status=status
        )
    return _reply_of(response, where, secret)


def _reply_of(response: httpx.Response, where: str, secret: str | None) -> Reply:
    try:
        data = response.json()
        content = data["choices"][0]["message"]["content"]
        usage = data.get("usage") or {}
    except (ValueError, KeyError, IndexError, TypeError):
        snippet = _scrub(response.text[:200], secret)
        return Reply(
            error=f"{where} returned a body that is not a chat completion: {snippet!r}",
            retriable=True,
            status=response.status_code,
        )
    prompt_tokens = int(usage.get("prompt_tokens") or 0)
    completion_tokens = int(usage.get("completion_tokens") or 0)
    model = str(data.get("model") or "unknown")
    JUDGE_TOKENS.labels(model, "prompt").inc(prompt_tokens)
    JUDGE_TOKENS.labels(model, "completion").inc(completion_tokens)
    return Reply(
        content=content if isinstance(content, str) else orjson.dumps(content).decode(),
        prompt_tokens=prompt_tokens,
        completion_tokens=completion_tokens,
        status=response.status_code,
    )


def answer_json(content: str, who: str = "judge") -> Any:
    """The JSON in a model's text (bare, or fenced in a ```json block), or
    :class:`JudgeAnswerError` naming ``who`` answered."""
    fenced = _FENCE.match(content)
    text = fenced.group(1) if fenced else content.strip()
    try:
        return orjson.loads(text)
    except orjson.JSONDecodeError:
        raise JudgeAnswerError(f"the {who}'s answer is not JSON: {content[:200]!r}") from None


def parse_answer(content: str, score_range: tuple[float, float]) -> dict[str, Any]:
    """``{"score": float, "reason": str}`` from the model's text, or :class:`JudgeAnswerError`."""
    answer = answer_json(content)
    if not isinstance(answer, dict):
        raise JudgeAnswerError(f"the judge's answer is not a JSON object: {content[:200]!r}")
    score = answer.get("score")
    if isinstance(score, bool) or not isinstance(score, int | float):
        raise JudgeAnswerError(f"the judge's answer has no numeric 'score': {content[:200]!r}")
    low, high = score_range
    if not low <= score <= high:
        raise JudgeAnswerError(
            f"the judge's score {score} is outside {low:g}..{high:g}: {content[:200]!r}"
        )
    reason = answer.get("reason", "")
    return {
        "score": float(score),
        "reason": reason if isinstance(reason, str) else orjson.dumps(reason).decode(),
    }


def _public_url(url: httpx.URL) -> str:
    return str(url.copy_with(username=None, password=None, query=None))


def _scrub(text: str, secret: str | None) -> str:
    return text.replace(secret, "***") if secret else text
