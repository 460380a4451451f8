"""The ``judge`` op: LLM-as-judge over an OpenAI-compatible chat-completions endpoint.

The prompt is a template over the op's arguments (``{document}``, ``{output}``,
``{doc_class}``...): each placeholder is an argument a topology maps from call
fields or other columns; strings are inserted as they are, anything else as JSON.
The model is asked for ``{"score": <number>, "reason": "<why>"}``; the answer is
parsed into that value. Every value keeps an audit trail in its details: the
rendered prompt's SHA-256, the raw answer, tokens and latency.

Failures are values, and the retriable ones are retried by the executor with
backoff: HTTP 429 and 5xx (honouring ``Retry-After``), timeouts, connection
errors and malformed answers. Requests to one endpoint are limited to
``judge_concurrency`` at a time per process.

The endpoint comes from the op's parameters, else :class:`~weave_stream.config.Settings`
(``judge_base_url``, ``judge_model``, ``judge_api_key``, ``judge_concurrency``),
else ``OPENAI_BASE_URL`` / ``OPENAI_API_KEY``. The key is sent as a bearer token and
never appears in an error or a log.

>>> j = Judge(prompt="Is this summary faithful? {document} => {summary}", model="gpt-4o-mini")
>>> j.signature.required, j.deterministic
(('document', 'summary'), False)
"""

from __future__ import annotations

import asyncio
import hashlib
import math
import os
import string
import time
from collections.abc import Mapping, Sequence
from typing import Any

import httpx
import orjson

from weave_stream.config import Settings, load_settings
from weave_stream.durations import parse_duration
from weave_stream.errors import ConfigError, DurationError, OpDefinitionError
from weave_stream.ops.base import CostEstimate, OpPolicy, OpResult, Signature
from weave_stream.ops.decorator import op
from weave_stream.ops.judge_http import (
    PRICES,
    JudgeAnswerError,
    chat_completion,
    concurrency_limit,
    parse_answer,
    price_of,
)

__all__ = ["JUDGE_UNVERSIONED", "PRICES", "Judge"]

SYSTEM_PROMPT = (
    "You are a careful, strict evaluator. Reply with only a JSON object of the form "
    '{{"score": <a number from {low:g} to {high:g}>, "reason": "<one or two sentences>"}}.'
)
# Before anything runs: an answer is about this many tokens, a request about this long.
EXPECTED_COMPLETION_TOKENS = 60
EXPECTED_LATENCY_SECONDS = 1.5


class JudgeOp:
    """Score a call with an LLM: ``{"score": float, "reason": str}`` per input."""

    def __init__(
        self,
        prompt: str,
        model: str | None = None,
        system: str | None = None,
        score_range: Sequence[float] = (0.0, 1.0),
        temperature: float = 0.0,
        max_tokens: int = 256,
        json_mode: bool = True,
        prices: Mapping[str, Sequence[float]] | None = None,
        settings: Settings | None = None,
        base_url: str | None = None,
        api_key: str | None = None,
        concurrency: int | None = None,
        timeout: float | str = 60.0,
        retries: int = 3,
        backoff: float | str = 1.0,
    ) -> None:
        self.prompt = prompt
        self.op_signature = Signature(required=_template_fields(prompt))
        if len(score_range) != 2 or not score_range[0] < score_range[1]:
            raise OpDefinitionError(
                f"judge: score_range must be [low, high] with low < high, got {score_range!r}"
            )
        self.score_range = (float(score_range[0]), float(score_range[1]))
        self.system = system or SYSTEM_PROMPT.format(
            low=self.score_range[0], high=self.score_range[1]
        )
        self.temperature = temperature
        self.max_tokens = max_tokens
        self.json_mode = json_mode
        self.prices = {
            **PRICES,
            **{k: (float(v[0]), float(v[1])) for k, v in (prices or {}).items()},
        }
        self._model = model
        self._settings = settings
        self._base_url, self._api_key, self._concurrency = base_url, api_key, concurrency
        self.timeout = _seconds("timeout", timeout)
        backoff = _seconds("backoff", backoff)
        batch_size = 4 * (concurrency or 8)
        # An attempt of a batch waits for its requests in waves of `concurrency`; each
        # request has its own timeout, so the batch's bound only catches a stuck op.
        waves = math.ceil(batch_size / (concurrency or 8)) + 2
        self.op_policy = OpPolicy(
            self.timeout * waves, retries, backoff, max(30.0, backoff), batch_size
        )

    # -- resolved lazily: constructing a topology reads no settings ---------------------
    @property
    def settings(self) -> Settings:
        """The settings given, else those of the environment (loaded once)."""
        if self._settings is None:
            self._settings = load_settings()
        return self._settings

    @property
    def model(self) -> str:
        """The model asked: the ``model`` parameter, else ``judge_model`` from settings."""
        return self._model or self.settings.judge_model

    def version_state(self) -> Mapping[str, str]:
        """The resolved model is part of the version (a different model, different scores)."""
        return {"model": self.model}

    def endpoint(self) -> tuple[str, str | None, int]:
        """Base URL, API key and concurrency, resolved as the module docstring says."""
        settings = self.settings
        base_url = self._base_url or settings.judge_base_url or os.environ.get("OPENAI_BASE_URL")
        if not base_url:
            raise ConfigError(
                "the judge has no endpoint: set judge_base_url (WEAVE_STREAM_JUDGE_BASE_URL), "
                "OPENAI_BASE_URL, or base_url in the op's parameters"
            )
        key = self._api_key
        if key is None and settings.judge_api_key is not None:
            key = settings.judge_api_key.get_secret_value()
        key = key or os.environ.get("OPENAI_API_KEY") or None
        return base_url, key, self._concurrency or settings.judge_concurrency

    def preflight(self) -> None:
        """Raise :class:`ConfigError` now if the judge has no endpoint (runners call it first)."""
        self.endpoint()

    # -- the op ------------------------------------------------------------------------
    def render(self, arguments: Mapping[str, Any]) -> str:
        """The user prompt for one input (missing arguments render as empty)."""
        values = {name: _as_text(arguments.get(name)) for name in self.op_signature.required}
        return self.prompt.format_map(values)

    def estimate(self, inputs: Sequence[Mapping[str, Any]]) -> CostEstimate:
        """Tokens from the rendered prompts (about 4 characters a token), priced by model."""
        concurrency = self._concurrency or self.settings.judge_concurrency
        completion = min(self.max_tokens, EXPECTED_COMPLETION_TOKENS)
        prompt_tokens = sum((len(self.system) + len(self.render(item))) // 4 + 8 for item in inputs)
        completion_tokens = completion * len(inputs)
        price = price_of(self.prices, self.model)
        usd = (
            None
            if price is None
            else (prompt_tokens * price[0] + completion_tokens * price[1]) / 1e6
        )
        seconds = EXPECTED_LATENCY_SECONDS * len(inputs) / concurrency
        return CostEstimate(prompt_tokens + completion_tokens, usd, seconds)

    def parse(self, content: str) -> dict[str, Any]:
        """The value of an answer: ``{"score", "reason"}`` (raises :class:`JudgeAnswerError`)."""
        return parse_answer(content, self.score_range)

    async def __call__(self, **arguments: list[Any]) -> list[OpResult]:
        count = len(next(iter(arguments.values()), []))
        items = [{name: values[i] for name, values in arguments.items()} for i in range(count)]
        base_url, key, concurrency = self.endpoint()
        limit = concurrency_limit(base_url, concurrency)
        headers = {"Authorization": f"Bearer {key}"} if key else {}
        async with httpx.AsyncClient(
            base_url=base_url.rstrip("/"),
            headers=headers,
            timeout=httpx.Timeout(self.timeout),
            limits=httpx.Limits(max_connections=concurrency),
        ) as client:
            return list(await asyncio.gather(*(self._judge(client, limit, key, i) for i in items)))

    async def _judge(
        self,
        client: httpx.AsyncClient,
        limit: asyncio.Semaphore,
        key: str | None,
        item: Mapping[str, Any],
    ) -> OpResult:
        prompt = self.render(item)
        digest = hashlib.sha256(f"{self.system}\0{prompt}".encode()).hexdigest()
        body: dict[str, Any] = {
            "model": self.model,
            "messages": [
                {"role": "system", "content": self.system},
                {"role": "user", "content": prompt},
            ],
            "temperature": self.temperature,
            "max_tokens": self.max_tokens,
        }
        if self.json_mode:
            body["response_format"] = {"type": "json_object"}
        async with limit:
            started = time.perf_counter()
            reply = await chat_completion(client, body, secret=key)
            latency_ms = (time.perf_counter() - started) * 1000
        details: dict[str, Any] = {
            "prompt_sha256": digest,
            "model": self.model,
            "latency_ms": round(latency_ms, 3),
        }
        if reply.error is not None:
            return OpResult.failure(
                reply.error,
                retriable=reply.retriable,
                retry_after=reply.retry_after,
                details={**details, "status": reply.status},
                latency_ms=latency_ms,
            )
        details.update(
            raw_answer=reply.content,
            prompt_tokens=reply.prompt_tokens,
            completion_tokens=reply.completion_tokens,
        )
        cost = reply.cost(self.prices, self.model)
        try:
            value = self.parse(reply.content)
        except JudgeAnswerError as exc:
            return OpResult.failure(
                str(exc), retriable=True, details=details, cost=cost, latency_ms=latency_ms
            )
        return OpResult(value=value, cost=cost, latency_ms=latency_ms, details=details)


JUDGE_UNVERSIONED = (
    "prices",
    "settings",
    "base_url",
    "api_key",
    "concurrency",
    "timeout",
    "retries",
    "backoff",
)
"""Parameters of the judge (and of ops built on its request path) that do not change what
it answers: where and how it is asked, and what it costs."""

Judge = op(
    name="judge",
    deterministic=False,
    batched=True,
    depends=(parse_answer,),  # the parser decides the values; its module is not followed
    distributions=(),  # the model's name is in version_state; the HTTP client does not score
    higher_is_worse=False,  # a score: the lowest are the worst
    unversioned=JUDGE_UNVERSIONED,
)(JudgeOp)


def _seconds(name: str, value: float | str) -> float:
    try:
        return parse_duration(value)
    except DurationError as exc:
        raise OpDefinitionError(f"judge: {name}: {exc}") from None


def _template_fields(template: str) -> tuple[str, ...]:
    fields: dict[str, None] = {}
    try:
        parsed = list(string.Formatter().parse(template))
    except ValueError as exc:
        raise OpDefinitionError(
            f"judge: the prompt template is malformed ({exc}); "
            "write literal braces as {{ and }}"
        ) from None
    for _, name, spec, conversion in parsed:
        if name is None:
            continue
        if not name.isidentifier() or spec or conversion:
            raise OpDefinitionError(
                f"judge: prompt placeholder {{{name}{'!' + conversion if conversion else ''}"
                f"{':' + spec if spec else ''}}} is not a plain argument name; write {{name}} with "
                "a Python identifier, and literal braces as {{ and }}"
            )
        fields[name] = None
    if not fields:
        raise OpDefinitionError(
            "judge: the prompt has no {placeholders}; it would judge nothing about the call"
        )
    return tuple(fields)


def _as_text(value: Any) -> str:
    if isinstance(value, str):
        return value
    return orjson.dumps(value, option=orjson.OPT_NON_STR_KEYS).decode() if value is not None else ""
