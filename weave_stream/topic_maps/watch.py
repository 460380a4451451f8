"""Topic alerts: a topic whose share leaves its normal range, outliers that gather.

Over one window of assigned calls (the topic column's values, with their
embeddings):

* ``topic_shift``: a topic's share of the window against its share in the map,
  as a binomial z score; beyond ``z_threshold`` (both ways: a topic that grows or
  one that vanishes) raises an alert with example calls of the topic.
* ``new_topic``: the window's outliers are clustered (DBSCAN, cosine; ``eps`` twice
  the map's median topic radius, as two members of a topic lie up to about two radii
  apart, capped at :data:`MAX_EPS`); a dense group of at least ``min_new_topic`` calls is
  a topic the map does not know yet, raised with its calls.

Alerts are :class:`~weave_stream.notify.alerts.Alert` records (deterministic ids), so
the existing notifier delivers them once to Slack and webhooks.

>>> from weave_stream.store.topic_map import Topic, TopicMap
>>> topics = tuple(Topic(i, f"t{i}", "", (float(i == 0), float(i == 1)), 0.1, 50, 0.5)
...                for i in range(2))
>>> watch = TopicWatch(TopicMap("s", "c", "embed:1", "topicmap:1", topics), min_calls=20)
>>> rows = [WindowCall(f"c{i}", 0 if i < 38 else 1) for i in range(40)]
>>> [(a.kind, a.stats["topic"]) for a in watch.check(rows, time=1.78e9)]
[('topic_shift', 't0'), ('topic_shift', 't1')]
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

import numpy as np
from sklearn.cluster import DBSCAN

from weave_stream.notify.alerts import Alert
from weave_stream.store.topic_map import TopicMap
from weave_stream.topic_maps.cluster import unit_rows

__all__ = ["TopicWatch", "WindowCall"]

EXAMPLES = 5
MAX_EPS = 0.6  # a cosine distance past which outliers are not one topic whatever the map


@dataclass(frozen=True)
class WindowCall:
    """One call of the window: its id, assigned topic id (-1: outlier) and embedding."""

    call_id: str
    topic_id: int
    vector: Sequence[float] | None = None
    excerpt: str | None = None


@dataclass(frozen=True)
class TopicWatch:
    """Checks windows of assigned calls against ``topic_map``."""

    topic_map: TopicMap
    z_threshold: float = 4.0
    min_calls: int = 50  # fewer calls in a window: shares are too noisy to judge
    min_new_topic: int = 8

    def check(self, calls: Sequence[WindowCall], *, time: Any) -> list[Alert]:
        """The alerts of one window (``time``: the window's end)."""
        moment = time if isinstance(time, datetime) else datetime.fromtimestamp(time, UTC)
        return [*self._shifts(calls, moment), *self._new_topics(calls, moment)]

    def _alert(
        self,
        kind: str,
        score: float,
        threshold: float,
        calls: Sequence[WindowCall],
        moment: datetime,
        stats: dict[str, Any],
        summary: str | None = None,
    ) -> Alert:
        """``summary`` is the excerpt when none of ``calls`` has one (a topic that left)."""
        return Alert.create(
            topology=self.topic_map.topology,
            monitor=f"topics:{self.topic_map.column}",
            kind=kind,
            score=round(score, 4),
            threshold=threshold,
            call_ids=[c.call_id for c in calls[:EXAMPLES]],
            time=moment,
            count=len(calls),
            stats={**stats, "map": self.topic_map.ref},
            excerpt=next((c.excerpt for c in calls if c.excerpt), summary),
            detector="topic_share" if kind == "topic_shift" else "outlier_density",
        )

    def _shifts(self, calls: Sequence[WindowCall], moment: datetime) -> list[Alert]:
        total = len(calls)
        if total < self.min_calls:
            return []
        alerts = []
        for topic in self.topic_map.topics:
            expected = min(max(topic.share, 1e-6), 1 - 1e-6)
            members = [c for c in calls if c.topic_id == topic.id]
            observed = len(members) / total
            z = (observed - expected) / math.sqrt(expected * (1 - expected) / total)
            if abs(z) < self.z_threshold:
                continue
            examples = (
                members
                or [WindowCall(call_id, topic.id) for call_id in topic.example_call_ids]
                or list(calls[:EXAMPLES])  # a map without examples: the window's calls
            )
            stats = {
                "topic": topic.name,
                "topic_id": topic.id,
                "expected_share": round(expected, 4),
                "observed_share": round(observed, 4),
                "window_calls": total,
            }
            summary = (
                f"topic {topic.name!r}: {observed:.0%} of the window's {total} calls, "
                f"{expected:.0%} of the calls the map was fitted on"
            )
            alerts.append(
                self._alert(
                    "topic_shift", abs(z), self.z_threshold, examples, moment, stats, summary
                )
            )
        return alerts

    def _new_topics(self, calls: Sequence[WindowCall], moment: datetime) -> list[Alert]:
        outliers = [c for c in calls if c.topic_id == -1 and c.vector is not None]
        if len(outliers) < self.min_new_topic:
            return []
        radii = [t.radius for t in self.topic_map.topics] or [0.3]
        eps = min(2 * float(np.median(radii)), MAX_EPS)
        vectors = unit_rows([c.vector for c in outliers])
        labels = DBSCAN(eps=eps, min_samples=self.min_new_topic, metric="cosine").fit_predict(
            vectors
        )
        alerts = []
        for group in sorted(set(labels.tolist()) - {-1}):
            members = [c for c, label in zip(outliers, labels, strict=True) if label == group]
            stats = {"outliers": len(outliers), "group_size": len(members), "eps": round(eps, 4)}
            alerts.append(
                self._alert(
                    "new_topic",
                    float(len(members)),
                    float(self.min_new_topic),
                    members,
                    moment,
                    stats,
                )
            )
        return alerts
