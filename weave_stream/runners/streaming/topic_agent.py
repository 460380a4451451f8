"""A topology's ``topics:`` entries in its worker: map state, window alerts, refits.

For each entry (:class:`~weave_stream.topology.topic_columns.TopicColumn`), the
topology worker

* computes the topic column like any other (it follows the column's ``CURRENT``
  map: :mod:`weave_stream.topic_maps.assign`), counts each call per topic in
  ``weave_stream_topic_calls_total`` (the dashboard's topic mix) and reports, every
  few seconds, whether a map exists: component ``topology/<t>/topics/<column>`` is
  ``waiting`` (with the command to fit one) until then, ``ok`` after, in ``/readyz``
  and ``weave-stream status`` (waiting is not a failure: the worker stays ready and
  the calls' topic values are errors saying there is no map yet); a current map of
  another embedding model fails the component, with the command to refit. The
  followed map is part of the column's op ref, so the column's
  ``weave_stream_column_info`` series moves to the new ref when the map changes;
* with ``watch`` on, adds every assigned call to tumbling event-time windows
  (:class:`~weave_stream.topic_maps.windows.TopicWindows`) and checks each window
  once with :class:`~weave_stream.topic_maps.watch.TopicWatch`: ``topic_shift`` and
  ``new_topic`` alerts go to ``<prefix>.alerts``, and the notifier delivers them.
  Each worker checks the calls of the partitions it holds (calls are spread over
  partitions by id, so a topic's share in them is an unbiased sample of its share);
* with ``refit`` set, the leader of the topology's group (one worker) refits the map
  from the call store on that schedule, off the event loop
  (:func:`~weave_stream.topic_maps.refit.refit_topics`). The first run is one
  ``refit`` interval after the worker starts; with no map yet it fits the first one.
  A refit that fails marks ``topology/<t>/topics/<column>/refit`` failed (``/readyz``
  503, with the reason) and counts it; the current map stays, and the next run that
  succeeds clears it. While no map exists yet, a failed first fit (too few calls so
  far) leaves the component ``waiting`` with the reason, not failed.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Sequence
from typing import Any

import faust

from weave_stream.columns.derive import DerivedValue
from weave_stream.config import Settings
from weave_stream.errors import MissingFieldError, TopicError
from weave_stream.ingest.call import Call
from weave_stream.metrics import (
    ALERTS_RAISED,
    COLUMN_INFO,
    TOPIC_CALLS,
    TOPIC_MAP_INFO,
    TOPIC_REFITS,
    TOPIC_WATCH_LATE,
    TOPIC_WINDOWS_CHECKED,
)
from weave_stream.notify.alerts import Alert
from weave_stream.runners.streaming.health import HEALTH, describe
from weave_stream.runners.streaming.sink import OutgoingRecord, RecordSink
from weave_stream.store.topic_map import TopicMap
from weave_stream.store.topic_map_files import MapStore
from weave_stream.topic_maps.assign import check_map
from weave_stream.topic_maps.inputs import embedding_column
from weave_stream.topic_maps.refit import refit_topics
from weave_stream.topic_maps.watch import TopicWatch, WindowCall
from weave_stream.topic_maps.windows import TopicWindows
from weave_stream.topology.selection import FieldPath
from weave_stream.topology.spec import Topology
from weave_stream.topology.topic_columns import TopicColumn

__all__ = ["TopicColumnWatch", "attach_topics"]

log = logging.getLogger(__name__)

STATE_SECONDS = 2.0  # how often the map's presence is looked at, and idle windows checked
EXCERPT_CHARS = 200
WINDOW_CALLS = 20_000  # calls kept per window (a uniform sample beyond)


class TopicColumnWatch:
    """One ``topics:`` entry in one topology worker (see the module)."""

    def __init__(self, settings: Settings, topology: Topology, spec: TopicColumn) -> None:
        self.settings, self.topology, self.spec = settings, topology, spec
        self.component = f"topology/{topology.name}/topics/{spec.name}"
        self.maps = MapStore(settings.store_location)
        watch = spec.watch
        self.windows = (
            TopicWindows(watch.window, watch.grace, max_calls=WINDOW_CALLS)
            if watch.enabled
            else None
        )
        self._map: TopicMap | None = None
        self._text = _text_path(topology, spec.column)
        self._embedding_ref = topology.column(spec.column).op.ref
        self._late = TOPIC_WATCH_LATE.labels(topology.name, spec.name)
        self._counted: dict[str, Any] = {}
        self._column = topology.column(spec.name)
        self._column_ref: str | None = None  # the op ref weave_stream_column_info shows
        self._show_column_ref()
        HEALTH.starting(self.component)

    def _show_column_ref(self) -> None:
        """Keep ``weave_stream_column_info`` on the topic column's op ref: the map it
        follows is part of it, so a refit (or a first map) changes it."""
        ref = self._column.op.ref
        if ref == self._column_ref:
            return
        name, op = self.topology.name, self._column.op.name
        if self._column_ref is not None:
            COLUMN_INFO.remove(name, self.spec.name, op, self._column_ref)
        COLUMN_INFO.labels(name, self.spec.name, op, ref).set(1)
        self._column_ref = ref

    def observe(self, calls: Sequence[Call], values: Sequence[DerivedValue]) -> None:
        """Count the batch's topic values and add them to the windows."""
        by_id = {call.id: call for call in calls}
        vectors = {v.call_id: v.value for v in values if v.column == self.spec.column}
        for value in values:
            if value.column != self.spec.name or value.trial != 0:
                continue
            assigned = value.value if isinstance(value.value, dict) else None
            topic = str(assigned["topic"]) if assigned else "unassigned"
            counter = self._counted.get(topic)
            if counter is None:
                counter = self._counted[topic] = TOPIC_CALLS.labels(
                    self.topology.name, self.spec.name, topic
                )
            counter.inc()
            if self.windows is None or assigned is None or value.started_at is None:
                continue
            topic_id = int(assigned["topic_id"])
            call = by_id.get(value.call_id)
            vector = vectors.get(value.call_id) if topic_id == -1 else None
            window_call = WindowCall(value.call_id, topic_id, vector, self._excerpt(call))
            if not self.windows.add(value.started_at.timestamp(), window_call):
                self._late.inc()

    def _excerpt(self, call: Call | None) -> str | None:
        if call is None or self._text is None:
            return None
        try:
            text = self._text.resolve(call.to_dict(), {})
        except MissingFieldError:  # a call without the text: its alert goes without
            return None
        return " ".join(str(text).split())[:EXCERPT_CHARS] if text is not None else None

    def refresh(self) -> TopicMap | None:
        """Look at CURRENT: the map in use (reloaded when it moved), health and info metrics."""
        self._show_column_ref()
        ref = self.maps.current_ref(self.topology.name, self.spec.column)
        if ref is None:
            HEALTH.waiting(
                self.component,
                f"no topic map for {self.topology.name}.{self.spec.column} yet: the "
                f"{self.spec.name} column's values are errors until one is fitted "
                f"(`weave-stream topics fit {self.topology.name} --column {self.spec.column}`"
                + (", or the refit schedule)" if self.spec.refit else ")"),
            )
            self._map = None
            return None
        if self._map is None or self._map.ref != ref:
            if self._map is not None:
                TOPIC_MAP_INFO.remove(self.topology.name, self.spec.name, self._map.ref)
            self._map = self.maps.load(self.topology.name, self.spec.column, ref)
            TOPIC_MAP_INFO.labels(self.topology.name, self.spec.name, ref).set(1)
        try:
            check_map(self._map, self.spec.column, self._embedding_ref)
        except TopicError as exc:  # the column's values say so too; a refit fixes it
            HEALTH.failed(self.component, str(exc))
            return None
        HEALTH.ok(self.component)
        return self._map

    def due_alerts(self, now: float, topic_map: TopicMap | None) -> list[Alert]:
        """The alerts of the windows due now, checked against ``topic_map`` (the current
        map, as :meth:`refresh` just found it; None: none usable, nothing is checked)."""
        if self.windows is None:
            return []
        due = self.windows.due(now)
        if not due or topic_map is None or not topic_map.topics:
            return []
        watch = self.spec.watch
        checker = TopicWatch(topic_map, watch.z_threshold, watch.min_calls, watch.min_new_topic)
        alerts = [a for window in due for a in checker.check(window.calls, time=window.end)]
        TOPIC_WINDOWS_CHECKED.labels(self.topology.name, self.spec.name).inc(len(due))
        for alert in alerts:
            ALERTS_RAISED.labels(self.topology.name, alert.kind).inc()
            log.info(
                "topology %s topics %s: %s alert %s (%s)",
                self.topology.name,
                self.spec.name,
                alert.kind,
                alert.id,
                alert.stats,
            )
        return alerts

    async def refit(self) -> None:
        """One scheduled refit, off the event loop; failures go to health and metrics."""
        component = f"{self.component}/refit"
        name, column = self.topology.name, self.spec.name
        try:
            outcome = await asyncio.to_thread(
                asyncio.run, refit_topics(self.topology, self.spec, self.settings)
            )
        except Exception as exc:  # reported: health, metric, log; the map stays as it was
            TOPIC_REFITS.labels(name, column, "failed").inc()
            log.error("topology %s: refit of topics %s failed: %s", name, column, describe(exc))
            if self.maps.current_ref(name, self.spec.column) is None:
                # No map to fall back on yet (a new topology, too few calls so far): the
                # column waits for its first map, it has not failed.
                HEALTH.waiting(
                    component,
                    f"the first fit failed: {describe(exc)}; the next try is in "
                    f"{self.spec.refit:g}s",
                )
            else:
                HEALTH.failed(component, f"refit failed, the map stays as it was: {describe(exc)}")
            return
        TOPIC_REFITS.labels(name, column, outcome.outcome).inc()
        HEALTH.ok(component)
        log.info(
            "topology %s: refit of topics %s: %s %s (%s)",
            name,
            column,
            outcome.outcome,
            outcome.ref,
            outcome.detail,
        )
        self.refresh()


def _text_path(topology: Topology, column: str) -> FieldPath | None:
    """The call field the embedding column embeds (for alert excerpts), if it reads one."""
    try:
        return FieldPath.parse(embedding_column(topology, column)[1])
    except TopicError:  # it embeds no call field: alerts go without excerpts
        return None


def attach_topics(
    app: faust.App, settings: Settings, topology: Topology, sink: RecordSink
) -> list[TopicColumnWatch]:
    """The ``topics:`` entries of ``topology`` in ``app`` (empty: none declared)."""
    watches = [TopicColumnWatch(settings, topology, spec) for spec in topology.topics]
    if not watches:
        return watches

    @app.timer(interval=STATE_SECONDS)
    async def topic_windows() -> None:
        """Map state, and windows that went due with the stream idle."""
        await check_windows(watches, sink, settings)

    for watch in watches:
        if watch.spec.refit is not None and not watch.spec.frozen:
            app.timer(interval=watch.spec.refit, on_leader=True)(_refit_task(watch))
    return watches


def _refit_task(watch: TopicColumnWatch) -> Any:
    async def refit_topic_map() -> None:
        await watch.refit()

    refit_topic_map.__name__ = f"refit_{watch.spec.name}"
    refit_topic_map.__qualname__ = refit_topic_map.__name__  # one timer per entry
    return refit_topic_map


async def check_windows(
    watches: Sequence[TopicColumnWatch], sink: RecordSink, settings: Settings
) -> None:
    """Refresh each entry's map state; send the alerts of its due windows."""
    now = time.time()
    for watch in watches:
        alerts = watch.due_alerts(now, watch.refresh())
        if alerts:
            records = [OutgoingRecord(alert.id.encode(), alert.to_json()) for alert in alerts]
            await sink.write(settings.topics.alerts, records)
