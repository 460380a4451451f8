"""Sample calls built from real documents, for the demo, tests and benchmarks.

The documents are the topic-labelled conversations of the ``chatterbot-corpus``
package (BSD-licensed), read from the installed package: nothing is downloaded.

>>> docs = corpus_documents("english", categories=["trivia"])
>>> docs[0].category, len(docs) > 100
('trivia', True)
>>> call = sample_calls(docs[:1])[0]
>>> call["op_name"], call["inputs"]["document"] == docs[0].text
('text-extract', True)
"""

from __future__ import annotations

import importlib.resources
import uuid
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import orjson
import yaml

from weave_stream.errors import ConfigError

__all__ = [
    "MALFORMED_REASONS",
    "Document",
    "corpus_documents",
    "corpus_examples",
    "malformed_records",
    "sample_calls",
    "split_into_events",
    "weave_client_events",
]

_NAMESPACE = uuid.UUID("6f1c2b1e-9a57-4c59-9d1e-3f4a0b7f5e21")


@dataclass(frozen=True)
class Document:
    """One conversation of the corpus, joined into a text, with its category."""

    category: str
    language: str
    text: str


def corpus_documents(
    language: str = "english", categories: Iterable[str] | None = None
) -> list[Document]:
    """The conversations of one language of chatterbot-corpus, in a stable order."""
    root = Path(str(importlib.resources.files("chatterbot_corpus"))) / "data" / language
    if not root.is_dir():
        known = sorted(p.name for p in root.parent.iterdir() if p.is_dir())
        raise ConfigError(
            f"chatterbot-corpus has no language {language!r}; choose one of {', '.join(known)}"
        )
    wanted = set(categories) if categories is not None else None
    documents = []
    for path in sorted(root.glob("*.yml")):
        category = path.stem
        if wanted is not None and category not in wanted:
            continue
        data = yaml.safe_load(path.read_text(encoding="utf-8")) or {}
        for conversation in data.get("conversations", []):
            text = " ".join(str(turn).strip() for turn in conversation if turn is not None)
            if text:
                documents.append(Document(category, language, text))
    return documents


def corpus_examples(
    language: str = "english",
    categories: Iterable[str] | None = None,
    *,
    per_category: int | None = None,
    form: str = "documents",
) -> list[dict[str, Any]]:
    """Rows for an experiment from the corpus, ``per_category`` at most of each category.

    ``form="documents"``: ``{"id", "text", "category"}`` (a conversation joined);
    ``form="pairs"``: ``{"id", "question", "reply", "category"}`` (its first two turns).

    >>> row = corpus_examples(categories=["money"], per_category=1, form="pairs")[0]
    >>> sorted(row), row["category"]
    (['category', 'id', 'question', 'reply'], 'money')
    """
    if form not in ("documents", "pairs"):
        raise ValueError(f"form must be 'documents' or 'pairs', got {form!r}")
    root = Path(str(importlib.resources.files("chatterbot_corpus"))) / "data" / language
    if not root.is_dir():
        raise ValueError(f"chatterbot-corpus has no language {language!r}")
    wanted = (
        list(categories) if categories is not None else sorted(p.stem for p in root.glob("*.yml"))
    )
    rows: list[dict[str, Any]] = []
    for category in wanted:
        path = root / f"{category}.yml"
        if not path.is_file():
            known = sorted(p.stem for p in root.glob("*.yml"))
            raise ValueError(f"chatterbot-corpus {language} has no category {category!r}: {known}")
        data = yaml.safe_load(path.read_text(encoding="utf-8")) or {}
        taken = 0
        for index, conversation in enumerate(data.get("conversations", [])):
            turns = [str(turn).strip() for turn in conversation if turn is not None]
            if per_category is not None and taken >= per_category:
                break
            if form == "pairs" and len(turns) >= 2 and turns[0] and turns[1]:
                row = {"question": turns[0], "reply": turns[1]}
            elif form == "documents" and any(turns):
                row = {"text": " ".join(turns)}
            else:
                continue
            rows.append({"id": f"{category}-{index}", **row, "category": category})
            taken += 1
    return rows


def sample_calls(
    documents: Sequence[Document],
    *,
    start: datetime | None = None,
    spacing: timedelta = timedelta(seconds=1),
    op_name: str = "text-extract",
    project_id: str = "acme/support-bot",
    seed: str = "demo",
) -> list[dict[str, Any]]:
    """Complete Weave calls of an extraction app, one per document (deterministic ids)."""
    start = start or datetime(2026, 11, 26, 3, 0, tzinfo=UTC)
    calls = []
    for index, document in enumerate(documents):
        call_id = str(uuid.uuid5(_NAMESPACE, f"{seed}:{index}"))
        started = start + index * spacing
        latency = timedelta(milliseconds=300 + (index * 37) % 900)
        prompt_tokens = 40 + len(document.text) // 4
        completion_tokens = 12 + index % 30
        calls.append(
            {
                "project_id": project_id,
                "id": call_id,
                "op_name": op_name,
                "display_name": op_name,
                "trace_id": str(uuid.uuid5(_NAMESPACE, f"{seed}:trace:{index}")),
                "parent_id": None,
                "started_at": started.isoformat().replace("+00:00", "Z"),
                "ended_at": (started + latency).isoformat().replace("+00:00", "Z"),
                "attributes": {"model": "gpt-4o-mini", "language": document.language},
                "inputs": {"document": document.text},
                "output": {"topic": document.category, "summary": document.text[:80]},
                "exception": None,
                "summary": {
                    "usage": {
                        "gpt-4o-mini": {
                            "prompt_tokens": prompt_tokens,
                            "completion_tokens": completion_tokens,
                            "requests": 1,
                            "total_tokens": prompt_tokens + completion_tokens,
                        }
                    }
                },
            }
        )
    return calls


def split_into_events(call: dict[str, Any]) -> tuple[dict[str, Any], dict[str, Any]]:
    """A complete call as Weave's start event and end event (``weave.call_ended``)."""
    end_fields = {"ended_at", "exception", "output", "summary", "wb_run_step_end"}
    start = {k: v for k, v in call.items() if k not in end_fields}
    end = {k: v for k, v in call.items() if k in end_fields or k in ("id", "project_id")}
    return start, end


def weave_client_events(call: dict[str, Any]) -> tuple[dict[str, Any], dict[str, Any]]:
    """A complete call as the real ``weave`` client sends it in halves: ``{"start": ...}``
    and ``{"end": ...}``, the end carrying ``started_at``, ``trace_id`` and ``is_eval``
    as well (shared/weave_client/captured.jsonl)."""
    start, end = split_into_events(call)
    end = {**end, "trace_id": call.get("trace_id"), "is_eval": False}
    end["started_at"] = call["started_at"]
    return {"start": start}, {"end": end}


MALFORMED_REASONS = (
    "invalid_json",
    "not_an_object",
    "missing_id",
    "malformed_id",
    "wrong_type",
    "bad_timestamp",
    "unknown_shape",
    "too_large",
)


def malformed_records(max_payload_bytes: int = 1024 * 1024) -> list[tuple[str, bytes]]:
    """One bad record per dead-letter reason, as ``(expected_reason, raw bytes)``."""
    base = {"id": "bad-0001", "started_at": "2026-11-26T03:00:00Z", "ended_at": 1795662001}

    def with_(**fields: Any) -> bytes:
        return orjson.dumps({**base, **fields})

    oversized = {**base, "id": "bad-0009", "inputs": {"document": "x" * (max_payload_bytes + 1)}}
    return [
        ("invalid_json", b'{"id": "bad-0002", "started_at": '),
        ("not_an_object", b'["bad-0003", "2026-11-26T03:00:00Z"]'),
        ("missing_id", orjson.dumps({k: v for k, v in base.items() if k != "id"})),
        ("malformed_id", with_(id="has spaces and / slashes")),
        ("wrong_type", with_(id="bad-0005", inputs="a string, not an object")),
        ("bad_timestamp", with_(id="bad-0006", started_at="last tuesday")),
        ("unknown_shape", orjson.dumps({"id": "bad-0007", "op_name": "text-extract"})),
        ("too_large", orjson.dumps(oversized)),
    ]
