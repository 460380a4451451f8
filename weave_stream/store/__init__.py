"""The call store: every valid call, derived value and alert, in open Delta tables.

::

    <prefix>.calls.valid ─┐
    <prefix>.derived.*  ──┤
    <prefix>.subcalls.* ──┼─► store sink (every worker) ─► StoreWriter ─► <root>/calls
    <prefix>.alerts ──────┘   run_local(..., store=)  ─┘                 <root>/values
                                                                         <root>/alerts
                                                                         <root>/subcalls
          calls() queries, DuckDB, Polars, pandas, Spark, Trino ◄── the same tables

The root is a folder (default ``<data_dir>/store``) or object storage
(``s3://bucket/prefix``). Writes are exactly once per source record (Delta
application transactions) and one row per identity (the first-value rule);
see :mod:`weave_stream.store.writer`. :mod:`weave_stream.store.maintenance` compacts,
applies retention and vacuums; :mod:`weave_stream.store.schema` is the table layout.
"""

from __future__ import annotations

from weave_stream.store.identities import IdentityIndex
from weave_stream.store.schema import SCHEMA_VERSION, TABLES, TableSpec
from weave_stream.store.tables import Store
from weave_stream.store.writer import FencedError, StoreWriter, WriteResult

__all__ = [
    "SCHEMA_VERSION",
    "TABLES",
    "FencedError",
    "IdentityIndex",
    "Store",
    "StoreWriter",
    "TableSpec",
    "WriteResult",
]
