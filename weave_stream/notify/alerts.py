"""The alert record: what goes on ``<prefix>.alerts`` and to every target.

An alert's id is a digest of what it is about (topology, monitor, kind, detector,
group, call ids, count), not of when it was raised: a worker that reprocesses the
same calls after a crash raises the *same* alert, and the notifier, which keys its
delivery state by alert id, delivers it once.

>>> from datetime import UTC, datetime
>>> alert = Alert.create(
...     topology="extract", monitor="doc_drift", kind="novel_example", score=0.93,
...     threshold=0.71, call_ids=["c9"], nearest_known_call="c2",
...     time=datetime(2026, 11, 26, 3, 0, tzinfo=UTC), excerpt="Factura 7 de ACME",
... )
>>> alert.id.startswith("al_"), len(alert.id)
(True, 27)
>>> Alert.from_json(alert.to_json()) == alert
True
>>> alert.id == Alert.create(**{**alert.model_dump(exclude={"id"}), "time": datetime.now(UTC)}).id
True
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Sequence
from typing import Any

from pydantic import BaseModel, ConfigDict, Field, ValidationError

from weave_stream.drift.findings import AlertKind, Finding, StatValue
from weave_stream.errors import DeliveryError, field_errors
from weave_stream.ingest.call import Timestamp

__all__ = ["Alert", "alert_id"]


def alert_id(
    topology: str,
    monitor: str,
    kind: str,
    call_ids: Sequence[str],
    *,
    group: dict[str, str] | None = None,
    detector: str = "",
    count: int = 1,
) -> str:
    """The deterministic id of an alert: ``al_`` and 24 hex digits of a SHA-256.

    >>> alert_id("t", "m", "novel_example", ["c1"]) == alert_id("t", "m", "novel_example", ["c1"])
    True
    >>> alert_id("t", "m", "novel_example", ["c1"]) == alert_id("t", "m", "novel_example", ["c2"])
    False
    """
    identity: list[object] = [topology, monitor, kind, detector]
    identity += [sorted((group or {}).items()), list(call_ids), count]
    digest = hashlib.sha256(json.dumps(identity, separators=(",", ":")).encode()).hexdigest()
    return f"al_{digest[:24]}"


class Alert(BaseModel):
    """One alert: what was found, where, how strongly, and which calls to look at.

    ``score`` is compared with ``threshold`` (see
    :class:`~weave_stream.drift.findings.Finding`); ``call_ids`` are the calls (or a
    sample when ``count`` > 1), the first being the one to open;
    ``nearest_known_call`` is the known example the first call was compared with.
    """

    model_config = ConfigDict(extra="forbid", frozen=True)

    id: str = Field(pattern=r"^al_[0-9a-f]{24}$")
    topology: str
    monitor: str
    kind: AlertKind
    score: float
    threshold: float
    call_ids: tuple[str, ...] = Field(min_length=1)
    nearest_known_call: str | None = None
    time: Timestamp
    group: dict[str, str] = Field(default_factory=dict)
    count: int = Field(default=1, ge=1)
    stats: dict[str, StatValue] = Field(default_factory=dict)
    excerpt: str | None = None
    nearest_known_excerpt: str | None = None
    detector: str = ""
    project_id: str | None = None

    @classmethod
    def create(cls, **fields: Any) -> Alert:
        """Build an alert, deriving its id from its content."""
        fields.pop("id", None)
        identity = alert_id(
            fields["topology"],
            fields["monitor"],
            fields["kind"],
            list(fields["call_ids"]),
            group=dict(fields.get("group") or {}),
            detector=str(fields.get("detector") or ""),
            count=int(fields.get("count", 1)),
        )
        return cls(id=identity, **fields)

    @classmethod
    def from_finding(
        cls, topology: str, finding: Finding, *, project_id: str | None = None
    ) -> Alert:
        """The alert of a monitor's finding."""
        return cls.create(
            topology=topology,
            monitor=finding.monitor,
            kind=finding.kind,
            score=finding.score,
            threshold=finding.threshold,
            call_ids=finding.call_ids,
            nearest_known_call=finding.nearest_known_call,
            time=finding.time,
            group=finding.group_dict,
            count=finding.count,
            stats=dict(finding.stats),
            excerpt=finding.excerpt,
            nearest_known_excerpt=finding.nearest_known_excerpt,
            detector=finding.detector,
            project_id=project_id,
        )

    @property
    def first_call(self) -> str:
        """The call to open first."""
        return self.call_ids[0]

    def to_json(self) -> bytes:
        """Canonical JSON (what the alerts topic and webhooks carry; the bytes that are signed)."""
        return self.model_dump_json().encode()

    @classmethod
    def from_json(cls, raw: bytes | str) -> Alert:
        """Parse :meth:`to_json` output; raise :class:`DeliveryError` saying what is wrong."""
        try:
            return cls.model_validate_json(raw)
        except ValidationError as exc:
            problems = "; ".join(f"{f}: {m}" for f, m, _ in field_errors(exc, whole="alert"))
            raise DeliveryError(f"not an alert record: {problems}") from None
