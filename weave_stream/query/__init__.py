"""``calls()``: lazy queries over the call store, in Weave's vocabulary, to pandas.

::

    calls(op=..., since=..., where=..., columns=...)     nothing read yet
      .where(...) .sort(...) .limit(...)                 still nothing
      .children(op_name=...)                             calls whose parent is one of these
      .group_by(key, every="1h").agg(...)                rows carrying their call ids
            └─ .drill(row)                               the calls behind a row
      .compare(other, by=..., metrics=[...])             two ranges: differences, CIs, tests
      .to_pandas() / .to_arrow() / iteration / .count() / len()   runs (DuckDB on the tables)

See :func:`weave_stream.query.calls.calls` for the parameters and
:mod:`weave_stream.query.paths` for how fields and derived columns are named.
"""

from __future__ import annotations

from weave_stream.query.calls import Query, calls
from weave_stream.query.compare import RangeComparison
from weave_stream.query.grouping import GroupBy, Grouped

__all__ = ["GroupBy", "Grouped", "Query", "RangeComparison", "calls"]
