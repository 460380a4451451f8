"""A small application traced by the real weave client (run by the weave client's venv).

``python weave_app.py ENTITY/PROJECT MANIFEST GUARD_LOG [CALLS]``: installs the
loopback guard, then traces what the capture in shared/weave_client/ traced —
nested ops, an op that raises, an OpenAI-style chat answer with usage, an eager op,
a call in a thread — and ``CALLS`` more ``add`` calls spread over time (for the test
that stops Kafka meanwhile). The client is pointed at weave-stream by the usual
environment variables. Each op writes what it knows of its own call (id, trace,
parent, inputs) to MANIFEST, so the test can check every call that arrives.
"""

from __future__ import annotations

import contextlib
import json
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).parent))


def main() -> int:
    from loopback_guard import install

    install(sys.argv[3])  # before weave opens a socket
    import weave

    made: list[dict] = []

    def note(op: str, **inputs: object) -> None:
        call = weave.get_current_call()
        assert call is not None
        made.append(
            {
                "op": op,
                "id": call.id,
                "trace_id": call.trace_id,
                "parent_id": call.parent_id,
                "inputs": inputs,
            }
        )

    @weave.op
    def add(a: int, b: int) -> int:
        note("add", a=a, b=b)
        return a + b

    @weave.op
    def upper(text: str) -> str:
        note("upper", text=text)
        return text.upper()

    @weave.op
    def count_words(text: str) -> int:
        note("count_words", text=text)
        return len(text.split())

    @weave.op
    def pipeline(text: str) -> dict:
        note("pipeline", text=text)
        return {"upper": upper(text), "words": count_words(text)}

    @weave.op
    def fails(x: int) -> int:
        note("fails", x=x)
        raise ValueError(f"bad input {x}")

    @weave.op
    def chat(prompt: str) -> dict:
        note("chat", prompt=prompt)
        # The shape of an OpenAI chat.completions answer, as a plain dict.
        return {
            "id": "chatcmpl-stub1",
            "object": "chat.completion",
            "created": 1764820000,
            "model": "gpt-4o-mini-2024-07-18",
            "choices": [
                {
                    "index": 0,
                    "finish_reason": "stop",
                    "message": {"role": "assistant", "content": "Paris."},
                }
            ],
            "usage": {"prompt_tokens": 12, "completion_tokens": 3, "total_tokens": 15},
        }

    @weave.op(eager_call_start=True)
    def long_running(n: int) -> int:
        note("long_running", n=n)
        return n * 2

    client = weave.init(sys.argv[1])
    add(2, 3)
    pipeline("hello weave stream")
    with contextlib.suppress(ValueError):  # traced by weave, exception included
        fails(7)
    chat("Capital of France?")
    with weave.thread("thread-1"):
        add(10, 20)
    long_running(21)
    for index in range(int(sys.argv[4]) if len(sys.argv) > 4 else 0):
        add(index, 100)
        time.sleep(0.2)
        if index % 5 == 4:
            client.flush()  # a batch per five calls, spread over the run
    client.flush()
    Path(sys.argv[2]).write_text(json.dumps(made))
    return 0


if __name__ == "__main__":
    sys.exit(main())
