"""Calls from a JSONL file, read the way the ingest stage reads the calls topic.

One record per line: complete calls, or Weave's start and end events (merged by
call id). Blank lines are skipped; a line that is not a call becomes a
:class:`~weave_stream.ingest.outcomes.DeadLetter` whose offset is its line number;
a half whose partner never comes is kept as an incomplete call, since the file is
all there is. A call id seen again is a ``duplicate`` (same content, dropped) or a
``conflict`` (another content, dead-lettered), as on the stream. The local runner,
backfills and a monitor's ``jsonl`` reference read files with this.

>>> import tempfile, pathlib
>>> folder = pathlib.Path(tempfile.mkdtemp())
>>> path = folder / "calls.jsonl"
>>> _ = path.write_text('{"id": "c1", "started_at": 1795662000}\\n'
...                     'not json\\n'
...                     '{"id": "c1", "ended_at": 1795662001}\\n')
>>> calls, dead = read_call_file(path)
>>> [(c.id, c.kind) for c in calls], [(d.reason, d.source_offset) for d in dead]
([('c1', 'complete')], [('invalid_json', 2)])
>>> read_call_file(folder / "missing.jsonl")
Traceback (most recent call last):
...
weave_stream.errors.IngestError: calls file .../missing.jsonl cannot be read (No such file or \
directory); check the path
"""

from __future__ import annotations

import math
from pathlib import Path
from typing import Any

from weave_stream.errors import IngestError
from weave_stream.ingest.call import Call
from weave_stream.ingest.outcomes import (
    DeadLetter,
    ForwardedWindow,
    expire_pending,
    ingest_record,
)

__all__ = ["read_call_file"]


def read_call_file(path: str | Path) -> tuple[list[Call], list[DeadLetter]]:
    """The calls of a JSONL file and the lines that are not calls (see the module docstring).

    Raises :class:`~weave_stream.errors.IngestError` when the file cannot be read.
    """
    path = Path(path)
    calls: list[Call] = []
    dead_letters: list[DeadLetter] = []
    pending: dict[str, Any] = {}
    window = ForwardedWindow(capacity=2**62)  # the whole file: each id once, as the stream does
    try:
        with path.open("rb") as lines:
            for number, line in enumerate(lines, start=1):
                if not line.strip():
                    continue
                result = ingest_record(
                    line.rstrip(b"\r\n"),
                    pending,
                    now=float(number),
                    source=(str(path), 0, number),
                    window=window,
                )
                if result.call is not None:
                    calls.append(result.call)
                elif result.dead_letter is not None:
                    dead_letters.append(result.dead_letter)
    except OSError as exc:
        raise IngestError(
            f"calls file {path} cannot be read ({exc.strerror or exc}); check the path"
        ) from None
    calls.extend(expire_pending(pending, now=math.inf, timeout=0.0))
    return calls, dead_letters
