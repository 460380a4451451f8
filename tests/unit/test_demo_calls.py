"""``weave-stream demo --write-calls FILE``: the demo's calls as a file, for the local
runner, ``plan``, ``ingest`` and ``aggregates --input``, with nothing started."""

from __future__ import annotations

from pathlib import Path

import orjson
from click.testing import CliRunner

from weave_stream.cli.main import cli
from weave_stream.ingest.files import read_call_file


def test_write_calls_gives_a_call_file_the_readers_take_with_the_demos_shift(
    tmp_path: Path,
) -> None:
    out = tmp_path / "calls.jsonl"
    answer = CliRunner().invoke(cli, ["demo", "--write-calls", str(out), "--calls", "40"])
    assert answer.exit_code == 0, answer.output
    assert f"wrote 40 calls to {out}" in answer.output
    calls, dead_letters = read_call_file(out)
    assert not dead_letters
    assert len(calls) == 40 and len({c.id for c in calls}) == 40
    assert all(c.op_name == "text-extract" and c.ended_at is not None for c in calls)
    languages = [
        orjson.loads(line)["attributes"]["language"] for line in out.read_text().splitlines()
    ]
    assert languages == ["english"] * 30 + ["japanese"] * 10  # the demo's shift at 3/4
    assert not (tmp_path / "demo-output").exists()  # nothing else was run
