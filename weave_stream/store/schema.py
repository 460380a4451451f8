"""The tables of the call store: their Arrow schemas, partitions and schema version.

Each table is a Delta table in its own folder under the store's root::

    <root>/calls    one row per call: every Weave field (inputs, output, summary,
                    attributes kept whole as JSON text) plus extracted columns to filter
                    on (op, status, latency, tokens, cost); partitioned by event date
    <root>/values   one row per derived value (call, topology, column, op ref, trial):
                    the value in typed columns, its error, latency, cost, times
    <root>/alerts   one row per alert raised by a drift monitor
    <root>/subcalls one row per sub-call (an op called by a column's op): the call,
                    column, the column value's op ref and trial it was made for, its
                    position in the tree, parent ref, op ref, value, error, latency, cost
    <root>/catalog  what the values table holds, per day: each (topology, column, op
                    ref) and the types of its values and top-level fields (a few rows
                    per column and day: queries plan from it without scanning values)
    <root>/datasets every dataset's versions as immutable events (see
                    :mod:`weave_stream.datasets`): rows added, rows removed, and one
                    record per version (its mapping, source and counts); never retained
                    away, not partitioned

``date`` (``YYYY-MM-DD``, UTC) partitions every table but ``datasets``: the call's
``started_at`` day for calls and values (so a time range prunes both sides of a join),
the alert's day for alerts. A table's Delta ``name`` is ``weave_stream.<table>.v<version>``: a
store written by another schema version is refused with a clear error, never
misread. Later tables (datasets, topic maps) are added here, next to these.

>>> sorted(TABLES)
['alerts', 'calls', 'catalog', 'datasets', 'subcalls', 'values']
>>> TABLES["values"].identity
('call_id', 'column_name', 'op_ref', 'trial')
>>> table_label("calls"), parse_table_label("weave_stream.calls.v1")
('weave_stream.calls.v1', ('calls', 1))
"""

from __future__ import annotations

import re
from dataclasses import dataclass

import pyarrow as pa

__all__ = [
    "ALERTS_SCHEMA",
    "CALLS_SCHEMA",
    "CATALOG_SCHEMA",
    "DATASETS_SCHEMA",
    "SCHEMA_VERSION",
    "SUBCALLS_SCHEMA",
    "TABLES",
    "VALUES_SCHEMA",
    "TableSpec",
    "parse_table_label",
    "table_label",
]

SCHEMA_VERSION = 1
"""The version of the store's table schemas; bump it on any incompatible change."""

_TIME = pa.timestamp("us", tz="UTC")
_JSON = pa.string()  # JSON text: every engine reads it (DuckDB json_*, Spark get_json_object)

CALLS_SCHEMA = pa.schema(
    [
        pa.field("id", pa.string(), nullable=False),
        ("project_id", pa.string()),
        ("op_name", pa.string()),
        ("op", pa.string()),  # the short name of op_name (weave:///e/p/op/NAME:digest -> NAME)
        ("display_name", pa.string()),
        ("trace_id", pa.string()),
        ("parent_id", pa.string()),
        ("thread_id", pa.string()),
        ("turn_id", pa.string()),
        ("kind", pa.string()),  # complete, start (no end seen) or end (no start seen)
        ("status", pa.string()),  # success, error or running (Weave's summary.weave.status)
        ("started_at", _TIME),
        ("ended_at", _TIME),
        ("latency_ms", pa.float64()),
        ("prompt_tokens", pa.int64()),
        ("completion_tokens", pa.int64()),
        ("total_tokens", pa.int64()),
        ("cost", pa.float64()),  # USD, from summary.weave.costs when the producer sent them
        ("exception", pa.string()),
        ("inputs", _JSON),
        ("output", _JSON),
        ("summary", _JSON),
        ("attributes", _JSON),
        ("otel_dump", _JSON),
        ("wb_user_id", pa.string()),
        ("wb_run_id", pa.string()),
        ("wb_run_step", pa.int64()),
        ("wb_run_step_end", pa.int64()),
        ("deleted_at", _TIME),
        ("storage_size_bytes", pa.int64()),
        ("total_storage_size_bytes", pa.int64()),
        ("extra", _JSON),  # top-level fields a producer sent beyond Weave's
        ("stored_at", _TIME),
        pa.field("date", pa.string(), nullable=False),
    ]
)

# A derived value (or sub-call) as the values and subcalls tables hold it, typed (see
# weave_stream.store.rows.split_value): exactly one of number / text / vector for a
# scalar or an embedding; a dict's top-level scalar fields in fields_number /
# fields_text; value_json only when the typed columns cannot give the value back exactly
# (nested data, mixed lists...). Then its outcome and times, and the call's day.
_TYPED_VALUE: list[pa.Field | tuple[str, pa.DataType]] = [
    ("kind", pa.string()),
    ("number", pa.float64()),
    ("text", pa.string()),
    ("vector", pa.list_(pa.float32())),
    ("fields_number", pa.map_(pa.string(), pa.float64())),
    ("fields_text", pa.map_(pa.string(), pa.string())),
    ("value_json", _JSON),
    ("error", pa.string()),
    ("latency_ms", pa.float64()),
    ("cost", pa.float64()),
    ("cached", pa.bool_()),
    ("input_digest", pa.string()),
    ("details", _JSON),
    ("computed_at", _TIME),
    ("started_at", _TIME),  # the call's
    ("stored_at", _TIME),
    pa.field("date", pa.string(), nullable=False),
]

VALUES_SCHEMA = pa.schema(
    [
        pa.field("call_id", pa.string(), nullable=False),
        ("trace_id", pa.string()),
        pa.field("topology", pa.string(), nullable=False),
        pa.field("column_name", pa.string(), nullable=False),
        pa.field("op_ref", pa.string(), nullable=False),
        ("op", pa.string()),  # the op's name: op_ref without its version
        pa.field("trial", pa.int32(), nullable=False),
        *_TYPED_VALUE,
    ]
)

ALERTS_SCHEMA = pa.schema(
    [
        pa.field("id", pa.string(), nullable=False),
        ("topology", pa.string()),
        ("monitor", pa.string()),
        ("kind", pa.string()),
        ("score", pa.float64()),
        ("threshold", pa.float64()),
        ("call_ids", pa.list_(pa.string())),
        ("nearest_known_call", pa.string()),
        ("time", _TIME),
        ("group", pa.map_(pa.string(), pa.string())),
        ("count", pa.int64()),
        ("stats", _JSON),
        ("excerpt", pa.string()),
        ("nearest_known_excerpt", pa.string()),
        ("detector", pa.string()),
        ("project_id", pa.string()),
        ("stored_at", _TIME),
        pa.field("date", pa.string(), nullable=False),
    ]
)

SUBCALLS_SCHEMA = pa.schema(
    [
        pa.field("call_id", pa.string(), nullable=False),
        ("trace_id", pa.string()),
        pa.field("topology", pa.string(), nullable=False),
        pa.field("column_name", pa.string(), nullable=False),
        pa.field("column_ref", pa.string(), nullable=False),  # the column value's op ref
        pa.field("trial", pa.int32(), nullable=False),  # the column value's trial
        # The path of indexes from the column's value: "1.0" is the first call made by
        # the column op's second call (see weave_stream.columns.subcalls.flatten).
        pa.field("position", pa.string(), nullable=False),
        ("parent_ref", pa.string()),  # the op that made this call
        pa.field("op_ref", pa.string(), nullable=False),  # the op called
        ("op", pa.string()),
        *_TYPED_VALUE,  # the value, typed as in the values table
    ]
)

CATALOG_SCHEMA = pa.schema(
    [
        pa.field("topology", pa.string(), nullable=False),
        pa.field("column_name", pa.string(), nullable=False),
        pa.field("op_ref", pa.string(), nullable=False),
        pa.field("field", pa.string(), nullable=False),  # "" for the whole value
        pa.field("type", pa.string(), nullable=False),  # a value's kind; a field's number/text
        ("stored_at", _TIME),
        pa.field("date", pa.string(), nullable=False),
    ]
)

DATASETS_SCHEMA = pa.schema(
    [
        pa.field("dataset", pa.string(), nullable=False),
        pa.field("version", pa.int64(), nullable=False),  # the version this event made
        pa.field("kind", pa.string(), nullable=False),  # row, remove or version
        ("row_id", pa.string()),  # row and remove: the row's id
        ("position", pa.int64()),  # a row's place in its version (the query's order)
        ("call_id", pa.string()),  # the source call
        ("call_ref", pa.string()),  # weave:///<project>/call/<id>
        ("trace_id", pa.string()),
        ("started_at", _TIME),  # the source call's (caps per period count by it)
        ("fields", _JSON),  # row: the mapped fields, one JSON object
        ("rule", pa.string()),  # what added the row: "query", or "<topology>/<rule>"
        # version: the mapping in force, where its rows came from, counts, a note
        ("mapping", _JSON),
        ("source", _JSON),
        ("rows", pa.int64()),
        ("added", pa.int64()),
        ("removed", pa.int64()),
        ("note", pa.string()),
        ("created_at", _TIME),
    ]
)


@dataclass(frozen=True)
class TableSpec:
    """One table of the store: its schema, partition columns and row identity.

    ``identity`` names the columns that make a row one row: the store never holds
    two rows with the same identity (the sink and the local runner see to it).
    """

    name: str
    schema: pa.Schema
    identity: tuple[str, ...]
    partition_by: tuple[str, ...] = ("date",)
    description: str = ""
    # Columns whose min/max Delta keeps per file (file skipping): ids, times, scalars;
    # not the JSON blobs (Delta's default, the first 32 columns, would miss stored_at).
    stats_columns: tuple[str, ...] = ()
    retained: bool = True  # store_retention_days applies (datasets are kept for good)


TABLES: dict[str, TableSpec] = {
    "calls": TableSpec(
        "calls",
        CALLS_SCHEMA,
        ("id",),
        description="weave-stream: every valid call",
        stats_columns=(
            "id",
            "op_name",
            "op",
            "trace_id",
            "parent_id",
            "kind",
            "status",
            "started_at",
            "ended_at",
            "latency_ms",
            "total_tokens",
            "cost",
            "stored_at",
        ),
    ),
    "values": TableSpec(
        "values",
        VALUES_SCHEMA,
        ("call_id", "column_name", "op_ref", "trial"),
        description="weave-stream: derived values, one per (call, column, op ref, trial)",
        stats_columns=(
            "call_id",
            "trace_id",
            "topology",
            "column_name",
            "op_ref",
            "trial",
            "kind",
            "number",
            "text",
            "error",
            "computed_at",
            "started_at",
            "stored_at",
        ),
    ),
    "alerts": TableSpec(
        "alerts",
        ALERTS_SCHEMA,
        ("id",),
        description="weave-stream: drift alerts",
        stats_columns=("id", "topology", "monitor", "kind", "score", "time", "stored_at"),
    ),
    "catalog": TableSpec(
        "catalog",
        CATALOG_SCHEMA,
        ("topology", "column_name", "op_ref", "date", "field", "type"),
        description="weave-stream: the derived columns, op refs and value types, per day",
        stats_columns=(
            "topology",
            "column_name",
            "op_ref",
            "stored_at",
        ),
    ),
    "datasets": TableSpec(
        "datasets",
        DATASETS_SCHEMA,
        ("dataset", "version", "kind", "row_id"),
        partition_by=(),
        description="weave-stream: datasets, their versions and rows (immutable events)",
        stats_columns=("dataset", "version", "kind", "row_id", "call_id", "created_at"),
        retained=False,
    ),
    "subcalls": TableSpec(
        "subcalls",
        SUBCALLS_SCHEMA,
        ("call_id", "column_name", "column_ref", "trial", "position"),
        description="weave-stream: sub-calls, the children of derived values",
        stats_columns=(
            "call_id",
            "trace_id",
            "topology",
            "column_name",
            "column_ref",
            "trial",
            "position",
            "op_ref",
            "error",
            "computed_at",
            "started_at",
            "stored_at",
        ),
    ),
}
"""Every table of the store by name."""

_LABEL = re.compile(r"^weave_stream\.(?P<table>[a-z_]+)\.v(?P<version>\d+)$")


def table_label(table: str, version: int = SCHEMA_VERSION) -> str:
    """The Delta ``name`` of a store table: ``weave_stream.<table>.v<version>``."""
    return f"weave_stream.{table}.v{version}"


def parse_table_label(label: str | None) -> tuple[str, int] | None:
    """``(table, version)`` from a Delta table name, or None when it is not a store table's."""
    match = _LABEL.match(label or "")
    return (match.group("table"), int(match.group("version"))) if match else None
