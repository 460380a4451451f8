"""A stand-in for an LLM judge: an OpenAI-compatible endpoint on loopback, *not* an LLM.

The demo and the example experiments use it when no judge endpoint is configured, so
that judge columns have values without a network or an API key; it says so plainly
in every answer. It answers ``POST /v1/chat/completions``:

* as a judge: ``{"score": s, "reason": r}`` where ``s`` is the share of the
  extraction's content words found in the document (a crude faithfulness proxy), read
  from the ``Document:`` and ``Extraction:`` sections of the prompt and scaled to the
  score range the judge's system prompt asks for. With ``temperature`` above 0 the
  score gets Gaussian noise (s.d. ``0.15 x temperature`` of the range), so that trials
  differ as an LLM's do;
* as the ``explain`` op's judge (a system prompt that asks to *explain* a failure):
  ``{"reason": r}``, one of a few fixed kinds of failure picked by word overlap of the
  ``Input:``, ``Output:`` and (optional) ``Expected:`` sections.

>>> prompt = "Document:\\nThe invoice total is 42 dollars.\\n\\nExtraction:\\ninvoice total"
>>> score_prompt(prompt, 0, 1)
(1.0, 'stand-in judge (word overlap, not an LLM): 2 of 2 extraction words are in the document')
>>> explain_prompt("Input:\\nYour favourite food?\\n\\nOutput:\\nI like chess, mostly openings")
'stand-in (word overlap, not an LLM): off topic: not one word in common with the input'
"""

from __future__ import annotations

import json
import random
import re
import time
from http.server import BaseHTTPRequestHandler
from typing import Any

from weave_stream.loopback import LoopbackServer

__all__ = ["StandInJudge", "chat_completion", "explain_prompt", "score_prompt"]

_SECTION = re.compile(r"^(Document|Extraction|Input|Output|Expected):\s*$", re.MULTILINE)
_RANGE = re.compile(r"from (-?[\d.]+) to (-?[\d.]+)")
_WORD = re.compile(r"[a-z0-9']{4,}")
_random = random.Random()  # trials of a real LLM differ; so do the stand-in's (temperature > 0)


def score_prompt(prompt: str, low: float, high: float) -> tuple[float, str]:
    """A deterministic score in ``[low, high]`` and its reason, from the prompt's sections."""
    sections = _sections(prompt)
    document = set(_WORD.findall(sections.get("document", "").lower()))
    extraction = set(_WORD.findall(sections.get("extraction", "").lower()))
    if not document or not extraction:
        middle = (low + high) / 2
        return middle, "stand-in judge (not an LLM): no Document/Extraction sections to compare"
    found = len(extraction & document)
    share = found / len(extraction)
    score = round(low + share * (high - low), 3)
    return score, (
        f"stand-in judge (word overlap, not an LLM): {found} of {len(extraction)} "
        "extraction words are in the document"
    )


def explain_prompt(prompt: str) -> str:
    """Why an output failed, as one of a few kinds, from the prompt's sections (not an LLM)."""
    sections = _sections(prompt)
    given = set(_WORD.findall(sections.get("input", "").lower()))
    output_text = sections.get("output", "")
    output = set(_WORD.findall(output_text.lower()))
    expected = sections.get("expected", "").strip()
    prefix = "stand-in (word overlap, not an LLM): "
    if not output_text.strip():
        return prefix + "empty output: there is nothing to judge"
    if expected and expected.lower() not in output_text.lower():
        return (
            prefix
            + f"wrong answer: {output_text.strip()[:40]!r} where {expected[:40]!r} was expected"
        )
    if len(output) <= 2:
        return prefix + "too short: a few words cannot answer it"
    if not output & given:
        if len(output) > 2 * max(len(given), 1):
            return prefix + "rambling: a long reply about something else entirely"
        return prefix + "off topic: not one word in common with the input"
    if len(output & given) < 0.5 * len(output):
        return prefix + "unsupported content: most of its words are not in the input"
    return prefix + "no fault found by word overlap"


def _sections(prompt: str) -> dict[str, str]:
    sections: dict[str, str] = {}
    marks = list(_SECTION.finditer(prompt))
    for mark, following in zip(marks, [*marks[1:], None], strict=True):
        end = following.start() if following else len(prompt)
        # A section is its first paragraph: the instructions after it are not part of it.
        sections[mark.group(1).lower()] = prompt[mark.end() : end].strip().split("\n\n")[0]
    return sections


def chat_completion(model: str, content: str, prompt_chars: int) -> dict[str, Any]:
    """An OpenAI chat-completion response carrying ``content``, with rough token usage."""
    usage = {
        "prompt_tokens": max(1, prompt_chars // 4),
        "completion_tokens": max(1, len(content) // 4),
    }
    usage["total_tokens"] = usage["prompt_tokens"] + usage["completion_tokens"]
    return {
        "id": f"chatcmpl-standin-{time.monotonic_ns()}",
        "object": "chat.completion",
        "created": int(time.time()),
        "model": model,
        "choices": [
            {
                "index": 0,
                "message": {"role": "assistant", "content": content},
                "finish_reason": "stop",
            }
        ],
        "usage": usage,
    }


class StandInJudge(LoopbackServer):
    """The stand-in server on a free loopback port; a context manager."""

    def __init__(self) -> None:
        super().__init__(_Handler)

    @property
    def base_url(self) -> str:
        """``http://127.0.0.1:<port>/v1``, as OpenAI clients take it."""
        return f"{self.origin}/v1"


class _Handler(BaseHTTPRequestHandler):
    def log_message(self, format: str, *args: Any) -> None:
        return  # the demo's output is for the user, not for access logs

    def do_POST(self) -> None:
        if self.path.rstrip("/") not in ("/v1/chat/completions", "/chat/completions"):
            self._send(404, {"error": {"message": f"no route {self.path}"}})
            return
        try:
            body = json.loads(self.rfile.read(int(self.headers.get("Content-Length") or 0)))
            messages = body["messages"]
        except (ValueError, KeyError, TypeError):
            self._send(400, {"error": {"message": "expected a chat-completions JSON body"}})
            return
        system = " ".join(m.get("content", "") for m in messages if m.get("role") == "system")
        prompt = "\n".join(m.get("content", "") for m in messages if m.get("role") == "user")
        if "explain" in system.lower():
            content = json.dumps({"reason": explain_prompt(prompt)})
        else:
            bounds = _RANGE.search(system)
            low, high = (float(bounds.group(1)), float(bounds.group(2))) if bounds else (0.0, 1.0)
            score, reason = score_prompt(prompt, low, high)
            temperature = float(body.get("temperature") or 0.0)
            if temperature > 0:
                noise = _random.gauss(0.0, 0.15 * temperature * (high - low))
                score = round(min(max(score + noise, low), high), 3)
                reason += f" (plus noise at temperature {temperature:g})"
            content = json.dumps({"score": score, "reason": reason})
        size = sum(len(m.get("content", "")) for m in messages)
        self._send(200, chat_completion(body.get("model", "stand-in"), content, size))

    def _send(self, code: int, payload: dict[str, Any]) -> None:
        data = json.dumps(payload).encode()
        self.send_response(code)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        self.wfile.write(data)
