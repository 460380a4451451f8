"""The one exception tree of weave-stream.

::

    WeaveStreamError
     ├── ConfigError          a setting is missing or invalid (raised at start-up)
     ├── BrokerError          the Kafka-compatible broker could not be started or reached
     ├── IngestError          a record could not be turned into a call
     │    └── CallValidationError   ... with a machine-readable ``reason`` (the dead-letter reason)
     ├── OpError              an op failed on an input (becomes a derived value's ``error``)
     │    └── OpTimeoutError
     ├── TopologyError        a topology spec is invalid (names topology, column, field)
     ├── BudgetExceededError  a plan costs more than the budget it was given
     ├── VectorIndexError     a FAISS index or its snapshot is unusable
     ├── DeliveryError        an alert could not be delivered to a target (retried)
     ├── StoreError           the call store cannot be opened, read or written
     ├── QueryError           a calls() query is malformed (names the part and the fix)
     └── DatasetError         a dataset cannot be made, read or added to (names it and the fix)

Every message says what failed, where, the offending value, and how to fix it.
"""

from __future__ import annotations

__all__ = [
    "BrokerError",
    "BudgetExceededError",
    "CallValidationError",
    "ConfigError",
    "DatasetError",
    "DeliveryError",
    "IngestError",
    "OpError",
    "OpTimeoutError",
    "QueryError",
    "StoreError",
    "TopologyError",
    "VectorIndexError",
    "WeaveStreamError",
]


class WeaveStreamError(Exception):
    """Root of every error weave-stream raises on purpose."""


class ConfigError(WeaveStreamError):
    """A setting is missing or invalid; raised when settings are loaded, before anything runs."""


class BrokerError(WeaveStreamError):
    """The Kafka-compatible broker could not be started, reached or used."""


class IngestError(WeaveStreamError):
    """A record from the calls topic could not be turned into a call."""


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


class OpError(WeaveStreamError):
    """An op failed on an input; the runner records it as the derived value's error."""


class OpTimeoutError(OpError):
    """An op did not finish within its declared timeout."""


class TopologyError(WeaveStreamError):
    """A topology spec is invalid; the message names the topology, the column and the field."""


class BudgetExceededError(WeaveStreamError):
    """A run or backfill was refused: its plan costs more than ``--budget``."""


class VectorIndexError(WeaveStreamError):
    """A vector index or its on-disk snapshot cannot be used."""


class DeliveryError(WeaveStreamError):
    """An alert could not be delivered to a target; the notifier retries it."""


class StoreError(WeaveStreamError):
    """The call store cannot be opened, read or written (names the table, path and fix)."""


class QueryError(WeaveStreamError):
    """A ``calls()`` query is malformed: an unknown field or column, a bad filter or range."""


class DatasetError(WeaveStreamError):
    """A dataset cannot be created, read or added to: a name taken, a version that does not
    exist, a mapping path that resolves in no call (naming the nearest known paths)."""
