"""Virtual environments for the real clients, made by the test set-up from pinned lists.

The weave client pulls 62 packages (~186 MB, click 8.5 among them, which Faust's
click<8.4 excludes), so it never goes into the project's environment: the first test
that needs it makes ``~/.cache/weave-stream/<name>-<digest of its list>/`` with
``python -m venv`` and ``pip install --no-deps -r tests/support/clients/<name>.txt`` (about
30 s here), and every later run reuses it. A changed list makes a new one. A lock
file keeps two test processes from building the same environment at once. A failed
build fails the test (nothing skips).
"""

from __future__ import annotations

import fcntl
import hashlib
import os
import shutil
import subprocess
import sys
import time
from pathlib import Path

__all__ = ["client_python"]

HERE = Path(__file__).parent
CACHE = Path(os.environ.get("WEAVE_STREAM_CLIENT_VENVS", "~/.cache/weave-stream")).expanduser()
BUILD_TIMEOUT = 900.0


def client_python(name: str) -> Path:
    """The interpreter of the environment pinned by ``tests/support/clients/<name>.txt``.

    Built if missing.
    """
    pinned = HERE / f"{name}.txt"
    digest = hashlib.sha256(pinned.read_bytes()).hexdigest()[:12]
    home = CACHE / f"{name}-{digest}"
    python = home / "bin" / "python"
    ready = home / ".ready"
    CACHE.mkdir(parents=True, exist_ok=True)
    with open(CACHE / f"{name}.lock", "w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        if ready.exists():
            return python
        shutil.rmtree(home, ignore_errors=True)  # a build that died half-way
        started = time.monotonic()
        base = getattr(sys, "_base_executable", sys.executable)
        _run([base, "-m", "venv", str(home)])
        _run([str(python), "-m", "pip", "install", "--quiet", "--no-deps", "-r", str(pinned)])
        _run([str(python), "-m", "pip", "check"])
        ready.write_text(f"built in {time.monotonic() - started:.0f} s from {pinned.name}\n")
        return python


def _run(command: list[str]) -> None:
    try:
        subprocess.run(command, check=True, capture_output=True, timeout=BUILD_TIMEOUT)
    except subprocess.CalledProcessError as exc:
        output = (exc.stdout + exc.stderr).decode(errors="replace")[-3000:]
        what = " ".join(command)
        raise RuntimeError(f"building a client environment: {what} failed:\n{output}") from None
