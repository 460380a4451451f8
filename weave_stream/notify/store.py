"""Delivery state: which alert went to which target, durable across restarts.

Every (alert, target) pair is ``pending`` until a 2xx answer makes it
``delivered``, or a permanent refusal (a 4xx other than 408 and 429) makes it
``rejected`` (kept, shown by ``weave-stream alerts``, requeued by hand once the
target is fixed). Adding an alert that is already known queues nothing new, so an
alert re-read from the alerts topic after a restart is not sent again.

:class:`SqliteDeliveryStore` keeps this in one SQLite file (WAL journal): a commit
survives the process being killed right after it.

>>> import tempfile, pathlib
>>> from datetime import UTC, datetime
>>> from weave_stream.notify.alerts import Alert
>>> store = SqliteDeliveryStore(pathlib.Path(tempfile.mkdtemp()) / "delivery.sqlite3")
>>> alert = Alert.create(topology="t", monitor="m", kind="novel_example", score=1.0,
...                      threshold=0.5, call_ids=["c1"], time=datetime.now(UTC))
>>> store.add(alert, ["slack", "pager"], now=0.0)
['slack', 'pager']
>>> store.mark_delivered(alert.id, "slack", status=200, now=1.0)
>>> store.add(alert, ["slack", "pager"], now=2.0)
[]
>>> {t: s.state for t, s in store.statuses(alert.id).items()}
{'pager': 'pending', 'slack': 'delivered'}
"""

from __future__ import annotations

import sqlite3
import threading
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Literal, Protocol

from weave_stream.errors import DeliveryError
from weave_stream.notify.alerts import Alert

__all__ = [
    "DeliveryState",
    "DeliveryStateStore",
    "DeliveryStatus",
    "DueDelivery",
    "SqliteDeliveryStore",
]

DeliveryState = Literal["pending", "delivered", "rejected"]

_SCHEMA = """
CREATE TABLE IF NOT EXISTS alerts (
    id TEXT PRIMARY KEY,
    body BLOB NOT NULL,
    received REAL NOT NULL
);
CREATE TABLE IF NOT EXISTS deliveries (
    alert_id TEXT NOT NULL REFERENCES alerts(id),
    target TEXT NOT NULL,
    state TEXT NOT NULL CHECK (state IN ('pending', 'delivered', 'rejected')),
    attempts INTEGER NOT NULL DEFAULT 0,
    next_attempt REAL NOT NULL,
    last_status INTEGER,
    last_error TEXT,
    delivered_at REAL,
    PRIMARY KEY (alert_id, target)
);
CREATE INDEX IF NOT EXISTS deliveries_due ON deliveries (target, state, next_attempt);
"""


@dataclass(frozen=True)
class DeliveryStatus:
    """Where one alert stands with one target."""

    target: str
    state: DeliveryState
    attempts: int
    next_attempt: float
    last_status: int | None
    last_error: str | None
    delivered_at: float | None


@dataclass(frozen=True)
class DueDelivery:
    """A pending delivery whose next attempt is due."""

    alert: Alert
    attempts: int


class DeliveryStateStore(Protocol):
    """Durable delivery state, keyed by (alert id, target name)."""

    def add(self, alert: Alert, targets: Sequence[str], *, now: float) -> list[str]:
        """Record ``alert`` and queue it for the targets it has no delivery to yet; return those."""
        ...

    def due(self, target: str, *, now: float, limit: int = 50) -> list[DueDelivery]:
        """Pending deliveries to ``target`` due by ``now``, oldest alert first."""
        ...

    def next_attempt(self, target: str) -> float | None:
        """When the earliest pending delivery to ``target`` is due (None: nothing pending)."""
        ...

    def mark_delivered(self, alert_id: str, target: str, *, status: int, now: float) -> None:
        """The target acknowledged the alert."""
        ...

    def mark_retry(
        self, alert_id: str, target: str, *, next_attempt: float, error: str, status: int | None
    ) -> None:
        """An attempt failed and will be retried at ``next_attempt``."""
        ...

    def mark_rejected(self, alert_id: str, target: str, *, status: int, error: str) -> None:
        """The target refused the alert for good (not retried until requeued)."""
        ...

    def pending_count(self, target: str) -> int:
        """Deliveries to ``target`` still pending."""
        ...

    def statuses(self, alert_id: str) -> dict[str, DeliveryStatus]:
        """The delivery status of one alert, per target."""
        ...

    def recent(self, limit: int = 50) -> list[tuple[Alert, dict[str, DeliveryStatus]]]:
        """The most recently received alerts with their status per target, newest first."""
        ...


class SqliteDeliveryStore:
    """A :class:`DeliveryStateStore` in one SQLite file (see the module docstring)."""

    def __init__(self, path: Path) -> None:
        self.path = path
        try:
            path.parent.mkdir(parents=True, exist_ok=True)
            self._db = sqlite3.connect(path, check_same_thread=False, isolation_level=None)
            self._db.execute("PRAGMA journal_mode=WAL")
            self._db.execute("PRAGMA synchronous=NORMAL")  # with WAL: durable across crashes
            self._db.executescript(_SCHEMA)
        except (OSError, sqlite3.Error) as exc:
            raise DeliveryError(
                f"the delivery state store {path} cannot be opened: {exc}; check that the "
                "data dir is writable and the file is a weave-stream delivery store"
            ) from None
        self._lock = threading.Lock()

    def close(self) -> None:
        """Close the database."""
        with self._lock:
            self._db.close()

    def _write(self, sql: str, *parameters: object) -> sqlite3.Cursor:
        with self._lock:
            return self._db.execute(sql, parameters)

    def add(self, alert: Alert, targets: Sequence[str], *, now: float) -> list[str]:
        """Record ``alert`` and queue it for the targets it has no delivery to yet; return those."""
        queued = []
        with self._lock:
            self._db.execute("BEGIN IMMEDIATE")
            try:
                self._db.execute(
                    "INSERT OR IGNORE INTO alerts (id, body, received) VALUES (?, ?, ?)",
                    (alert.id, alert.to_json(), now),
                )
                for target in dict.fromkeys(targets):
                    cursor = self._db.execute(
                        "INSERT OR IGNORE INTO deliveries (alert_id, target, state, next_attempt)"
                        " VALUES (?, ?, 'pending', ?)",
                        (alert.id, target, now),
                    )
                    if cursor.rowcount:
                        queued.append(target)
                self._db.execute("COMMIT")
            except sqlite3.Error:
                self._db.execute("ROLLBACK")
                raise
        return queued

    def due(self, target: str, *, now: float, limit: int = 50) -> list[DueDelivery]:
        """Pending deliveries to ``target`` due by ``now``, oldest alert first."""
        rows = self._write(
            "SELECT a.body, d.attempts FROM deliveries d JOIN alerts a ON a.id = d.alert_id"
            " WHERE d.target = ? AND d.state = 'pending' AND d.next_attempt <= ?"
            " ORDER BY a.received, a.rowid LIMIT ?",
            target,
            now,
            limit,
        ).fetchall()
        return [DueDelivery(Alert.from_json(body), attempts) for body, attempts in rows]

    def next_attempt(self, target: str) -> float | None:
        """When the earliest pending delivery to ``target`` is due (None: nothing pending)."""
        row = self._write(
            "SELECT MIN(next_attempt) FROM deliveries WHERE target = ? AND state = 'pending'",
            target,
        ).fetchone()
        return None if row is None or row[0] is None else float(row[0])

    def mark_delivered(self, alert_id: str, target: str, *, status: int, now: float) -> None:
        """The target acknowledged the alert."""
        self._write(
            "UPDATE deliveries SET state = 'delivered', attempts = attempts + 1,"
            " last_status = ?, last_error = NULL, delivered_at = ?"
            " WHERE alert_id = ? AND target = ?",
            status,
            now,
            alert_id,
            target,
        )

    def mark_retry(
        self, alert_id: str, target: str, *, next_attempt: float, error: str, status: int | None
    ) -> None:
        """An attempt failed and will be retried at ``next_attempt``."""
        self._write(
            "UPDATE deliveries SET attempts = attempts + 1, next_attempt = ?, last_status = ?,"
            " last_error = ? WHERE alert_id = ? AND target = ? AND state = 'pending'",
            next_attempt,
            status,
            error,
            alert_id,
            target,
        )

    def mark_rejected(self, alert_id: str, target: str, *, status: int, error: str) -> None:
        """The target refused the alert for good (not retried until requeued)."""
        self._write(
            "UPDATE deliveries SET state = 'rejected', attempts = attempts + 1, last_status = ?,"
            " last_error = ? WHERE alert_id = ? AND target = ?",
            status,
            error,
            alert_id,
            target,
        )

    def requeue(self, target: str, *, now: float) -> int:
        """Queue the alerts ``target`` rejected again (once it is fixed); return how many."""
        return self._write(
            "UPDATE deliveries SET state = 'pending', next_attempt = ?"
            " WHERE target = ? AND state = 'rejected'",
            now,
            target,
        ).rowcount

    def pending_count(self, target: str) -> int:
        """Deliveries to ``target`` still pending."""
        row = self._write(
            "SELECT COUNT(*) FROM deliveries WHERE target = ? AND state = 'pending'", target
        ).fetchone()
        return int(row[0])

    def statuses(self, alert_id: str) -> dict[str, DeliveryStatus]:
        """The delivery status of one alert, per target (sorted by target name)."""
        rows = self._write(
            "SELECT target, state, attempts, next_attempt, last_status, last_error, delivered_at"
            " FROM deliveries WHERE alert_id = ? ORDER BY target",
            alert_id,
        ).fetchall()
        return {row[0]: DeliveryStatus(*row) for row in rows}

    def recent(self, limit: int = 50) -> list[tuple[Alert, dict[str, DeliveryStatus]]]:
        """The most recently received alerts with their status per target, newest first."""
        rows = self._write(
            "SELECT body FROM alerts ORDER BY received DESC, rowid DESC LIMIT ?", limit
        ).fetchall()
        alerts = [Alert.from_json(body) for (body,) in rows]
        return [(alert, self.statuses(alert.id)) for alert in alerts]

    def prune(self, *, received_before: float) -> int:
        """Forget settled alerts (none pending) received before the given time; return how many.

        Keep alerts for longer than the alerts topic keeps them: a pruned alert read
        again from the topic would be delivered again.
        """
        with self._lock:
            self._db.execute("BEGIN IMMEDIATE")
            settled = (
                "SELECT id FROM alerts WHERE received < ? AND id NOT IN"
                " (SELECT alert_id FROM deliveries WHERE state = 'pending')"
            )
            self._db.execute(
                f"DELETE FROM deliveries WHERE alert_id IN ({settled})", (received_before,)
            )
            count = self._db.execute(
                f"DELETE FROM alerts WHERE id IN ({settled})", (received_before,)
            ).rowcount
            self._db.execute("COMMIT")
        return count
