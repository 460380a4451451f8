"""The application ``weave-stream demo --weave`` traces with the real weave client.

Run by an interpreter that has ``weave`` (this file imports nothing else of
weave-stream): ``python weave_app.py PROJECT DOCUMENTS.json``. It extracts a topic and
a summary from each document as a Weave op named ``text-extract`` (the op the demo's
topology watches), through a nested ``llm`` op that answers like OpenAI's chat API
(usage included); one document in ten makes the extraction fail. It is pointed at
weave-stream by ``WF_TRACE_SERVER_URL`` and ``WANDB_BASE_URL``.
"""

from __future__ import annotations

import contextlib
import json
import sys
from pathlib import Path
from typing import Any


def main(project: str, documents_file: str) -> int:
    """Trace one extraction per document; print how many calls were made."""
    import weave  # the client, from the interpreter that runs this file

    @weave.op
    def llm(prompt: str) -> dict[str, Any]:
        words = prompt.split()
        return {
            "model": "gpt-4o-mini-2024-07-18",
            "choices": [{"index": 0, "message": {"role": "assistant", "content": prompt[:80]}}],
            "usage": {
                "prompt_tokens": len(words),
                "completion_tokens": min(len(words), 16),
                "total_tokens": len(words) + min(len(words), 16),
            },
        }

    @weave.op(name="text-extract")
    def extract(document: str, topic: str, fail: bool) -> dict[str, Any]:
        answer = llm(f"Extract the topic and a summary of: {document}")
        if fail:
            raise ValueError("the model's answer was not valid JSON")
        return {"topic": topic, "summary": answer["choices"][0]["message"]["content"]}

    client = weave.init(project)
    documents = json.loads(Path(documents_file).read_text())
    for index, document in enumerate(documents):
        with contextlib.suppress(ValueError):  # traced, with its exception
            extract(document["text"], document["topic"], fail=index % 10 == 9)
    client.flush()
    print(f"traced {len(documents)} text-extract calls, each with a nested llm call")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1], sys.argv[2]))
