"""A topology's ``datasets:`` rules in the local runner: the calls they keep, once, capped.

The streaming runner applies the same functions (``candidates`` in the topology
worker, ``apply_candidates`` in the store sink); tests/integration/test_dataset_stream.py
runs them there under SIGKILL.
"""

from __future__ import annotations

import dataclasses
from collections import Counter
from pathlib import Path
from typing import Any

import pytest

from tests.support.store_data import TOPOLOGY, trace_calls, truth
from weave_stream import calls
from weave_stream.datasets import Dataset, NewRow, write_rows
from weave_stream.datasets.apply import Candidate, apply_candidates
from weave_stream.errors import DatasetError, TopologyError
from weave_stream.metrics import DATASET_CANDIDATES
from weave_stream.runners.local import run_local
from weave_stream.store import Store
from weave_stream.topology.loader import topology_from_dict

RULE = {
    "name": "low-scores",
    "filter": {"columns.quality.score": {"lt": 0.6}},
    "sample": 0.7,
    "cap": {"rows": 6, "per": "1d"},
    "mapping": {"document": "inputs.document", "score": "columns.quality.score"},
}


def test_a_rule_keeps_the_matching_sampled_calls_once_under_its_cap(tmp_path: Path) -> None:
    topology = dataclasses.replace(TOPOLOGY, datasets=[RULE])
    (rule,) = topology.dataset_rules
    records = trace_calls(60)
    result = run_local(topology, records, store=tmp_path, batch_size=16)
    t = truth(records, result.values)
    matching = t[(t["op"] == "predict") & (t["score"] < 0.6)]
    kept = matching[matching["id"].map(rule.sampled)]
    assert 0 < len(kept) < len(matching)  # sampling dropped some, not all
    day = kept["started_at"].dt.strftime("%Y-%m-%d")
    want = kept.groupby(day, sort=False).head(6)  # the first 6 of each day, in call order
    assert (day.value_counts() > 6).any()  # the cap binds on some day
    data = Dataset("low-scores", tmp_path)
    rows = data.to_pandas()
    assert sorted(rows["source_call"]) == sorted(want["id"])
    by_id = want.set_index("id")
    assert all(by_id.loc[r.source_call, "score"] == r.score for r in rows.itertuples())
    assert all(by_id.loc[r.source_call, "document"] == r.document for r in rows.itertuples())
    # A version per batch that kept a call, not one per row.
    versions = data.versions()
    assert 1 < len(versions) < len(rows)
    assert data.mapping == {"document": "inputs.document", "score": "support.quality.score"}
    assert versions[-1].source == {"kind": "rule", "rule": "support/low-scores", "cap": [6, 86400]}
    # Replayed (a restart, a backfill): nothing is added twice, the cap still holds.
    run_local(topology, records, store=tmp_path, batch_size=7)
    assert len(data.versions()) == len(versions)
    assert Counter(data.to_pandas()["source_call"]) == Counter(want["id"])
    # The remembered mapping is the calls() one: adding from a query reuses it.
    more = calls(store=tmp_path, op="predict", where={"support.quality.score": {"ge": 0.6}})
    added = more.limit(3).to_dataset("low-scores", append=True).latest
    assert (added.added, added.rows) == (3, len(rows) + 3)
    assert added.mapping == data.mapping


def test_a_mapping_that_no_longer_resolves_is_a_clear_error(tmp_path: Path) -> None:
    run_local(TOPOLOGY, trace_calls(6), store=tmp_path)
    # Made when the column was called "grade"; the topology renamed it "quality" since.
    mapping = {"score": "support.grade.score"}
    old = [NewRow("old", {"score": 0.1})]
    write_rows(Store(tmp_path), "renamed", old, mapping=mapping, create=True)
    with pytest.raises(DatasetError) as caught:
        calls(store=tmp_path, op="predict").to_dataset("renamed", append=True)
    assert (
        "dataset 'renamed', mapping {'score': 'support.grade.score'}: unknown derived "
        "column support.grade" in str(caught.value)
    )
    assert "the store holds support.quality, support.topic, support.words" in str(caught.value)


@pytest.mark.parametrize(
    ("change", "message"),
    [
        ({"sample": 1.5}, "field sample: Input should be less than or equal to 1 (got 1.5)"),
        ({"sample": True}, "field sample: Input should be a valid number (got True)"),
        ({"cap": {"rows": 0, "per": "1d"}}, "field cap.rows: Input should be greater than or"),
        ({"cap": {"rows": 5, "per": "1x"}}, "field cap.per: '1x' is not a duration"),
        ({"cap": {"rows": 5}}, "field cap.per: Field required"),
        ({"filter": {"columns.quality.score": {"lt2": 1}}}, "field filter: "),
        ({"filter": {"columns.qualty.score": {"lt": 1}}}, "reads column 'qualty'"),
        ({"mapping": {"id": "inputs.document"}}, "'id' cannot name a field"),
        ({"mapping": {"s": "columns.grade.score"}}, "mapping.s: reads column 'grade'"),
        ({"mapping": {}}, "field mapping: map each row field"),
        ({"name": "bad name"}, "field name: 'bad name' is not a dataset name"),
        ({"every": "1d"}, "field every: Extra inputs are not permitted (got '1d')"),
    ],
)
def test_rules_out_of_range_are_refused_when_the_topology_is_built(
    change: dict[str, Any], message: str
) -> None:
    spec = {
        "name": "support",
        "columns": [
            {
                "name": "quality",
                "op": "classify",
                "params": {"labels": ["a", "b"]},
                "args": {"text": "inputs.document"},
            }
        ],
        "datasets": [{**RULE, **change}],
    }
    with pytest.raises(TopologyError) as caught:
        topology_from_dict(spec)
    assert "topology 'support' is invalid:\n  dataset " in str(caught.value)
    assert message in str(caught.value)


def test_rules_round_trip_through_the_registry_form() -> None:
    topology = dataclasses.replace(TOPOLOGY, datasets=[RULE])
    data = topology.to_dict()
    assert data["datasets"] == [{**RULE, "cap": {"rows": 6, "per": 86400}}]  # seconds
    again = dataclasses.replace(TOPOLOGY, datasets=data["datasets"])
    assert again.datasets == topology.datasets
    assert again.dataset_rules[0].stored_mapping == topology.dataset_rules[0].stored_mapping
    assert "datasets" not in TOPOLOGY.to_dict()  # unchanged specs keep their digest


def test_a_rule_whose_mapping_differs_from_the_datasets_adds_nothing_and_counts_it(
    tmp_path: Path,
) -> None:
    store = Store(tmp_path)
    write_rows(
        store, "shared", [NewRow("c0", {"d": "x"})], mapping={"d": "inputs.text"}, create=True
    )
    same = Candidate("shared", "t/shared", "c1", {"d": "y"}, {"d": "inputs.text"})
    other = Candidate("shared", "u/shared", "c2", {"e": "z"}, {"e": "inputs.other"})
    refused = DATASET_CANDIDATES.labels("shared", "refused")
    before = refused._value.get()
    assert apply_candidates(store, [same, other]) == {"shared": 1}
    assert [r["source_call"] for r in Dataset("shared", store).rows()] == ["c0", "c1"]
    assert refused._value.get() == before + 1
