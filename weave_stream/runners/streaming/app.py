"""The Faust app of a weave-stream worker: settings → app, agents, HTTP pages, worker loop."""

from __future__ import annotations

import asyncio
import logging
import os
import signal
import threading
import weakref
from collections.abc import Callable
from typing import Any

import faust
import httpx
from faust.web import Request, Response, View

from weave_stream.broker.embedded import free_port
from weave_stream.config import Settings
from weave_stream.metrics import WORKER_INFO, render
from weave_stream.runners.streaming.admin_pages import register_admin_pages
from weave_stream.runners.streaming.collector_pages import register_collector
from weave_stream.runners.streaming.commit_guard import commit_only_processed_offsets
from weave_stream.runners.streaming.embedded_consumer import adapt_consumers_to_embedded_broker
from weave_stream.runners.streaming.health import HEALTH, report_agent_crashes
from weave_stream.runners.streaming.ingest_agent import register_ingest
from weave_stream.runners.streaming.lag import track_consumer_lag
from weave_stream.runners.streaming.notifier_agent import register_notifier
from weave_stream.runners.streaming.query_pages import register_query_pages
from weave_stream.runners.streaming.reporting import StatusReporter, say
from weave_stream.runners.streaming.supervisor import TopologySupervisor

__all__ = ["Worker", "create_app", "create_worker_app", "on_stopping", "run_worker"]

log = logging.getLogger(__name__)


def create_worker_app(settings: Settings) -> faust.App:
    """The app of ``weave-stream worker``: the ingest agent and the topology supervisor.

    Its ``/metrics`` also carries the metrics of the topology workers it runs.
    """
    supervisor = TopologySupervisor(settings)
    app = create_app(settings, metrics_sources=supervisor.metrics_urls)
    register_ingest(app, settings)
    register_notifier(app, settings)
    register_admin_pages(app, settings)
    register_collector(app, settings)  # the trace-server write API and OTLP on the web port
    reporter = StatusReporter(app, settings, lambda: readiness(app))

    @app.task
    async def supervise() -> None:
        await supervisor.run()

    # Children start their own bounded shutdown at once, not after Faust's consumer stops.
    on_stopping(app).extend([supervisor.signal_all, lambda: reporter.publish_quietly("stopping")])
    app.on_before_shutdown.connect(lambda *args, **kwargs: supervisor.stop_all())
    return app


def create_app(
    settings: Settings,
    *,
    app_id: str | None = None,
    metrics_sources: Callable[[], list[str]] | None = None,
) -> faust.App:
    """A Faust app for ``settings`` (a broker must be set), with the HTTP endpoints.

    The app's id (its consumer group and the prefix of its changelog topics) is
    ``weave-stream.<topic_prefix>`` unless ``app_id`` is given, so workers of one
    prefix share the work.
    """
    timeouts = settings.consumer_timeouts
    if settings.processing_guarantee == "at_least_once":
        commit_only_processed_offsets()  # Faust can commit past a lost record (commit_guard)
    if settings.embedded_broker_quirks:
        adapt_consumers_to_embedded_broker(settings)  # its measured gaps (shared/BROKER.md)
    table_dir = settings.data_dir / "tables" / settings.worker_id
    table_dir.mkdir(parents=True, exist_ok=True)
    app = faust.App(
        app_id or settings.topics.worker_group,
        broker=[f"kafka://{host}" for host in settings.broker_address.split(",")],
        store=settings.store,
        datadir=str(table_dir),
        autodiscover=False,
        topic_partitions=settings.partitions,
        topic_replication_factor=settings.replication_factor,
        broker_session_timeout=timeouts.session,
        broker_heartbeat_interval=timeouts.heartbeat,
        broker_rebalance_timeout=timeouts.rebalance,
        consumer_auto_offset_reset="earliest",
        # Standby replicas double every table write; a takeover replays the changelog.
        table_standby_replicas=0,
        processing_guarantee=settings.processing_guarantee,
        # Dead letters carry the raw record, so allow records a little over the limit.
        producer_max_request_size=max(4 * 1024 * 1024, 2 * settings.max_payload_bytes),
        producer_linger=0.005,
        producer_max_batch_size=64 * 1024,
        web_enabled=True,
        web_bind=settings.web_host,
        web_host=settings.web_host,
        web_port=settings.web_port or free_port(),
        web_in_thread=False,
        logging_config=None,
    )
    report_agent_crashes(app)  # before any agent is declared: each keeps its handler
    WORKER_INFO.labels(settings.worker_id, settings.topic_prefix).set(1)
    _register_pages(app, metrics_sources or list)
    register_query_pages(app, settings)  # GET /aggregates/{topology}[/drill]
    track_consumer_lag(app)
    return app


def _register_pages(app: faust.App, metrics_sources: Callable[[], list[str]]) -> None:
    @app.page("/metrics")
    class Metrics(View):
        async def get(self, request: Request) -> Response:
            children = await _fetch_all(metrics_sources())
            return self.bytes(render(children), content_type="text/plain; version=0.0.4")

    @app.page("/healthz")
    class Health(View):
        async def get(self, request: Request) -> Response:
            return self.json({"status": "alive"})

    @app.page("/readyz")
    class Ready(View):
        async def get(self, request: Request) -> Response:
            state = readiness(app)
            return self.json(state, status=200 if state["ready"] else 503)


async def _fetch_all(urls: list[str]) -> list[str]:
    """The bodies of ``urls``; a child that does not answer in time is left out (and logged)."""
    if not urls:
        return []
    async with httpx.AsyncClient(timeout=2.0) as client:
        answers = await asyncio.gather(*(client.get(url) for url in urls), return_exceptions=True)
    bodies = []
    for url, answer in zip(urls, answers, strict=True):
        if isinstance(answer, httpx.Response) and answer.status_code == 200:
            bodies.append(answer.text)
        else:
            log.warning("metrics of child %s unavailable: %r", url, answer)
    return bodies


def readiness(app: faust.App) -> dict[str, Any]:
    """Whether the worker has joined its group, restored its tables, and no component failed."""
    recovered = app.tables.recovery.completed.is_set()  # type: ignore[attr-defined]
    rebalancing = bool(app.rebalancing)
    assigned = sorted(f"{tp.topic}[{tp.partition}]" for tp in app.assignor.assigned_actives())
    joined = recovered and not rebalancing and app.rebalancing_count > 0
    return {
        "ready": joined and HEALTH.ready,
        "recovered": recovered,
        "rebalancing": rebalancing,
        "assigned": assigned,
        "failures": HEALTH.failures(),
        "components": HEALTH.snapshot(),
    }


def on_stopping(app: faust.App) -> list[Callable[[], Any]]:
    """Callbacks run the moment ``app``'s worker is told to stop (before Faust stops)."""
    return _STOPPING.setdefault(app, [])


_STOPPING: weakref.WeakKeyDictionary[faust.App, list[Callable[[], Any]]] = (
    weakref.WeakKeyDictionary()
)


class Worker(faust.Worker):
    """Faust's worker, without its terminal spinner, stopping within a bound.

    The spinner sets the root logger to DEBUG so that it can spin on every record:
    every ``log.debug`` in aiokafka then builds a record (~6 % of a busy worker).

    **Bounded shutdown.** Faust's own stop can wait for ever: a fetcher that does not
    stop, an agent stuck in a batch (seen: minutes at ``[^---Fetcher]: Stopping...``).
    On the first SIGTERM or SIGINT this worker commits the offsets of what was
    processed at once, runs the :func:`on_stopping` callbacks, starts Faust's stop,
    and exits the process when ``shutdown_timeout`` seconds have passed, stopped or
    not. A second signal exits at once.
    """

    def __init__(self, app: faust.App, *, shutdown_timeout: float, **kwargs: Any) -> None:
        super().__init__(app, **kwargs)
        self.shutdown_timeout = shutdown_timeout
        self._committed: bool | None = None
        self._stopping_tasks: list[asyncio.Future[Any]] = []

    def on_setup_root_logger(self, logger: logging.Logger, level: int) -> None:
        self.spinner = None
        super().on_setup_root_logger(logger, level)

    def _schedule_shutdown(self, signum: signal.Signals) -> None:
        if self._signal_stop_time:
            say(f"{signum.name} again: exiting now")
            os._exit(128 + int(signum))
        say(
            f"{signum.name}: stopping (what was processed is committed; at most "
            f"{self.shutdown_timeout:g}s, a second {signum.name} exits at once)"
        )
        deadline = threading.Timer(self.shutdown_timeout, self._exit_now)
        deadline.daemon = True
        deadline.start()
        for callback in on_stopping(self.app):  # type: ignore[arg-type]  # AppT is an App
            try:
                result = callback()
                if asyncio.iscoroutine(result):
                    self._stopping_tasks.append(asyncio.ensure_future(result, loop=self.loop))
            except Exception:  # one hook failing must not keep the others from running
                log.exception("a stopping callback failed")
        self._stopping_tasks.append(asyncio.ensure_future(self._commit_processed(), loop=self.loop))
        super()._schedule_shutdown(signum)

    async def _commit_processed(self) -> None:
        app: Any = self.app
        if app._consumer is None:  # never started: nothing was processed
            self._committed = True
            return
        try:  # False only means there was nothing new to commit
            await asyncio.wait_for(app.consumer.commit(), self.shutdown_timeout / 2)
            self._committed = True
        except Exception as exc:  # reported when the deadline strikes, and logged
            log.warning("commit on stop failed: %r", exc)
            self._committed = False

    def _exit_now(self) -> None:
        if self._committed:
            what = "the offsets of processed records were committed"
        elif self._committed is None:
            what = "the commit of processed offsets did not finish (they are read again)"
        else:
            what = "committing processed offsets failed (they are read again)"
        say(
            f"did not stop within {self.shutdown_timeout:g}s (an agent or consumer did not "
            f"finish): exiting now; {what}"
        )
        logging.shutdown()
        os._exit(1)


def run_worker(settings: Settings, app: faust.App | None = None, *, verbose: bool = True) -> None:
    """Run a worker in the foreground until SIGTERM or SIGINT (see :class:`Worker`).

    ``verbose`` False sends Faust's log lines to ``<data_dir>/logs/<worker_id>.log``
    and keeps the terminal to a few lines of weave-stream's own.
    """
    app = app or create_worker_app(settings)
    log_file = settings.data_dir / "logs" / f"{settings.worker_id}.log"
    if not verbose:
        log_file.parent.mkdir(parents=True, exist_ok=True)
    worker = Worker(
        app,
        shutdown_timeout=settings.shutdown_timeout_seconds,
        loglevel=settings.log_level,
        logfile=None if verbose else str(log_file),
        quiet=not verbose,
        redirect_stdouts=False,
    )
    worker.execute_from_commandline()
