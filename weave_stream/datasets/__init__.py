"""Datasets: named, versioned rows mapped from production calls, each keeping its call.

::

    calls(...).to_dataset(NAME, mapping)          a query, or its children()
    weave-stream dataset create NAME --from-calls ...   the same on the command line
    topology ``datasets:`` rules ("from now on")  the streaming store sink adds matches
              │
              ▼
    <store>/datasets   immutable events: rows added, rows removed, one record per version
              │
              ▼
    Dataset(NAME): versions(), rows(version), to_pandas(), diff(), export(), source_calls()
              └─► run_local(topology, dataset), experiments, pandas, any Delta reader

See :mod:`weave_stream.datasets.dataset` for the rows and
:mod:`weave_stream.datasets.events` for how versions are committed exactly once.
"""

from __future__ import annotations

from weave_stream.datasets.dataset import Dataset, DatasetDiff, list_datasets, write_rows
from weave_stream.datasets.events import NewRow, VersionInfo
from weave_stream.datasets.export import export_rows, read_export

__all__ = [
    "Dataset",
    "DatasetDiff",
    "NewRow",
    "VersionInfo",
    "export_rows",
    "list_datasets",
    "read_export",
    "write_rows",
]
