"""A column whose every recent value is an error is a failed component, not a log line.

A topology worker counts, per column, the values that were errors since the column's
last success. At :data:`ALL_ERRORS` in a row, ``topology/<name>/columns/<column>`` fails
with the last error (a judge with no endpoint, an argument path no call has): ``/readyz``
and ``weave-stream status`` say so, as the values do. One success makes it ok again.
A topics entry's column is left out: before its first map its values are errors by
design, and its own component says that it waits.

>>> from types import SimpleNamespace as Value
>>> from weave_stream.runners.streaming.health import HEALTH
>>> health = ColumnHealth("t", threshold=2)
>>> health.observe([Value(column="judge", error="no endpoint")] * 2)
>>> HEALTH.snapshot()["topology/t/columns/judge"]["state"]
'failed'
>>> health.observe([Value(column="judge", error=None)])
>>> HEALTH.snapshot()["topology/t/columns/judge"]["state"]
'ok'
>>> HEALTH.forget("topology/t/columns/judge")
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Collection, Sequence
from typing import Any

from weave_stream.runners.streaming.health import HEALTH

__all__ = ["ALL_ERRORS", "ColumnHealth"]

ALL_ERRORS = 50  # values in a row that were errors: the column is failing, not unlucky


class ColumnHealth:
    """Per column: errors since the last success; a component fails at ``threshold``."""

    def __init__(
        self, topology: str, skip: Collection[str] = (), threshold: int = ALL_ERRORS
    ) -> None:
        self.topology, self.skip, self.threshold = topology, set(skip), threshold
        self._errors: Counter[str] = Counter()
        self._failed: set[str] = set()

    def observe(self, values: Sequence[Any]) -> None:
        """Count a batch's values (each with ``column`` and ``error``)."""
        last: dict[str, str] = {}
        for value in values:
            column = value.column
            if column in self.skip:
                continue
            if value.error is None:
                self._errors[column] = 0
                if column in self._failed:
                    self._failed.discard(column)
                    HEALTH.ok(self._component(column))
            else:
                self._errors[column] += 1
                last[column] = value.error
        for column, error in last.items():
            if self._errors[column] >= self.threshold and column not in self._failed:
                self._failed.add(column)
                HEALTH.failed(
                    self._component(column),
                    f"the last {self._errors[column]} values of column {column} were errors, "
                    f"the latest: {error}",
                )

    def _component(self, column: str) -> str:
        return f"topology/{self.topology}/columns/{column}"
