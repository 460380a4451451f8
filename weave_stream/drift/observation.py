"""What a monitor observes: one embedding with its call id, event time, group and text.

>>> import numpy as np
>>> from weave_stream.topology.monitors import Monitor
>>> spec = Monitor(name="m", column="e", text="inputs.document",
...                    reference={"first_n": 10}, group_by=["attributes.env"])
>>> seen = observation_from_call(
...     {"id": "c1", "started_at": "2026-11-26T03:00:00+00:00",
...      "inputs": {"document": "Invoice  7"}, "attributes": {"env": "prod"}},
...     np.ones(4), spec)
>>> seen.group, excerpt(seen.text)
((('attributes.env', 'prod'),), 'Invoice 7')
"""

from __future__ import annotations

import base64
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

import numpy as np
import orjson

from weave_stream.drift.findings import GroupKey, group_key
from weave_stream.errors import MissingFieldError
from weave_stream.ingest.call import Call
from weave_stream.topology.monitors import Monitor
from weave_stream.topology.selection import FieldPath

__all__ = [
    "EXCERPT_CHARS",
    "Observation",
    "decode_observation",
    "encode_ack",
    "encode_observation",
    "excerpt",
    "observation_from_call",
]

EXCERPT_CHARS = 280


@dataclass(frozen=True)
class Observation:
    """One embedding to score: its call id, event time, group and document text."""

    call_id: str
    vector: np.ndarray
    time: datetime
    group: GroupKey = ()
    text: str | None = None


def observation_from_call(
    call: Call | Mapping[str, Any], vector: np.ndarray, spec: Monitor
) -> Observation:
    """An observation of ``call``: group-by values and text read by the spec's dotted paths.

    A missing group-by field groups as ``""``; the time is ``started_at`` (else
    ``ended_at``, else now).
    """
    data = call.to_dict() if isinstance(call, Call) else dict(call)
    values = {path: _read(data, path) for path in spec.group_by}
    text = _read(data, spec.text) if spec.text else None
    stamp = data.get("started_at") or data.get("ended_at")
    if isinstance(stamp, str):
        stamp = datetime.fromisoformat(stamp)
    when = stamp if isinstance(stamp, datetime) else datetime.now(UTC)
    return Observation(
        call_id=str(data["id"]),
        vector=np.asarray(vector, dtype=np.float32),
        time=when if when.tzinfo else when.replace(tzinfo=UTC),
        group=group_key(values),
        text=None if text is None else str(text),
    )


def _read(data: Mapping[str, Any], path: str) -> Any:
    try:
        return FieldPath.parse(path).resolve(data, {})
    except MissingFieldError:
        return None


def excerpt(text: str | None) -> str | None:
    """``text`` on one line, cut to EXCERPT_CHARS (an ellipsis marks the cut)."""
    if text is None:
        return None
    flat = " ".join(text.split())
    return flat if len(flat) <= EXCERPT_CHARS else flat[: EXCERPT_CHARS - 1] + "…"


def encode_ack(call_ids: Sequence[str]) -> bytes:
    """An acknowledgement of novel examples, as the observation topic carries it."""
    return orjson.dumps({"ack": list(call_ids)})


def encode_observation(observation: Observation) -> bytes:
    """An observation as compact JSON (the vector as base64 float32)."""
    return orjson.dumps(
        {
            "id": observation.call_id,
            "v": base64.b64encode(np.asarray(observation.vector, np.float32).tobytes()).decode(),
            "t": observation.time.isoformat(),
            "g": [list(pair) for pair in observation.group],
            "x": observation.text,
        }
    )


def decode_observation(raw: bytes) -> Observation:
    """Inverse of :func:`encode_observation`."""
    data = orjson.loads(raw)
    return Observation(
        call_id=data["id"],
        vector=np.frombuffer(base64.b64decode(data["v"]), dtype=np.float32),
        time=datetime.fromisoformat(data["t"]),
        group=tuple((str(k), str(v)) for k, v in data["g"]),
        text=data["x"],
    )
