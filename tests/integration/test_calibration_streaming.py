"""A classify column with ``calibration: {first_n: 10}`` in a worker: uncalibrated values and a
waiting component until the store holds 10 calls, then the calibrated op, whose ref is the
local runner's over the same calls, from a sample kept in the store folder."""

from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path

import yaml

from tests.support.corpora import texts
from tests.support.records import produce_calls
from tests.support.topologies import covers, register_file, wait_for_values
from tests.support.waiting import wait_until
from weave_stream.config import Settings
from weave_stream.ops import Classify
from weave_stream.runners.local import run_local
from weave_stream.runners.workers import WorkerProcess
from weave_stream.topology.loader import load_topology

LABELS = {"chat": "small talk with a chatbot", "news": "a news report"}
START = 1795662000


def test_a_first_n_column_waits_for_its_calls_then_calibrates_on_them(
    tmp_path: Path,
    make_settings: Callable[..., Settings],
    start_worker: Callable[..., WorkerProcess],
) -> None:
    spec = {
        "name": "asking",
        "source": {"op_name": "ask"},
        "columns": [
            {
                "name": "kind",
                "op": "classify",
                "args": {"text": "inputs.question"},
                "params": {"labels": LABELS, "calibration": {"first_n": 10}},
            }
        ],
    }
    path = tmp_path / "asking.yaml"
    path.write_text(yaml.safe_dump(spec))
    chat, news = texts("chat").texts[:9], texts("news").texts[:9]
    mixed = [text for pair in zip(chat, news, strict=True) for text in pair]  # 18 calls
    calls = [
        {"id": f"q{i:02d}", "op_name": "ask", "started_at": START + i, "ended_at": START + i + 1,
         "inputs": {"question": text}}
        for i, text in enumerate(mixed)
    ]  # fmt: skip
    settings = make_settings()
    worker = start_worker(settings)
    register_file(settings, path)

    produce_calls(settings, calls[:6])
    uncalibrated = Classify(labels=LABELS).ref
    wait_for_values(settings, "asking", ["kind"], covers(calls[:6], ["kind"], uncalibrated))
    component = "topology/asking/calibration/kind"
    wait_until(
        lambda: worker.readiness()[1]["components"].get(component, {}),
        60,
        f"{component} waiting with 6 of 10 calls stored",
        until=lambda state: (
            "calibrating classify column kind: 6 of 10 calls stored" in (state.get("detail") or "")
        ),
    )

    produce_calls(settings, calls[6:14])
    wait_until(
        lambda: worker.readiness()[1]["components"].get(component, {}),
        60,
        f"{component} ok once 10 calls are stored",
        until=lambda state: state.get("state") == "ok",
    )
    expected = run_local(load_topology(path), calls[:14]).values[0].op_ref
    assert expected != uncalibrated
    produce_calls(settings, calls[14:])
    values = wait_for_values(settings, "asking", ["kind"], covers(calls[14:], ["kind"], expected))
    first_six = {c["id"] for c in calls[:6]}
    assert uncalibrated in {v.op_ref for v in values if v.call_id in first_six}
    kept = Path(settings.store_location) / "calibrations" / "asking" / "kind.json"
    assert json.loads(kept.read_text())["call_ids"] == [f"q{i:02d}" for i in range(10)]
