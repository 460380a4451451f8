"""Processes seen from outside, through ``/proc``: alive or gone, and whose children.

>>> import os
>>> alive(os.getpid())
True
"""

from __future__ import annotations

import os
from pathlib import Path

from tests.support.waiting import wait_until

__all__ = ["alive", "child_commands", "wait_gone"]


def alive(pid: int) -> bool:
    """Whether ``pid`` runs (a zombie, dead but not yet reaped, does not)."""
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    # A zombie still answers kill(0): look at its state.
    try:
        state = Path(f"/proc/{pid}/stat").read_text().split(")")[-1].split()[0]
    except OSError:
        return False
    return state != "Z"


def wait_gone(pid: int, timeout: float = 10.0, what: str = "") -> None:
    """Until ``pid`` no longer runs; fail naming it (and ``what`` it was) if it still does."""
    wait_until(
        lambda: alive(pid),
        timeout,
        f"process {pid}{f' ({what})' if what else ''} to end",
        until=lambda running: not running,
        interval=0.05,
    )


def child_commands(pid: int) -> dict[int, list[str]]:
    """``{child pid: argv}`` of the live children of ``pid`` (of any of its threads)."""
    children: dict[int, list[str]] = {}
    for task in Path(f"/proc/{pid}/task").glob("*"):
        try:
            pids = [int(p) for p in (task / "children").read_text().split()]
        except OSError:  # the thread ended meanwhile
            continue
        for child in pids:
            try:
                argv = Path(f"/proc/{child}/cmdline").read_bytes().split(b"\0")
            except OSError:  # the child ended meanwhile
                continue
            if alive(child):
                children[child] = [arg.decode(errors="replace") for arg in argv if arg]
    return children
