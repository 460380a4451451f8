"""``weave-stream experiment FILE`` as a user runs it, against the stand-in judge."""

from __future__ import annotations

import os
import re
import subprocess
import sys
from pathlib import Path

import yaml

REPO = Path(__file__).resolve().parents[2]
PNG_MAGIC = b"\x89PNG\r\n\x1a\n"


def weave_stream(workdir: Path, *args: str) -> subprocess.CompletedProcess[str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("WEAVE_STREAM_", "OPENAI_"))}
    env.update(WEAVE_STREAM_DATA_DIR=str(workdir / "data"), HF_HUB_OFFLINE="1")
    return subprocess.run(
        [sys.executable, "-m", "weave_stream", *args],
        cwd=REPO,
        env=env,
        capture_output=True,
        text=True,
        timeout=600,
    )


def computed(stderr: str) -> dict[str, int]:
    return {
        m[0]: int(m[1]) for m in re.findall(r"variant (\w+): \d+ cells \((\d+) computed", stderr)
    }


def test_the_judge_prompts_example_runs_then_adds_only_new_trials(tmp_path: Path) -> None:
    spec = yaml.safe_load((REPO / "examples" / "judge_prompts.yaml").read_text())
    spec["data"]["corpus"].update(categories=["ai", "money", "humor"], per_category=2)
    spec["trials"] = 2
    path = tmp_path / "small.yaml"
    path.write_text(yaml.safe_dump(spec, sort_keys=False))
    out = tmp_path / "out"

    ran = weave_stream(tmp_path, "experiment", str(path), "--standin-judge", "--out", str(out))
    assert ran.returncode == 0, ran.stderr
    assert "stand-in" in ran.stderr and "not an LLM" in ran.stderr
    assert computed(ran.stderr)["stays"] == 6 * 2 * 2  # judge and why, 6 examples x 2 trials
    assert "compare covers (B) with stays (A)" in ran.stdout
    assert "paired t p =" in ran.stdout and "p_holm" in ran.stdout
    assert "failure kinds in 'why'" in ran.stdout
    pngs = sorted(out.glob("*.png"))
    assert [p.name.split(".")[-2] for p in pngs] == ["by_class", "differences", "examples"]
    assert all(p.read_bytes()[:8] == PNG_MAGIC for p in pngs)
    for table in ("cells", "summary", "comparison", "changed", "failure_kinds"):
        assert (out / f"{table}.csv").stat().st_size > 0

    planned = weave_stream(tmp_path, "experiment", str(path), "--plan", "--trials", "3")
    assert planned.returncode == 0, planned.stderr
    # Only trial 2 is priced: 6 examples x (judge + why) per variant.
    assert "Experiment 'judge-prompts': 24 cells to compute over 2 variant(s)" in planned.stdout

    more = weave_stream(
        tmp_path, "experiment", str(path), "--standin-judge", "--out", str(out), "--trials", "3"
    )
    assert more.returncode == 0, more.stderr
    counts = computed(more.stderr)
    assert counts["stays"] == 6 * 2  # only trial 2 of judge and why
    assert 6 <= counts["covers"] <= 12  # its judge trial 2; `why` cells may be shared with stays
