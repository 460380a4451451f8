"""What a monitor finds: the plain record that becomes an alert.

The drift stage does not know about delivery; it emits :class:`Finding` s, and the
notify stage turns them into durable alert records
(:meth:`weave_stream.notify.alerts.Alert.from_finding`).

>>> from datetime import UTC, datetime
>>> finding = Finding(
...     kind="novel_example", monitor="doc_drift", detector="nearest_neighbours",
...     score=0.93, threshold=0.71, call_ids=("c9",), time=datetime(2026, 11, 26, tzinfo=UTC),
...     group=group_key({"env": "prod"}), nearest_known_call="c2",
... )
>>> finding.group_dict, finding.is_above_threshold
({'env': 'prod'}, True)
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import datetime
from typing import Literal

__all__ = ["AlertKind", "Detector", "Finding", "GroupKey", "StatValue", "group_key"]

AlertKind = Literal["novel_example", "distribution_shift", "topic_shift", "new_topic"]
Detector = Literal[
    "nearest_neighbours", "domain_classifier", "sliding_whitened_mean", "sliding_mean"
]
GroupKey = tuple[tuple[str, str], ...]
StatValue = float | int | str | None


def group_key(values: Mapping[str, object]) -> GroupKey:
    """A hashable, ordered group key from group-by field values (``None`` becomes ``""``).

    >>> group_key({"op_name": "extract", "attributes.env": None})
    (('attributes.env', ''), ('op_name', 'extract'))
    """
    return tuple(sorted((str(k), "" if v is None else str(v)) for k, v in values.items()))


@dataclass(frozen=True)
class Finding:
    """One detection: a novel example, or a shifted window / novelty stream.

    ``score`` is compared with ``threshold`` (the distance and the calibrated
    threshold for ``novel_example``; the window statistic and its calibrated
    threshold, or the novelty mean after and before the change, for
    ``distribution_shift``). ``count`` is how many detections this record stands
    for (more than 1 once the cool-down grouped a storm); ``call_ids`` holds them,
    or a sample of them.
    """

    kind: AlertKind
    monitor: str
    detector: Detector
    score: float
    threshold: float
    call_ids: tuple[str, ...]
    time: datetime
    group: GroupKey = ()
    nearest_known_call: str | None = None
    count: int = 1
    stats: Mapping[str, StatValue] = field(default_factory=dict)
    excerpt: str | None = None
    nearest_known_excerpt: str | None = None

    @property
    def group_dict(self) -> dict[str, str]:
        """The group as a mapping of group-by field to value."""
        return dict(self.group)

    @property
    def is_above_threshold(self) -> bool:
        """True when the score exceeds the threshold."""
        return self.score > self.threshold
