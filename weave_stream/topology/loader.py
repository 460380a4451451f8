"""Read a topology from a YAML or Python file, or from plain data (names: ``topologies/``).

YAML (or the dict it parses to)::

    name: text_extract
    source: {op_name: text-extract, filter: {exception: {exists: false}}, sample: 1.0}
    columns:
      - name: doc_class
        op: classify                       # built-in, registered name, or pkg.mod:function
        params: {labels: {invoice: "a bill asking for payment", ...}}
        args: {text: inputs.document}
        filter: {attributes.env: prod}     # optional
        sample: 1.0                        # optional, relative to the source's
        trials: 1                          # optional, non-deterministic ops only
        higher_is_worse: false             # optional: drill-downs list the worst first
    aggregates: []                         # Aggregate entries (topology.aggregates)
    monitors: []                           # Monitor entries (topology.monitors)
    datasets: []                           # DatasetSpec entries, "from now on" (topology.datasets)
    topics: []                             # TopicColumn entries (topology.topic_columns)

A Python file defines a :class:`~weave_stream.topology.spec.Topology` named ``topology``
(or exactly one Topology at module level).

>>> t = topology_from_dict({"name": "t", "columns": [
...     {"name": "doc_class", "op": "classify", "params": {"labels": ["a", "b"]},
...      "args": {"text": "inputs.document"}}]})
>>> t.compiled[0].op.name
'classify'
"""

from __future__ import annotations

import dataclasses
import importlib.util
import sys
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import yaml

from weave_stream.config import Settings
from weave_stream.errors import TopologyError
from weave_stream.ops.resolve import importable_from
from weave_stream.topology.spec import Column, Source, Topology

__all__ = [
    "TOPOLOGY_DIR",
    "find_topology_file",
    "load_topology",
    "topology_from_dict",
]

TOPOLOGY_DIR = Path("topologies")
_TOP_KEYS = frozenset(
    {"name", "description", "source", "columns", "aggregates", "monitors", "datasets", "topics"}
)
_SOURCE_KEYS = frozenset({"op_name", "filter", "sample"})
_COLUMN_KEYS = frozenset(
    {"name", "op", "params", "args", "filter", "sample", "trials", "higher_is_worse"}
)
_SUFFIXES = (".yaml", ".yml", ".py")


def load_topology(
    path_or_name: str | Path, settings: Settings | None = None, directory: Path | None = None
) -> Topology:
    """Load and validate a topology from a file, or by name from ``directory`` (``topologies/``).

    Everything is checked here, before anything runs (by building the
    :class:`~weave_stream.topology.spec.Topology`): columns and their DAG, and the
    ``aggregates:`` and ``monitors:`` sections (keys that name no column or call field,
    a monitor on a column the topology does not have).
    """
    path = find_topology_file(path_or_name, directory)
    if path.suffix == ".py":
        topology = _from_python(path)
        topology = dataclasses.replace(
            topology, settings=settings or topology.settings, search_path=path.parent
        )
    else:
        try:
            data = yaml.safe_load(path.read_text(encoding="utf-8"))
        except yaml.YAMLError as exc:
            raise TopologyError(f"topology file {path} is not valid YAML: {exc}") from None
        topology = topology_from_dict(
            data, settings=settings, search_path=path.parent, origin=str(path)
        )
    return topology


def find_topology_file(path_or_name: str | Path, directory: Path | None = None) -> Path:
    """The file a topology argument names: a path, or ``<directory>/<name>.{yaml,yml,py}``."""
    path = Path(path_or_name)
    if path.is_file():
        if path.suffix not in _SUFFIXES:
            raise TopologyError(f"topology file {path} must end in .yaml, .yml or .py")
        return path
    directory = directory or TOPOLOGY_DIR
    for suffix in _SUFFIXES:
        candidate = directory / f"{path_or_name}{suffix}"
        if candidate.is_file():
            return candidate
    known = (
        sorted({p.stem for s in _SUFFIXES for p in directory.glob(f"*{s}")})
        if directory.is_dir()
        else []
    )
    raise TopologyError(
        f"no topology {str(path_or_name)!r}: not a file, and not a name under {directory}/ "
        f"(known there: {', '.join(known) or 'none'})"
    )


def topology_from_dict(
    data: Any,
    settings: Settings | None = None,
    search_path: Path | None = None,
    origin: str = "topology spec",
) -> Topology:
    """Build (and so validate) a topology from its plain-data form."""
    if not isinstance(data, Mapping):
        raise TopologyError(
            f"{origin}: a topology is a mapping with name, source and columns; got {data!r:.80}"
        )
    name = data.get("name", "?")
    where = f"topology {name!r} ({origin})"
    unknown = sorted(set(data) - _TOP_KEYS)
    if unknown:
        raise TopologyError(
            f"{where}: unknown fields {unknown}; a topology has {sorted(_TOP_KEYS)}"
        )
    if "name" not in data:
        raise TopologyError(f"{origin}: the topology has no 'name'")
    source = _source(data.get("source") or {}, where)
    raw_columns = data.get("columns") or []
    if not isinstance(raw_columns, list):
        raise TopologyError(
            f"{where}, field 'columns': must be a list of columns, got {raw_columns!r:.80}"
        )
    columns = [_column(entry, index, where) for index, entry in enumerate(raw_columns)]
    try:
        return Topology(
            name=name,
            columns=columns,
            source=source,
            description=str(data.get("description") or ""),
            aggregates=data.get("aggregates") or (),
            monitors=data.get("monitors") or (),
            datasets=data.get("datasets") or (),
            topics=data.get("topics") or (),
            settings=settings,
            search_path=search_path,
        )
    except TopologyError as exc:
        raise TopologyError(f"{exc}\n  (in {origin})") from None


def _source(data: Any, where: str) -> Source:
    if not isinstance(data, Mapping):
        raise TopologyError(f"{where}, field 'source': must be a mapping, got {data!r:.80}")
    unknown = sorted(set(data) - _SOURCE_KEYS)
    if unknown:
        raise TopologyError(
            f"{where}, source: unknown fields {unknown}; a source has {sorted(_SOURCE_KEYS)}"
        )
    return Source(
        op_name=data.get("op_name"), filter=data.get("filter"), sample=data.get("sample", 1.0)
    )


def _column(data: Any, index: int, where: str) -> Column:
    if not isinstance(data, Mapping):
        raise TopologyError(f"{where}, columns[{index}]: must be a mapping, got {data!r:.80}")
    label = f"column {data.get('name', index)!r}"
    unknown = sorted(set(data) - _COLUMN_KEYS)
    if unknown:
        raise TopologyError(
            f"{where}, {label}: unknown fields {unknown}; a column has {sorted(_COLUMN_KEYS)}"
        )
    for required in ("name", "op"):
        if required not in data:
            raise TopologyError(f"{where}, {label}, field {required!r}: missing")
    return Column(
        name=data["name"],
        op=data["op"],
        args=data.get("args") or {},
        params=data.get("params") or {},
        filter=data.get("filter"),
        sample=data.get("sample", 1.0),
        trials=data.get("trials", 1),
        higher_is_worse=data.get("higher_is_worse"),
    )


def _from_python(path: Path) -> Topology:
    module_name = f"weave_stream_topologies.{path.stem}"
    spec = importlib.util.spec_from_file_location(module_name, path)
    if spec is None or spec.loader is None:
        raise TopologyError(f"cannot import topology file {path}")
    module = importlib.util.module_from_spec(spec)
    sys.modules[module_name] = module  # ops defined in the file are versioned by their source
    with importable_from(path.parent):  # its own modules beside it
        spec.loader.exec_module(module)
    found = getattr(module, "topology", None)
    if isinstance(found, Topology):
        return found
    candidates = [value for value in vars(module).values() if isinstance(value, Topology)]
    if len(candidates) != 1:
        raise TopologyError(
            f"topology file {path} must define one Topology, named 'topology' "
            f"(found {len(candidates)})"
        )
    return candidates[0]
