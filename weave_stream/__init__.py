"""weave-stream: watch LLM applications in production, over Kafka.

::

    weave clients, OTLP ─► collector ─┐
    other producers ──────────────────┴► <prefix>.calls ─► ingest ─► <prefix>.calls.valid
                                      └─► <prefix>.calls.dlq (raw bytes + reason)
    <prefix>.registry ─► one topology worker per topology (runners.streaming):
      <prefix>.calls.valid ─► derive_batch (columns, ops) ─► <prefix>.derived.<topology>.<col>
                                ├─► windowed aggregates (windows, aggregates) ─► queries, /metrics
                                └─► drift monitors (drift) ─► <prefix>.alerts ─► notify

The same topology runs in-process over a file or a list of calls (``run_local``),
with the same values, for experiments, tests and backfills. Every valid call, derived
value and alert lands in the call store (``store``: Delta tables, a folder or S3),
which ``calls()`` queries lazily, to pandas.

The package, in the order calls flow (a stage imports only the ones above it)::

    errors durations topics config metrics loopback   shared modules at the root
    broker/      the embedded broker (Tansu) and Kafka helpers
    collector/   the Weave trace-server write API and OTLP/HTTP, into <prefix>.calls
    ingest/      the call record, validation, start/end merge, dead letters, call files
    ops/         the Op protocol, versioning, execution; embed, classify, judge
    topology/    Topology, Column, Aggregate, Monitor; YAML/Python loader; paths, registry
    columns/     derived columns: derive, result cache, cost plan, values read back
    windows/     window arithmetic and mergeable partials (pure)
    aggregates/  rows, in-process and changelog sources, queries, tables, compare, plots
    drift/       vector index, novelty, shift and change detection, storms (pure)
    notify/      alert records, Slack and webhook delivery
    dashboard/   Grafana dashboards generated from a topology
    store/       the call store: calls, derived values and alerts in Delta tables; topic maps
    datasets/    datasets: immutable, versioned events in the call store; rules, export
    query/       calls(): lazy queries over the call store (DuckDB), to pandas; .topics()
    topic_maps/  topics: fit and name clusters of a column's embeddings, assign, alert
    runners/     local, results, backfill, worker processes; streaming/ (Faust, alone)
    demo/        sample calls and the stand-in judge of ``weave-stream demo``
    cli/         the ``weave-stream`` commands

Names load on first use: ``import weave_stream.errors`` imports no model or broker code.

>>> from weave_stream import Column, Source, Topology, op, run_local
>>> @op
... def words(text: str) -> int:
...     return len(text.split())
>>> topology = Topology(name="demo", source=Source(op_name="extract"),
...                     columns=[Column("words", words, args={"text": "inputs.document"})])
>>> calls = [{"id": "c1", "op_name": "extract", "started_at": 1795662000,
...           "ended_at": 1795662001, "inputs": {"document": "an invoice for ACME"}}]
>>> run_local(topology, calls).to_pandas()["words"].tolist()
[4]
>>> import tempfile
>>> store = tempfile.mkdtemp()
>>> _ = run_local(topology, calls, store=store)
>>> from weave_stream import calls as query
>>> query(store=store, columns=["inputs.document", "demo.words"]).to_pandas().values.tolist()
[['c1', 'an invoice for ACME', 4]]
"""

from __future__ import annotations

import importlib as _importlib
import typing as _typing

# Names load on first use (PEP 562), so `import weave_stream.errors` or the CLI's start
# does not import torch, faust or pandas; type checkers see the imports below.
if _typing.TYPE_CHECKING:
    from weave_stream.broker.embedded import EmbeddedBroker
    from weave_stream.columns.cache import MemoryCache, ResultCache, SqliteCache
    from weave_stream.columns.derive import DerivedValue, derive_batch
    from weave_stream.columns.plan import Plan, plan_topology
    from weave_stream.config import Settings, load_settings
    from weave_stream.datasets.dataset import Dataset, list_datasets
    from weave_stream.durations import parse_duration
    from weave_stream.errors import (
        BrokerError,
        BudgetExceededError,
        CallValidationError,
        CollectorRequestError,
        ConfigError,
        DatasetError,
        DeliveryError,
        DurationError,
        ExperimentError,
        FencedError,
        IngestError,
        MissingFieldError,
        OpDefinitionError,
        OpError,
        OpTimeoutError,
        OutputError,
        QueryError,
        StoreError,
        SubCallError,
        TimestampError,
        TopicError,
        TopologyError,
        VectorIndexError,
        WeaveStreamError,
    )
    from weave_stream.experiments import Experiment, ExperimentResult, Variant
    from weave_stream.ingest.call import Call, parse_call
    from weave_stream.ingest.merge import merge
    from weave_stream.ops import Classify, Embed, Explain, Judge, Op, op
    from weave_stream.query.calls import Query, calls
    from weave_stream.query.values import derived_values
    from weave_stream.runners.local import run_local
    from weave_stream.runners.results import ResultTable
    from weave_stream.store.tables import Store
    from weave_stream.store.writer import StoreWriter
    from weave_stream.topology.aggregates import Aggregate, DrillDownSpec, Window
    from weave_stream.topology.loader import load_topology
    from weave_stream.topology.monitors import Monitor
    from weave_stream.topology.spec import Column, Source, Topology

_EXPORTS = {
    "EmbeddedBroker": "weave_stream.broker.embedded",
    "MemoryCache": "weave_stream.columns.cache",
    "ResultCache": "weave_stream.columns.cache",
    "SqliteCache": "weave_stream.columns.cache",
    "DerivedValue": "weave_stream.columns.derive",
    "derive_batch": "weave_stream.columns.derive",
    "Plan": "weave_stream.columns.plan",
    "plan_topology": "weave_stream.columns.plan",
    "derived_values": "weave_stream.query.values",
    "Settings": "weave_stream.config",
    "load_settings": "weave_stream.config",
    "Dataset": "weave_stream.datasets.dataset",
    "list_datasets": "weave_stream.datasets.dataset",
    "parse_duration": "weave_stream.durations",
    "BrokerError": "weave_stream.errors",
    "BudgetExceededError": "weave_stream.errors",
    "CallValidationError": "weave_stream.errors",
    "CollectorRequestError": "weave_stream.errors",
    "ConfigError": "weave_stream.errors",
    "DatasetError": "weave_stream.errors",
    "DeliveryError": "weave_stream.errors",
    "DurationError": "weave_stream.errors",
    "ExperimentError": "weave_stream.errors",
    "Experiment": "weave_stream.experiments",
    "ExperimentResult": "weave_stream.experiments",
    "Variant": "weave_stream.experiments",
    "Explain": "weave_stream.ops",
    "IngestError": "weave_stream.errors",
    "MissingFieldError": "weave_stream.errors",
    "OpDefinitionError": "weave_stream.errors",
    "OpError": "weave_stream.errors",
    "OpTimeoutError": "weave_stream.errors",
    "FencedError": "weave_stream.errors",
    "OutputError": "weave_stream.errors",
    "QueryError": "weave_stream.errors",
    "StoreError": "weave_stream.errors",
    "SubCallError": "weave_stream.errors",
    "TimestampError": "weave_stream.errors",
    "TopicError": "weave_stream.errors",
    "TopologyError": "weave_stream.errors",
    "VectorIndexError": "weave_stream.errors",
    "WeaveStreamError": "weave_stream.errors",
    "Call": "weave_stream.ingest.call",
    "merge": "weave_stream.ingest.merge",
    "parse_call": "weave_stream.ingest.call",
    "Classify": "weave_stream.ops",
    "Embed": "weave_stream.ops",
    "Judge": "weave_stream.ops",
    "Op": "weave_stream.ops",
    "op": "weave_stream.ops",
    "Query": "weave_stream.query.calls",
    "calls": "weave_stream.query.calls",
    "run_local": "weave_stream.runners.local",
    "ResultTable": "weave_stream.runners.results",
    "Store": "weave_stream.store.tables",
    "StoreWriter": "weave_stream.store.writer",
    "Aggregate": "weave_stream.topology.aggregates",
    "DrillDownSpec": "weave_stream.topology.aggregates",
    "Window": "weave_stream.topology.aggregates",
    "load_topology": "weave_stream.topology.loader",
    "Monitor": "weave_stream.topology.monitors",
    "Column": "weave_stream.topology.spec",
    "Source": "weave_stream.topology.spec",
    "Topology": "weave_stream.topology.spec",
}

__all__ = [
    "Aggregate",
    "BrokerError",
    "BudgetExceededError",
    "Call",
    "CallValidationError",
    "Classify",
    "CollectorRequestError",
    "Column",
    "ConfigError",
    "Dataset",
    "DatasetError",
    "DeliveryError",
    "DerivedValue",
    "DrillDownSpec",
    "DurationError",
    "Embed",
    "EmbeddedBroker",
    "Experiment",
    "ExperimentError",
    "ExperimentResult",
    "Explain",
    "FencedError",
    "IngestError",
    "Judge",
    "MemoryCache",
    "MissingFieldError",
    "Monitor",
    "Op",
    "OpDefinitionError",
    "OpError",
    "OpTimeoutError",
    "OutputError",
    "Plan",
    "Query",
    "QueryError",
    "ResultCache",
    "ResultTable",
    "Settings",
    "Source",
    "SqliteCache",
    "Store",
    "StoreError",
    "StoreWriter",
    "SubCallError",
    "TimestampError",
    "TopicError",
    "Topology",
    "TopologyError",
    "Variant",
    "VectorIndexError",
    "WeaveStreamError",
    "Window",
    "calls",
    "derive_batch",
    "derived_values",
    "list_datasets",
    "load_settings",
    "load_topology",
    "merge",
    "op",
    "parse_call",
    "parse_duration",
    "plan_topology",
    "run_local",
]


def __getattr__(name: str) -> _typing.Any:
    module = _EXPORTS.get(name)
    if module is None:
        raise AttributeError(f"module 'weave_stream' has no attribute {name!r}")
    value = getattr(_importlib.import_module(module), name)
    globals()[name] = value  # later lookups are plain attribute reads
    return value


def __dir__() -> list[str]:
    return sorted({*globals(), *__all__})
