"""The notifier: delivers every alert to each of its targets, at least once, never twice
once acknowledged.

:meth:`Notifier.submit` records the alert and its pending deliveries in the
:class:`~weave_stream.notify.store.DeliveryStateStore` before it returns (commit the
alerts topic's offset after it). One task per target then posts the pending
alerts in order: Slack gets a Block Kit message, a webhook gets the signed JSON
body. A 2xx marks the delivery done; a connection error, a timeout, a 408, a 429 or
a 5xx is retried with exponential backoff and jitter (``Retry-After`` honoured);
any other answer rejects the delivery for good. A failing target pauses only its
own task, so a target that is down never holds up another.

If the process dies mid-delivery, the pending deliveries are still in the store and
the next notifier sends them; one in flight at the moment of death may reach the
target twice, with the same ``Idempotency-Key`` (the alert id). Delivered ones are
never sent again.

Secrets (Slack webhook URLs, webhook URLs and HMAC secrets) never reach a log
line or an error message: targets are named by name and host, and the loggers of
httpx and httpcore get a filter that masks the secrets while the notifier runs.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import random
import time
from collections.abc import Callable
from dataclasses import dataclass
from types import TracebackType

import httpx

from weave_stream.durations import parse_retry_after
from weave_stream.metrics import ALERT_DELIVERY_FAILURES, ALERTS_DELIVERED, ALERTS_PENDING
from weave_stream.notify.alerts import Alert
from weave_stream.notify.slack import slack_payload
from weave_stream.notify.store import DeliveryStateStore, DueDelivery
from weave_stream.notify.targets import RetryPolicy, SlackTarget, TargetsConfig, WebhookTarget
from weave_stream.notify.webhook import webhook_request

__all__ = ["Notifier", "backoff_seconds"]

log = logging.getLogger(__name__)
_REDACTED_LOGGERS = ("httpx", "httpcore", __name__)
_RETRIED_STATUSES = frozenset({408, 429})


def backoff_seconds(failures: int, policy: RetryPolicy, rng: random.Random) -> float:
    """The wait after ``failures`` consecutive failures: exponential, capped, jittered down.

    >>> policy = RetryPolicy(initial_seconds=1, multiplier=2, max_seconds=300, jitter=0)
    >>> backoff_seconds(1, policy, random.Random(0)), backoff_seconds(4, policy, random.Random(0))
    (1.0, 8.0)
    >>> jittered = RetryPolicy(initial_seconds=1, max_seconds=300, jitter=0.5)
    >>> 150.0 <= backoff_seconds(20, jittered, random.Random(0)) <= 300.0
    True
    """
    base = min(
        policy.max_seconds, policy.initial_seconds * policy.multiplier ** max(0, failures - 1)
    )
    return base * (1.0 - policy.jitter * rng.random())


@dataclass(frozen=True)
class _Outcome:
    delivered: bool
    retry: bool
    reason: str  # metric label: delivered, connect, timeout, http_429, http_5xx, http_4xx
    status: int | None
    detail: str
    retry_after: float | None = None


class _Redact(logging.Filter):
    """Masks secret strings in records of the HTTP client's loggers."""

    def __init__(self, secrets: list[str]) -> None:
        super().__init__()
        self.secrets = sorted((s for s in secrets if s), key=len, reverse=True)

    def scrub(self, text: str) -> str:
        for secret in self.secrets:
            text = text.replace(secret, "[redacted]")
        return text

    def filter(self, record: logging.LogRecord) -> bool:
        message = record.getMessage()
        cleaned = self.scrub(message)
        if cleaned != message:
            record.msg, record.args = cleaned, None
        return True


class Notifier:
    """Per-target delivery tasks over a durable state store (see the module docstring).

    ``transport`` replaces httpx's network transport (e.g. for a test harness);
    ``clock`` and ``rng`` make timing reproducible.
    """

    def __init__(
        self,
        config: TargetsConfig,
        store: DeliveryStateStore,
        *,
        transport: httpx.AsyncBaseTransport | None = None,
        clock: Callable[[], float] = time.time,
        rng: random.Random | None = None,
        batch_size: int = 50,
    ) -> None:
        self.config = config
        self.store = store
        self._transport = transport
        self._clock = clock
        self._rng = rng or random.Random()
        self._batch_size = batch_size
        self._wake = {target.name: asyncio.Event() for target in config.targets}
        self._tasks: list[asyncio.Task[None]] = []
        self._client: httpx.AsyncClient | None = None
        secrets = []
        for target in config.targets:
            url = target.url.get_secret_value()
            secrets += [url, httpx.URL(url).raw_path.decode(errors="replace")]
            if isinstance(target, WebhookTarget):
                secrets.append(target.secret.get_secret_value())
        self._redact = _Redact([s for s in secrets if s not in ("", "/")])

    async def start(self) -> None:
        """Open the HTTP client and start one delivery task per target."""
        if self._tasks:
            return
        for name in _REDACTED_LOGGERS:
            logging.getLogger(name).addFilter(self._redact)
        self._client = httpx.AsyncClient(
            timeout=self.config.retry.timeout_seconds,
            transport=self._transport,
            follow_redirects=False,
        )
        for target in self.config.targets:
            ALERTS_PENDING.labels(target.name).set(self.store.pending_count(target.name))
            task = asyncio.create_task(self._deliver_forever(target), name=f"notify-{target.name}")
            task.add_done_callback(self._report_crash)
            self._tasks.append(task)

    async def stop(self) -> None:
        """Stop the delivery tasks (an attempt in flight is abandoned, and stays pending)."""
        tasks, self._tasks = self._tasks, []
        for task in tasks:
            task.cancel()
        for task in tasks:
            with contextlib.suppress(asyncio.CancelledError):
                await task
        if self._client is not None:
            await self._client.aclose()
            self._client = None
        for name in _REDACTED_LOGGERS:
            logging.getLogger(name).removeFilter(self._redact)

    async def __aenter__(self) -> Notifier:
        await self.start()
        return self

    async def __aexit__(
        self,
        kind: type[BaseException] | None,
        error: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        await self.stop()

    def submit(self, alert: Alert) -> list[str]:
        """Record ``alert`` durably and queue it for its targets; return the targets queued.

        An alert already known is not queued again (its id is its identity).
        """
        wanted = [target.name for target in self.config.targets if target.wants(alert)]
        queued = self.store.add(alert, wanted, now=self._clock())
        for name in queued:
            ALERTS_PENDING.labels(name).inc()
            self._wake[name].set()
        return queued

    def pending(self) -> dict[str, int]:
        """Pending deliveries per target."""
        return {t.name: self.store.pending_count(t.name) for t in self.config.targets}

    def _report_crash(self, task: asyncio.Task[None]) -> None:
        if not task.cancelled() and task.exception() is not None:
            log.error(
                "alert delivery task %s stopped: %s; pending alerts wait for a restart",
                task.get_name(),
                self._redact.scrub(repr(task.exception())),
            )

    async def _deliver_forever(self, target: SlackTarget | WebhookTarget) -> None:
        failures, paused_until = 0, 0.0
        while True:
            now = self._clock()
            if now < paused_until:
                await self._sleep(target.name, paused_until - now)
                continue
            due = self.store.due(target.name, now=now, limit=self._batch_size)
            if not due:
                upcoming = self.store.next_attempt(target.name)
                await self._sleep(target.name, None if upcoming is None else upcoming - now)
                continue
            for item in due:
                outcome = await self._attempt(target, item)
                if not outcome.retry:
                    failures = 0
                    continue
                failures += 1
                retry = self.config.retry
                delay = backoff_seconds(failures, retry, self._rng)
                if outcome.retry_after is not None:
                    delay = min(outcome.retry_after, retry.max_retry_after_seconds)
                paused_until = self._clock() + delay
                self.store.mark_retry(
                    item.alert.id,
                    target.name,
                    next_attempt=paused_until,
                    error=outcome.detail,
                    status=outcome.status,
                )
                log.warning(
                    "%s: delivery of alert %s failed (%s); retrying in %.1fs",
                    target.where,
                    item.alert.id,
                    outcome.detail,
                    delay,
                )
                break  # the target is failing: pause it, do not hammer it with the rest

    async def _sleep(self, name: str, seconds: float | None) -> None:
        event = self._wake[name]
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(
                event.wait(), timeout=None if seconds is None else max(0.0, seconds)
            )
        event.clear()

    async def _attempt(self, target: SlackTarget | WebhookTarget, item: DueDelivery) -> _Outcome:
        outcome = await self._post(target, item.alert)
        name, alert_id = target.name, item.alert.id
        if outcome.delivered:
            self.store.mark_delivered(alert_id, name, status=outcome.status or 0, now=self._clock())
            ALERTS_DELIVERED.labels(name).inc()
            ALERTS_PENDING.labels(name).dec()
            return outcome
        ALERT_DELIVERY_FAILURES.labels(name, outcome.reason).inc()
        if not outcome.retry:
            self.store.mark_rejected(
                alert_id, name, status=outcome.status or 0, error=outcome.detail
            )
            ALERTS_PENDING.labels(name).dec()
            log.error(
                "%s rejected alert %s (%s); not retried until requeued",
                target.where,
                alert_id,
                outcome.detail,
            )
        return outcome

    async def _post(self, target: SlackTarget | WebhookTarget, alert: Alert) -> _Outcome:
        assert self._client is not None, "start() the notifier first"
        if isinstance(target, SlackTarget):
            template = target.call_url_template or self.config.call_url_template
            body = json.dumps(slack_payload(alert, template)).encode()
            headers = {"Content-Type": "application/json"}
        else:
            body, headers = webhook_request(
                alert, target.secret.get_secret_value(), now=self._clock()
            )
        try:
            response = await self._client.post(
                target.url.get_secret_value(), content=body, headers=headers
            )
        except httpx.TimeoutException as exc:
            return _Outcome(False, True, "timeout", None, f"timed out ({type(exc).__name__})")
        except httpx.HTTPError as exc:
            detail = self._redact.scrub(f"{type(exc).__name__}: {exc}")
            return _Outcome(False, True, "connect", None, f"connection failed ({detail})")
        status = response.status_code
        if 200 <= status < 300:
            return _Outcome(True, False, "delivered", status, f"HTTP {status}")
        wait = parse_retry_after(response.headers, now=self._clock())
        if status in _RETRIED_STATUSES or status >= 500:
            reason = {429: "http_429", 408: "timeout"}.get(status, "http_5xx")
            return _Outcome(False, True, reason, status, f"HTTP {status}", wait)
        answer = self._redact.scrub(response.text[:200])
        return _Outcome(False, False, "http_4xx", status, f"HTTP {status}: {answer!r}")
