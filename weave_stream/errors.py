"""The one exception tree of weave-stream: catch :class:`WeaveStreamError` for all of them.

::

    WeaveStreamError
     ├── ConfigError          a setting is missing or invalid (raised at start-up)
     ├── DurationError        a duration cannot be read ("10m", "500ms", 300); also a ValueError
     ├── TimestampError       a time cannot be read (ISO-8601 or epoch seconds); also a ValueError
     ├── BrokerError          the Kafka-compatible broker could not be started or reached
     ├── IngestError          calls could not be read: a bad record, an unreadable input file
     │    └── CallValidationError   ... with a machine-readable ``reason`` (the dead-letter reason)
     ├── CollectorRequestError  a request to the collector was refused (with its HTTP status)
     ├── TopologyError        a topology spec is invalid (names topology, column, field)
     ├── OpError              an op failed on an input (becomes a derived value's ``error``)
     │    ├── OpTimeoutError
     │    ├── MissingFieldError     a call lacks a field an op's arguments read
     │    ├── SubCallError          an op called from an op's code (or with op.call) failed
     │    └── OpDefinitionError     an op is defined or parametrised wrongly (labels, policy)
     ├── BudgetExceededError  a plan costs more than the budget it was given
     ├── QueryError           a question about results (aggregates, calls()) cannot be answered
     ├── OutputError          a result cannot be written in the format asked for
     ├── ExperimentError      an experiment spec, its data or a comparison is invalid
     ├── VectorIndexError     a FAISS index or its snapshot is unusable
     ├── DeliveryError        an alert could not be delivered to a target (retried)
     ├── StoreError           the call store cannot be opened, read or written
     │    └── FencedError     another writer took over one of this writer's partitions
     ├── DatasetError         a dataset cannot be made, read or added to (names it and the fix)
     └── TopicError           a topic map cannot be fitted, stored or used for assignment

Every message says what failed, where (topology, column, aggregate, file and line),
the offending value, and how to fix it. Anything else that escapes is a bug.
``DurationError`` and ``TimestampError`` are also ``ValueError`` s so that a pydantic
model reports a bad value at its field; the model's own error is then wrapped in
the stage's class.

>>> try:
...     raise TopologyError("topology 'demo', column 'n': ...")
... except WeaveStreamError as exc:
...     type(exc).__name__
'TopologyError'
"""

from __future__ import annotations

from typing import Any

__all__ = [
    "BrokerError",
    "BudgetExceededError",
    "CallValidationError",
    "CollectorRequestError",
    "ConfigError",
    "DatasetError",
    "DeliveryError",
    "DurationError",
    "ExperimentError",
    "FencedError",
    "IngestError",
    "MissingFieldError",
    "OpDefinitionError",
    "OpError",
    "OpTimeoutError",
    "OutputError",
    "QueryError",
    "StoreError",
    "SubCallError",
    "TimestampError",
    "TopicError",
    "TopologyError",
    "VectorIndexError",
    "WeaveStreamError",
    "WeaveStreamWarning",
    "field_errors",
    "shown",
    "validation_problems",
]


class WeaveStreamError(Exception):
    """Root of every error weave-stream raises on purpose."""


class WeaveStreamWarning(UserWarning):
    """Something goes on in a lesser way, and says why (the CLI shows it as one line)."""


class ConfigError(WeaveStreamError):
    """A setting is missing or invalid; raised when settings are loaded, before anything runs."""


class DurationError(WeaveStreamError, ValueError):
    """A duration cannot be read; the message shows how to write one (``10m``, ``500ms``, 300)."""


class TimestampError(WeaveStreamError, ValueError):
    """A time cannot be read; write ISO-8601 (``2026-11-26T03:00:00Z``) or epoch seconds."""


class BrokerError(WeaveStreamError):
    """The Kafka-compatible broker could not be started, reached or used."""


class IngestError(WeaveStreamError):
    """Calls could not be read: a record that is not a call, an input file that is missing."""


class CallValidationError(IngestError):
    """A record is not a valid Weave call; ``reason`` is the dead-letter reason code.

    >>> err = CallValidationError("missing_id", "record has no 'id' field; ...")
    >>> err.reason
    'missing_id'
    """

    def __init__(self, reason: str, detail: str) -> None:
        super().__init__(f"{reason}: {detail}")
        self.reason = reason
        self.detail = detail


class TopologyError(WeaveStreamError):
    """A topology spec is invalid; the message names the topology, the column and the field."""


class CollectorRequestError(WeaveStreamError):
    """A request to the collector was refused; ``status`` is the HTTP status it answers.

    >>> CollectorRequestError(400, "calls/complete: expected a batch").status
    400
    """

    def __init__(self, status: int, message: str, retry_after: float | None = None) -> None:
        super().__init__(message)
        self.status = status
        self.retry_after = retry_after


class OpError(WeaveStreamError):
    """An op failed on an input; the runner records it as the derived value's error."""


class OpTimeoutError(OpError):
    """An op did not finish within its declared timeout."""


class MissingFieldError(OpError):
    """A call has no value at a path an op's arguments read (``inputs.document`` on a call
    without it); the message names the missing part. It becomes the value's ``error``."""


class SubCallError(OpError):
    """An op called from inside another op (a sub-call), or with ``op.call``/``op.acall``,
    failed; ``op_ref`` and ``error`` say which op and why. Raised into the calling op's
    code, it becomes that op's error value unless the code catches it.

    >>> err = SubCallError("embed:0a1b2c3d4e5f", "text must be a string")
    >>> err.op_ref, str(err)
    ('embed:0a1b2c3d4e5f', 'op embed:0a1b2c3d4e5f failed: text must be a string')
    """

    def __init__(self, op_ref: str, error: str) -> None:
        super().__init__(f"op {op_ref} failed: {error}")
        self.op_ref = op_ref
        self.error = error


class OpDefinitionError(OpError):
    """An op is defined or parametrised wrongly (labels, method, policy): fix its definition."""


class BudgetExceededError(WeaveStreamError):
    """A run or backfill was refused: its plan costs more than ``--budget``."""


class QueryError(WeaveStreamError):
    """A question about results cannot be answered as asked.

    Aggregates, drill-down and comparisons, and ``calls()`` queries over the call store
    (an unknown field or column, a bad filter or range); the message names the part
    and the fix.
    """


class OutputError(WeaveStreamError):
    """A result cannot be written: the format or the file name is not one weave-stream writes."""


class ExperimentError(WeaveStreamError):
    """An experiment cannot run or be compared as asked; the message names the variant and fix."""


class VectorIndexError(WeaveStreamError):
    """A vector index or its on-disk snapshot cannot be used."""


class DeliveryError(WeaveStreamError):
    """An alert could not be delivered to a target; the notifier retries it."""


class StoreError(WeaveStreamError):
    """The call store cannot be opened, read or written (names the table, path and fix)."""


class FencedError(StoreError):
    """Another writer committed for one of this writer's app ids: it lost that partition."""


class DatasetError(WeaveStreamError):
    """A dataset cannot be created, read or added to: a name taken, a version that does not
    exist, a mapping path that resolves in no call (naming the nearest known paths)."""


class TopicError(WeaveStreamError):
    """A topic map cannot be fitted (too few documents), found, or used (another column/model)."""


def field_errors(exc: Any, whole: str = "entry") -> list[tuple[str, str, Any]]:
    """``(field, message, offending value)`` for each problem of a pydantic ``ValidationError``.

    The field is the dotted path (``window.size``), or ``whole`` for a check across
    fields; the message loses pydantic's ``Value error,`` prefix. Every stage wraps a
    model's errors in its own class with these.
    """
    found = []
    for error in exc.errors(include_url=False):
        field = ".".join(str(part) for part in error["loc"]) or whole
        found.append((field, str(error["msg"]).removeprefix("Value error, "), error.get("input")))
    return found


def shown(value: Any, limit: int = 80) -> str:
    """``repr(value)``, cut to ``limit`` characters for a message.

    >>> shown("x" * 100, limit=10)
    "'xxxxxx..."
    """
    text = repr(value)
    return text if len(text) <= limit else text[: limit - 3] + "..."


def validation_problems(exc: Any, whole: str = "entry") -> list[str]:
    """``field F: message (got V)`` for each problem of a pydantic ``ValidationError``."""
    return [f"field {f}: {message} (got {shown(v)})" for f, message, v in field_errors(exc, whole)]
