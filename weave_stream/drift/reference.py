"""The reference of a monitor: which examples are known, gathered from the stream or a file.

``first_n`` takes the first N embeddings the monitor sees; ``time_range`` takes
those of calls started in the range and is complete once the event-time watermark
passes its end; ``jsonl`` reads known calls from a file (the runner embeds them with
the monitor's column, then :meth:`ReferenceCollector.add` s them).

The *fingerprint* of a reference (its spec and ids) names the snapshot built from
it, so a worker rebuilds its index when the reference changed.

>>> import numpy as np
>>> from weave_stream.topology.monitors import FirstNReference
>>> collector = ReferenceCollector(FirstNReference(n=2))
>>> [collector.offer(cid, np.ones(3)) for cid in ("a", "b", "c")]
[True, True, False]
>>> collector.is_complete(), collector.ids
(True, ['a', 'b'])
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Sequence
from datetime import datetime

import numpy as np

from weave_stream.errors import IngestError, TopologyError
from weave_stream.ingest.call import Call
from weave_stream.ingest.files import read_call_file
from weave_stream.topology.monitors import (
    FirstNReference,
    JsonlReference,
    Monitor,
    ReferenceSpec,
    TimeRangeReference,
)

__all__ = ["ReferenceCollector", "read_reference_calls", "reference_fingerprint"]


class ReferenceCollector:
    """Gathers reference embeddings (see the module docstring); repeated ids count once."""

    def __init__(self, spec: ReferenceSpec) -> None:
        self.spec = spec
        self.ids: list[str] = []
        self._vectors: list[np.ndarray] = []
        self._seen: set[str] = set()
        self._loaded = False

    def offer(self, call_id: str, vector: np.ndarray, started_at: datetime | None = None) -> bool:
        """Offer one streamed embedding; return True when it joined the reference."""
        spec = self.spec
        if call_id in self._seen or isinstance(spec, JsonlReference):
            return False
        if isinstance(spec, FirstNReference) and len(self.ids) >= spec.n:
            return False
        if isinstance(spec, TimeRangeReference) and (
            started_at is None or not spec.contains(started_at)
        ):
            return False
        self._take(call_id, vector)
        return True

    def add(self, call_ids: Sequence[str], vectors: np.ndarray) -> None:
        """Add embeddings of the reference file's calls (``jsonl`` references)."""
        for call_id, vector in zip(call_ids, np.asarray(vectors), strict=True):
            if call_id not in self._seen:
                self._take(call_id, vector)
        self._loaded = True

    def _take(self, call_id: str, vector: np.ndarray) -> None:
        self._seen.add(call_id)
        self.ids.append(call_id)
        self._vectors.append(np.asarray(vector, dtype=np.float32))

    def is_complete(self, watermark: datetime | None = None) -> bool:
        """True when the reference is whole: N taken, the range passed, or the file added."""
        spec = self.spec
        if isinstance(spec, FirstNReference):
            return len(self.ids) >= spec.n
        if isinstance(spec, TimeRangeReference):
            return watermark is not None and watermark >= spec.end
        return self._loaded

    @property
    def vectors(self) -> np.ndarray:
        """The reference embeddings, one row per id."""
        if not self._vectors:
            return np.empty((0, 0), dtype=np.float32)
        return np.vstack(self._vectors)


def read_reference_calls(spec: JsonlReference, where: str = "monitor") -> list[Call]:
    """Read a JSONL file of known calls (complete calls, or start and end events).

    Raises :class:`TopologyError` naming the file, the line and the reason for the
    first bad line: a broken reference must fail at load, not drift silently.
    """
    try:
        calls, dead_letters = read_call_file(spec.path)
    except IngestError as exc:
        raise TopologyError(f"{where}: reference {exc}; fix reference.path") from None
    if dead_letters:
        letter = dead_letters[0]
        raise TopologyError(
            f"{where}: reference file {spec.path}, line {letter.source_offset}: "
            f"{letter.reason}: {letter.detail}; fix or remove the line"
        )
    return calls


def reference_fingerprint(spec: Monitor, ids: Sequence[str], source: str = "") -> str:
    """A digest of the monitor spec and the reference ids (plus the caller's ``source``).

    >>> from weave_stream.topology.monitors import Monitor
    >>> spec = Monitor(name="m", column="e", reference={"first_n": 2})
    >>> reference_fingerprint(spec, ["a", "b"]) == reference_fingerprint(spec, ["a", "c"])
    False
    """
    digest = hashlib.sha256(spec.model_dump_json().encode())
    digest.update(json.dumps([source, *ids]).encode())
    return digest.hexdigest()[:32]
