"""A topology worker's ``calibration: {first_n: N}`` columns: uncalibrated, then calibrated.

A classify column calibrated on the first N calls of its source cannot know them
when the worker starts. So the worker derives with the column's op *uncalibrated*
(its own op ref: its values are never taken for calibrated ones) and, every
:data:`CHECK_SECONDS`, asks the call store (:func:`~weave_stream.runners.calibration.
calibrate_from_store`) whether it holds N such calls yet. Meanwhile a component
``topology/<name>/calibration/<column>`` is *waiting* in ``/readyz`` and ``weave-stream
status``: "calibrating classify column kind: 37 of 200 calls stored". Once two checks
in a row find the same first N calls (the store sinks of several workers commit at
their own pace), the sample is kept in the store folder (the first worker to resolve
it writes it; every other one, and a restarted one, reads it at start) and the worker
switches to the calibrated topology from its next batch: ``ok``. A store that cannot be read or
written fails the component with the reason; the column keeps computing uncalibrated.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import math
import time

import faust

from weave_stream.config import Settings
from weave_stream.errors import StoreError
from weave_stream.metrics import COLUMN_INFO
from weave_stream.runners.calibration import calibrate_from_store
from weave_stream.runners.streaming.health import HEALTH, describe
from weave_stream.store.calibrations import CalibrationFiles
from weave_stream.store.tables import open_store
from weave_stream.topology.calibrate import Calibrated, with_samples
from weave_stream.topology.spec import Topology

__all__ = ["CHECK_SECONDS", "MAX_CHECK_SECONDS", "CalibrationWatch", "attach_calibration"]

log = logging.getLogger(__name__)

CHECK_SECONDS = 2.0  # how often the store is asked at first while a column waits
MAX_CHECK_SECONDS = 30.0  # ... and at most this far apart later


class CalibrationWatch:
    """The topology a worker derives with (:attr:`topology`), calibrated once it can be."""

    def __init__(self, settings: Settings, topology: Topology) -> None:
        self.settings, self.base, self.topology = settings, topology, topology
        self.store = open_store(None, settings)
        self.components = {
            request.column: f"topology/{topology.name}/calibration/{request.column}"
            for request in topology.calibrations
        }
        self.resolved = False
        self._candidates: dict[str, tuple[str, ...]] = {}  # the last check's samples (ids)
        self._pause = CHECK_SECONDS / 1.5  # grows while a column waits (see check)
        self._next_look = -math.inf
        self._seen = -1  # calls with a text found at the last look, over the columns
        for component in self.components.values():
            HEALTH.starting(component)

    def load_kept(self) -> None:
        """Calibrate on the samples kept by an earlier worker (a restart: no store scan)."""
        try:
            files = CalibrationFiles(self.store)
            kept = {}
            for request in self.base.calibrations:
                sample = files.load(self.base.name, request.column, request.n, request.key)
                if sample is not None:
                    kept[request.column] = sample.texts
        except StoreError as exc:
            for component in self.components.values():
                HEALTH.failed(component, str(exc))
            return
        if kept:
            self._switch(with_samples(self.base, kept))
            for column in kept:
                HEALTH.ok(self.components[column])
        self.resolved = len(kept) == len(self.components)

    async def check(self) -> None:
        """Ask the store (off the event loop); switch to what it resolved; report. While a
        column waits, looks come less often (up to every :data:`MAX_CHECK_SECONDS`): each
        one reads the stored calls' index."""
        if self.resolved or time.monotonic() < self._next_look:
            return
        self._pause = min(self._pause * 1.5, MAX_CHECK_SECONDS)  # reset below on progress
        self._next_look = time.monotonic() + self._pause
        try:
            found = await asyncio.to_thread(
                calibrate_from_store, self.store, self.base, settled=self._settled
            )
        except Exception as exc:  # reported, never a silent end of the timer: looks go on
            log.error("topology %s: calibration failed: %s", self.base.name, describe(exc))
            for component in self.components.values():
                HEALTH.failed(component, f"cannot take the calibration sample: {describe(exc)}")
            return
        self._report(found)
        if sum(found.found.values()) != self._seen:  # calls are coming: look again soon
            self._seen, self._pause = sum(found.found.values()), CHECK_SECONDS
            self._next_look = time.monotonic() + self._pause
        if found.samples and set(found.samples) != self._calibrated():
            self._switch(found.topology)
            log.info(
                "topology %s: classify columns %s calibrated on their first calls (op refs %s)",
                self.base.name,
                sorted(found.samples),
                [found.topology.column(column).op.ref for column in sorted(found.samples)],
            )
        self.resolved = not found.pending

    def _settled(self, column: str, call_ids: tuple[str, ...]) -> bool:
        """The same first N calls as one check ago: no store sink was about to add earlier
        ones (each commits every ``store_batch_seconds``)."""
        settled = self._candidates.get(column) == call_ids
        self._candidates[column] = call_ids
        return settled

    def _report(self, found: Calibrated) -> None:
        for request in self.base.calibrations:
            component = self.components[request.column]
            if request.column in found.samples:
                HEALTH.ok(component)
                continue
            off = "" if self.settings.store_sink else " (store_sink is off: nothing is stored)"
            HEALTH.waiting(
                component,
                f"calibrating classify column {request.column}: {found.found[request.column]} "
                f"of {request.n} calls stored{off}; until then its values are uncalibrated "
                f"(op {self.base.column(request.column).op.ref})",
            )

    def _calibrated(self) -> set[str]:
        base = {c.name: c.op.ref for c in self.base.compiled}
        return {c.name for c in self.topology.compiled if base.get(c.name) != c.op.ref}

    def _switch(self, topology: Topology) -> None:
        for old, new in zip(self.topology.compiled, topology.compiled, strict=True):
            if old.op.ref != new.op.ref:
                with contextlib.suppress(KeyError):  # not published yet (at start)
                    COLUMN_INFO.remove(self.base.name, old.name, old.op.name, old.op.ref)
                COLUMN_INFO.labels(self.base.name, new.name, new.op.name, new.op.ref).set(1)
        self.topology = topology


def attach_calibration(
    app: faust.App, settings: Settings, topology: Topology
) -> CalibrationWatch | None:
    """Watch ``topology``'s ``{first_n}`` columns in ``app`` (None: it has none)."""
    if not topology.calibrations:
        return None
    watch = CalibrationWatch(settings, topology)
    watch.load_kept()

    @app.timer(interval=CHECK_SECONDS)
    async def calibrate_columns() -> None:
        await watch.check()

    return watch
