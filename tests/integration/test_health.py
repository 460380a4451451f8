"""A crashed agent or a crash-looping topology child is never silent.

Both failures of issue 17, on the real embedded broker: the ingest agent dying on a
producer the broker refuses (here forced with ``idempotent_producer=on``: the embedded
broker has no idempotent producer), and a topology child that cannot load its op.
Each turns ``/readyz`` false with the reason, shows in ``weave-stream status`` and
``topologies`` with its last error, and counts in the failure metric the alerting
rules watch. A new registration restarts the child at once.
"""

from __future__ import annotations

import asyncio
import json
from collections.abc import Callable
from typing import Any

from tests.support.cli import weave_stream
from tests.support.records import produce_calls
from tests.support.waiting import wait_until
from weave_stream.config import Settings
from weave_stream.demo.samples import corpus_documents, sample_calls
from weave_stream.runners.workers import WorkerProcess
from weave_stream.topology.registrations import Registration, register

BROKEN = """\
name: broken
source: {op_name: text-extract}
columns:
  - name: n
    op: nowhere_to_be_found_ops:length
    args: {text: inputs.document}
"""
FIXED = BROKEN.replace("nowhere_to_be_found_ops:length", "weave_stream.ops.resolve:_example_length")


def test_a_crashed_agent_and_a_crash_looping_child_fail_readyz_status_and_metrics(
    make_settings: Callable[..., Settings], start_worker: Callable[..., WorkerProcess]
) -> None:
    settings = make_settings(idempotent_producer="on", shutdown_timeout_seconds=5)
    worker = start_worker(settings)
    flags = ["--broker", settings.broker or "", "--prefix", settings.topic_prefix]
    produce_calls(settings, sample_calls(corpus_documents("english", ["movies"]))[:5])

    def ingest_failed() -> dict[str, Any] | None:
        status, body = worker.readiness()
        return body if status == 503 and "ingest" in body["failures"] else None

    body = wait_until(ingest_failed, 120, "/readyz to fail for the crashed ingest agent")
    reason = body["failures"]["ingest"]
    assert "refused the idempotent producer" in reason and "idempotent_producer=auto" in reason
    assert worker.metrics()['weave_stream_component_failures_total{component="ingest"}'] >= 1
    assert worker.metrics()['weave_stream_component_failed{component="ingest"}'] == 1

    # A topology whose op module no worker has (written straight to the registry:
    # `register` would refuse it) crash-loops, visibly.
    asyncio.run(register(settings, Registration.create("broken", BROKEN, "yaml", "v1")))

    def child_failed() -> dict[str, Any] | None:
        component = worker.readiness()[1]["components"].get("topology/broken", {})
        return component if component.get("state") == "failed" else None

    child = wait_until(child_failed, 120, "the crash-looping child to fail /readyz")
    assert "exited with status 1" in child["last_error"]
    assert "nowhere_to_be_found_ops" in child["last_error"]

    # `status` reads what the worker last published (on a change, within PUBLISH_SECONDS).
    def status_agents() -> tuple[int, dict[str, dict[str, Any]]]:
        status = weave_stream("status", "--format", "json", *flags)
        rows = json.loads(status.stdout)["agents"] if status.stdout else []
        return status.returncode, {row["agent"]: row for row in rows}

    code, agents = wait_until(
        status_agents,
        60,
        "`status` to show the crash-looping child failed",
        until=lambda found: found[1].get("topology/broken", {}).get("state") == "failed",
    )
    assert code == 1
    assert agents["ingest"]["state"] == "failed"
    assert "refused the idempotent producer" in agents["ingest"]["last_error"]
    assert agents["topology/broken"]["state"] == "failed"
    assert "nowhere_to_be_found_ops" in agents["topology/broken"]["last_error"]
    listed = weave_stream("topologies", "--format", "json", *flags)
    [row] = json.loads(listed.stdout)
    assert row["state"] == "failed" and "nowhere_to_be_found_ops" in row["last_error"]

    # Registering a fixed version starts its child at once (the crash loop's backoff is
    # for the version that crashed; see RestartPolicy), and it runs.
    asyncio.run(register(settings, Registration.create("broken", FIXED, "yaml", "v2")))

    def child_ok() -> bool:
        component = worker.readiness()[1]["components"].get("topology/broken", {})
        return component.get("state") == "ok"

    wait_until(child_ok, 90, "the re-registered child to run")
    assert worker.metrics()['weave_stream_component_failed{component="topology/broken"}'] == 0

    # The hang (minutes at "[^---Fetcher]: Stopping..." once the ingest agent had
    # crashed) is bounded: SIGTERM stops the worker within its 5 s bound, children too.
    assert worker.stop(timeout=60) in (0, 1), "killed: SIGTERM did not stop it"
    assert "SIGTERM: stopping" in worker.log_tail(200)
