"""Loading a topology validates its aggregates and monitors against its columns."""

from __future__ import annotations

from pathlib import Path

import pytest

from weave_stream.errors import TopologyError
from weave_stream.topology.loader import load_topology

COLUMNS = """
name: sections
columns:
  - name: embedding
    op: embed
    args: {text: inputs.document}
"""


def _load(tmp_path: Path, extra: str):
    path = tmp_path / "sections.yaml"
    path.write_text(COLUMNS + extra)
    return load_topology(path)


def test_a_monitor_on_a_column_the_topology_lacks_is_refused_at_load(tmp_path: Path) -> None:
    extra = "monitors:\n  - {name: drift, column: embeding, reference: {first_n: 10}}\n"
    with pytest.raises(TopologyError, match=r"monitor 'drift', field column: 'embeding'"):
        _load(tmp_path, extra)


def test_an_aggregate_on_an_unknown_key_is_refused_at_load(tmp_path: Path) -> None:
    extra = "aggregates:\n  - {name: q, window: 5m, group_by: [doc_class]}\n"
    with pytest.raises(TopologyError, match="'doc_class' is neither a column"):
        _load(tmp_path, extra)


def test_valid_sections_load(tmp_path: Path) -> None:
    extra = (
        "aggregates:\n  - {name: q, window: 5m, group_by: [op_name]}\n"
        "monitors:\n  - {name: drift, column: embedding, reference: {first_n: 10}}\n"
    )
    topology = _load(tmp_path, extra)
    assert len(topology.aggregates) == 1 and len(topology.monitors) == 1
