"""GenAI span attributes → a Weave call's inputs, output, usage, exception and attributes.

Read, in this order of preference where conventions differ:

* OpenTelemetry's GenAI semantic conventions: ``gen_ai.operation.name``,
  ``gen_ai.provider.name`` (``gen_ai.system`` before it), ``gen_ai.request.*``
  (model, temperature, max_tokens, ...), ``gen_ai.response.model|id|finish_reasons``,
  ``gen_ai.usage.input_tokens|output_tokens``, ``gen_ai.input.messages`` /
  ``gen_ai.output.messages`` (JSON) and the older per-message events
  (``gen_ai.user.message``, ``gen_ai.choice``, ...), ``gen_ai.tool.*``, ``error.type``;
* OpenLLMetry: ``gen_ai.prompt.<i>.*`` / ``gen_ai.completion.<i>.*``,
  ``gen_ai.usage.prompt_tokens|completion_tokens``, ``llm.usage.total_tokens``,
  ``llm.request.type``;
* OpenInference: ``llm.model_name``, ``llm.provider``/``llm.system``,
  ``llm.input_messages.<i>.message.*`` / ``llm.output_messages.<i>.message.*``,
  ``llm.token_count.prompt|completion|total``, ``llm.invocation_parameters``,
  ``input.value`` / ``output.value``, ``openinference.span.kind``.

Usage goes where Weave puts it: ``summary.usage[<model>]`` with ``prompt_tokens``,
``completion_tokens``, ``total_tokens`` and ``requests``.

>>> fields = genai_fields({"gen_ai.operation.name": "chat", "gen_ai.request.model": "gpt-4o",
...     "gen_ai.prompt.0.role": "user", "gen_ai.prompt.0.content": "Capital of France?",
...     "gen_ai.completion.0.role": "assistant", "gen_ai.completion.0.content": "Paris.",
...     "gen_ai.usage.input_tokens": 12, "gen_ai.usage.output_tokens": 3}, [], False, "")
>>> fields["inputs"]["messages"], fields["output"]["messages"][0]["content"]
([{'role': 'user', 'content': 'Capital of France?'}], 'Paris.')
>>> fields["summary"]["usage"]
{'gpt-4o': {'prompt_tokens': 12, 'completion_tokens': 3, 'total_tokens': 15, 'requests': 1}}
"""

from __future__ import annotations

import json
import re
from typing import Any

__all__ = ["genai_fields"]

_INDEXED = re.compile(r"^(?P<index>\d+)\.(?P<field>.+)$")
_ROLE_EVENTS = {
    "gen_ai.system.message": "system",
    "gen_ai.user.message": "user",
    "gen_ai.assistant.message": "assistant",
    "gen_ai.tool.message": "tool",
}


def genai_fields(
    attributes: dict[str, Any], events: list[dict[str, Any]], failed: bool, status_message: str
) -> dict[str, Any]:
    """``inputs``, ``output``, ``summary``, ``exception`` and ``attributes`` of one span."""
    first = _first(attributes)
    model = first("gen_ai.response.model", "gen_ai.request.model", "llm.model_name")
    inputs: dict[str, Any] = {
        name.removeprefix("gen_ai.request."): value
        for name, value in attributes.items()
        if name.startswith("gen_ai.request.")
    }
    inputs.update(_json(attributes.get("llm.invocation_parameters")) or {})
    messages = (
        _json(attributes.get("gen_ai.input.messages"))
        or _indexed(attributes, "gen_ai.prompt.")
        or _indexed(attributes, "llm.input_messages.", strip="message.")
        or [
            {"role": _ROLE_EVENTS[e["name"]], **e["attributes"]}
            for e in events
            if e["name"] in _ROLE_EVENTS
        ]
    )
    if messages:
        inputs["messages"] = messages
    if "gen_ai.system_instructions" in attributes:
        inputs["system_instructions"] = _json(attributes["gen_ai.system_instructions"])
    if "gen_ai.tool.call.arguments" in attributes:
        inputs["arguments"] = _json(attributes["gen_ai.tool.call.arguments"])
    if not messages and "input.value" in attributes:
        inputs["input"] = _json(attributes["input.value"])
    fields: dict[str, Any] = {"inputs": inputs, "output": _output(attributes, events)}
    usage = _usage(first)
    counts = {"success": 0 if failed else 1, "error": 1 if failed else 0}
    fields["summary"] = {"status_counts": counts}
    if usage:
        fields["summary"]["usage"] = {model or "unknown": usage}
    exception = _exception(attributes, events, failed, status_message)
    if exception is not None:
        fields["exception"] = exception
    operation = first("gen_ai.operation.name", "llm.request.type", "openinference.span.kind")
    provider = first("gen_ai.provider.name", "gen_ai.system", "llm.provider", "llm.system")
    described = {"operation": operation, "provider": provider, "model": model}
    fields["attributes"] = {"gen_ai": {k: v for k, v in described.items() if v is not None}}
    return fields


def _first(attributes: dict[str, Any]) -> Any:
    def first(*names: str) -> Any:
        return next((attributes[n] for n in names if attributes.get(n) is not None), None)

    return first


def _output(attributes: dict[str, Any], events: list[dict[str, Any]]) -> Any:
    messages = (
        _json(attributes.get("gen_ai.output.messages"))
        or _indexed(attributes, "gen_ai.completion.")
        or _indexed(attributes, "llm.output_messages.", strip="message.")
        or [e["attributes"] for e in events if e["name"] == "gen_ai.choice"]
    )
    output: dict[str, Any] = {}
    if messages:
        output["messages"] = messages
    for name, key in (
        ("gen_ai.response.id", "id"),
        ("gen_ai.response.finish_reasons", "finish_reasons"),
    ):
        if name in attributes:
            output[key] = attributes[name]
    if "gen_ai.tool.call.result" in attributes:
        output["result"] = _json(attributes["gen_ai.tool.call.result"])
    if output:
        return output
    return _json(attributes["output.value"]) if "output.value" in attributes else None


def _usage(first: Any) -> dict[str, int]:
    prompt = first(
        "gen_ai.usage.input_tokens", "gen_ai.usage.prompt_tokens", "llm.token_count.prompt"
    )
    completion = first(
        "gen_ai.usage.output_tokens", "gen_ai.usage.completion_tokens", "llm.token_count.completion"
    )
    total = first("llm.usage.total_tokens", "llm.token_count.total", "gen_ai.usage.total_tokens")
    if prompt is None and completion is None and total is None:
        return {}
    usage = {"prompt_tokens": prompt, "completion_tokens": completion}
    usage["total_tokens"] = total if total is not None else (prompt or 0) + (completion or 0)
    return {**{k: int(v) for k, v in usage.items() if v is not None}, "requests": 1}


def _exception(
    attributes: dict[str, Any], events: list[dict[str, Any]], failed: bool, status_message: str
) -> str | None:
    """Weave's exception string: JSON of type, message and traceback."""
    raised = next((e["attributes"] for e in events if e["name"] == "exception"), None)
    if raised is None and not failed:
        return None
    raised = raised or {}
    return json.dumps(
        {
            "type": raised.get("exception.type") or attributes.get("error.type") or "Error",
            "message": raised.get("exception.message") or status_message,
            "traceback": raised.get("exception.stacktrace"),
        }
    )


def _indexed(attributes: dict[str, Any], prefix: str, strip: str = "") -> list[dict[str, Any]]:
    """``<prefix><i>.<field>`` attributes as a list of dicts, by index."""
    found: dict[int, dict[str, Any]] = {}
    for name, value in attributes.items():
        if name.startswith(prefix):
            match = _INDEXED.match(name[len(prefix) :])
            if match:
                field = match["field"].removeprefix(strip)
                found.setdefault(int(match["index"]), {})[field] = value
    return [found[index] for index in sorted(found)]


def _json(value: Any) -> Any:
    """A JSON string's value (conventions carry messages and parameters as JSON text)."""
    if isinstance(value, str) and value[:1] in ("{", "["):
        try:
            return json.loads(value)
        except ValueError:
            return value
    return value
