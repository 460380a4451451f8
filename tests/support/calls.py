"""Call records shared by the tests of several tiers.

>>> sorted(FULL_CALL)[:3]
['a_future_weave_field', 'attributes', 'deleted_at']
"""

from __future__ import annotations

from typing import Any

__all__ = ["FULL_CALL"]

# A complete call with every field Weave writes (and one it may add later): what a
# round trip through parsing, the valid-calls topic and back must keep intact.
FULL_CALL: dict[str, Any] = {
    "project_id": "acme/extract",
    "id": "019a1b2c-3d4e-7f00-8000-000000000001",
    "op_name": "weave:///acme/extract/op/text-extract:v3",
    "display_name": "text-extract",
    "trace_id": "019a1b2c-3d4e-7f00-8000-0000000000aa",
    "parent_id": "019a1b2c-3d4e-7f00-8000-0000000000bb",
    "thread_id": "thread-1",
    "turn_id": "turn-3",
    "started_at": "2026-11-26T03:15:32.123456Z",
    "ended_at": "2026-11-26T03:15:33.5Z",
    "attributes": {"model": "gpt-4o", "weave": {"client_version": "0.52"}},
    "inputs": {"document": "Invoice #7 from ACME", "options": {"lang": "en"}},
    "exception": None,
    "output": {"total": "7", "vendor": "ACME", "lines": [1, 2.5, None]},
    "summary": {
        "usage": {"gpt-4o": {"prompt_tokens": 120, "completion_tokens": 30, "requests": 1}},
        "status_counts": {"success": 1},
        "weave": {"status": "success", "latency_ms": 1377},
    },
    "otel_dump": {"span": {"name": "extract"}},
    "wb_user_id": "user-9",
    "wb_run_id": "run-4",
    "wb_run_step": 12,
    "wb_run_step_end": 13,
    "deleted_at": None,
    "storage_size_bytes": 2048,
    "total_storage_size_bytes": 4096,
    "a_future_weave_field": {"kept": True},
}
