"""weave-stream: watch LLM applications in production, over Kafka.

::

    producers ─► <prefix>.calls ─► ingest (calls, ingest) ─► <prefix>.calls.valid
                                      └─► <prefix>.calls.dlq (raw bytes + reason)
    <prefix>.registry ─► one topology worker per topology (runners.streaming):
      <prefix>.calls.valid ─► derive_batch (ops, cache) ─► <prefix>.derived.<topology>.<col>
                                ├─► windowed aggregates (windows) ─► queries, plots, /metrics
                                └─► drift monitors (drift) ─► <prefix>.alerts ─► notifier

The same topology runs in-process over a file or a list of calls (``run_local``),
with the same values, for experiments, tests and backfills. Every valid call, derived
value and alert lands in the call store (``store``: Delta tables, a folder or S3),
which ``calls()`` queries lazily, to pandas.

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

from weave_stream.broker.embedded import EmbeddedBroker
from weave_stream.columns.cache import MemoryCache, ResultCache, SqliteCache
from weave_stream.columns.derive import DerivedValue, derive_batch
from weave_stream.columns.plan import Plan, plan_topology
from weave_stream.config import Settings, load_settings
from weave_stream.datasets import Dataset, list_datasets
from weave_stream.errors import (
    BrokerError,
    BudgetExceededError,
    CallValidationError,
    ConfigError,
    DatasetError,
    DeliveryError,
    IngestError,
    OpError,
    OpTimeoutError,
    QueryError,
    StoreError,
    TopologyError,
    VectorIndexError,
    WeaveStreamError,
)
from weave_stream.ingest.call import Call, merge, parse_call
from weave_stream.ops import Classify, Embed, Judge, Op, op
from weave_stream.query import Query, calls
from weave_stream.runners.local import run_local
from weave_stream.runners.results import ResultTable
from weave_stream.store import Store, StoreWriter
from weave_stream.topology.loader import load_topology
from weave_stream.topology.spec import Column, Source, Topology

__all__ = [
    "BrokerError",
    "BudgetExceededError",
    "Call",
    "CallValidationError",
    "Classify",
    "Column",
    "ConfigError",
    "Dataset",
    "DatasetError",
    "DeliveryError",
    "DerivedValue",
    "Embed",
    "EmbeddedBroker",
    "IngestError",
    "Judge",
    "MemoryCache",
    "Op",
    "OpError",
    "OpTimeoutError",
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
    "Topology",
    "TopologyError",
    "VectorIndexError",
    "WeaveStreamError",
    "calls",
    "derive_batch",
    "list_datasets",
    "load_settings",
    "load_topology",
    "merge",
    "op",
    "parse_call",
    "plan_topology",
    "run_local",
]
