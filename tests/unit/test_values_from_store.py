"""derived_values and `weave-stream values` read the call store when store_url is set:
the same frame as the run's values with their calls' ids, no broker needed."""

from __future__ import annotations

from typing import Any

import orjson
import pandas as pd
import pytest
from click.testing import CliRunner

from tests.support.store_data import START, TOPOLOGY, trace_calls
from weave_stream import derived_values
from weave_stream.cli.main import cli
from weave_stream.columns.values import CALL_ID_FIELDS, values_frame
from weave_stream.config import Settings
from weave_stream.errors import TopologyError
from weave_stream.runners.local import run_local


@pytest.fixture(scope="module")
def world(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Any]:
    folder = tmp_path_factory.mktemp("store")
    records = trace_calls(30)
    result = run_local(TOPOLOGY, records, store=folder)
    fields = {r["id"]: {name: r.get(name) for name in CALL_ID_FIELDS} for r in records}
    data = tmp_path_factory.mktemp("data")
    # No broker anywhere: reading the store must not look for one.
    settings = Settings(store_url=str(folder), data_dir=data, state_file=data / "running.json")
    return {"settings": settings, "values": result.values, "fields": fields, "folder": folder}


def test_the_frame_is_the_runs_values_with_their_calls_ids(world: dict[str, Any]) -> None:
    got = derived_values("support", settings=world["settings"])
    want = values_frame(world["values"], world["fields"])
    assert len(got) == 3 * 30 and got["op_name"].notna().all()
    pd.testing.assert_frame_equal(got, want)
    words = derived_values("support", column="words", settings=world["settings"])
    only = [v for v in world["values"] if v.column == "words"]
    pd.testing.assert_frame_equal(words, values_frame(only, world["fields"]))


def test_since_keeps_the_calls_started_from_then_on(world: dict[str, Any]) -> None:
    since = START + pd.Timedelta(hours=12)
    got = derived_values("support", since=since.isoformat(), settings=world["settings"])
    want = values_frame([v for v in world["values"] if v.started_at >= since], world["fields"])
    assert 0 < len(got) < 3 * 30
    pd.testing.assert_frame_equal(got, want)


def test_the_values_command_reads_the_store_without_a_broker(world: dict[str, Any]) -> None:
    settings = world["settings"]
    env = {
        "WEAVE_STREAM_DATA_DIR": str(settings.data_dir),
        "WEAVE_STREAM_STATE_FILE": str(settings.state_file),
    }
    args = ["values", "support", "--column", "quality", "--format", "json"]
    answer = CliRunner().invoke(cli, [*args, "--store-url", str(world["folder"])], env=env)
    assert answer.exit_code == 0, answer.output
    rows = orjson.loads(answer.output)
    quality = [v for v in world["values"] if v.column == "quality"]
    assert {row["call_id"]: (row["value"], row["error"]) for row in rows} == {
        v.call_id: (v.value, v.error) for v in quality
    }
    assert any(row["error"] for row in rows), "the judge fails on some documents"
    assert all(row["op_name"] == world["fields"][row["call_id"]]["op_name"] for row in rows)


def test_an_unknown_topology_or_column_names_the_known_ones(world: dict[str, Any]) -> None:
    with pytest.raises(TopologyError, match=r"topology 'nope'.*topologies with values: support"):
        derived_values("nope", settings=world["settings"])
    with pytest.raises(TopologyError, match=r"column 'size'.*quality, topic, words"):
        derived_values("support", column="size", settings=world["settings"])
