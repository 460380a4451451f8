"""The ``weave-stream`` command line, run as a user runs it: a child process."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

__all__ = ["weave_stream"]


def weave_stream(
    *args: str, env: dict[str, str] | None = None, timeout: float = 300, cwd: Path | None = None
) -> subprocess.CompletedProcess[str]:
    """Run ``weave-stream ARGS`` with this Python (in ``cwd``, default this directory); its
    exit code and captured output."""
    return subprocess.run(
        [sys.executable, "-m", "weave_stream", *args],
        capture_output=True,
        text=True,
        timeout=timeout,
        env={**os.environ, **(env or {})},
        cwd=cwd,
    )
