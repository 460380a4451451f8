"""A real Prometheus server scrapes a real worker: PromQL answers what the worker did.

Prometheus comes from Debian's ``prometheus`` package (``make test`` installs it); it
runs on loopback with a temporary config and storage, scraping every second, with the
alerting rules of ``alerts/`` loaded. A missing Prometheus fails these tests.
"""

from __future__ import annotations

import shutil
import subprocess
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
import yaml

from tests.support.records import produce_calls, produce_records
from tests.support.topologies import WORDY, documents, register_file
from tests.support.waiting import wait_until
from weave_stream.broker.embedded import die_with_parent, free_port
from weave_stream.config import Settings
from weave_stream.dashboard.build import build_dashboard
from weave_stream.demo.samples import malformed_records
from weave_stream.runners.workers import WorkerProcess
from weave_stream.topology.loader import load_topology

ROOT = Path(__file__).resolve().parents[2]


class Prometheus:
    """A Prometheus server on loopback scraping ``targets`` every second."""

    def __init__(self, folder: Path, targets: list[str]) -> None:
        executable = shutil.which("prometheus") or "/usr/bin/prometheus"
        if not Path(executable).exists():
            pytest.fail("prometheus is missing: install Debian's prometheus package")
        self.url = f"http://127.0.0.1:{free_port()}"
        config = {
            "global": {
                "scrape_interval": "1s",
                "scrape_timeout": "1s",
                "evaluation_interval": "1s",
            },
            "rule_files": [str(path) for path in sorted((ROOT / "alerts").glob("*.yml"))],
            "scrape_configs": [
                {"job_name": "weave-stream", "static_configs": [{"targets": targets}]}
            ],
        }
        (folder / "prometheus.yml").write_text(yaml.safe_dump(config))
        self.log = folder / "prometheus.log"
        with open(self.log, "wb") as log:
            self.process = subprocess.Popen(
                [
                    executable,
                    f"--config.file={folder / 'prometheus.yml'}",
                    f"--storage.tsdb.path={folder / 'data'}",
                    f"--web.listen-address={self.url.removeprefix('http://')}",
                ],
                stdout=log,
                stderr=subprocess.STDOUT,
                preexec_fn=die_with_parent,
            )

    def wait_ready(self, timeout: float = 30.0) -> None:
        def ready() -> int:
            if self.process.poll() is not None:
                raise AssertionError(f"prometheus exited:\n{self.log.read_text()[-3000:]}")
            return httpx.get(f"{self.url}/-/ready", timeout=1).status_code

        try:
            wait_until(
                ready,
                timeout,
                "prometheus to answer /-/ready with 200",
                until=lambda status: status == 200,
                interval=0.2,
                ignore=(httpx.TransportError,),
            )
        except AssertionError as failure:
            if self.process.poll() is not None:
                raise  # it exited: the failure shows its log already
            raise AssertionError(f"{failure}:\n{self.log.read_text()[-3000:]}") from None

    def query(self, promql: str) -> list[dict[str, Any]]:
        answer = httpx.get(f"{self.url}/api/v1/query", params={"query": promql}, timeout=5).json()
        assert answer["status"] == "success", (promql, answer)
        return list(answer["data"]["result"])

    def value(self, promql: str) -> float | None:
        result = self.query(promql)
        return float(result[0]["value"][1]) if len(result) == 1 else None

    def wait_for(self, promql: str, expected: float, timeout: float = 60.0) -> None:
        wait_until(
            lambda: self.value(promql),
            timeout,
            f"{promql} to be {expected}",
            until=lambda value: value == expected,
            interval=0.5,
        )

    def stop(self) -> None:
        self.process.terminate()
        try:
            self.process.wait(20)
        except subprocess.TimeoutExpired:
            self.process.kill()
            self.process.wait()


@pytest.fixture
def prometheus(tmp_path: Path) -> Iterator[Callable[[WorkerProcess], Prometheus]]:
    started: list[Prometheus] = []

    def start(worker: WorkerProcess) -> Prometheus:
        target = worker.url.removeprefix("http://")
        server = Prometheus(tmp_path, [target])
        started.append(server)
        server.wait_ready()
        return server

    yield start
    for server in started:
        server.stop()


def test_promql_counts_the_calls_a_worker_ingested_and_its_topology_read(
    make_settings: Callable[..., Settings],
    start_worker: Callable[..., WorkerProcess],
    prometheus: Callable[[WorkerProcess], Prometheus],
) -> None:
    settings = make_settings()
    worker = start_worker(settings)
    server = prometheus(worker)
    server.wait_for('up{job="weave-stream"}', 1)
    register_file(settings, WORDY)
    server.wait_for('weave_stream_topology_registered{topology="wordy"}', 1)
    # The topology worker starts from the calls registered after it: wait until it runs.
    server.wait_for('sum(weave_stream_topology_info{topology="wordy"})', 1)

    calls = documents(["food", "money", "history"], "prometheus")
    bad = malformed_records(settings.max_payload_bytes)
    produce_calls(settings, calls)
    produce_records(settings, [(None, raw) for _, raw in bad])

    server.wait_for(
        'sum(weave_stream_ingest_records_total{outcome="valid"})', len(calls), timeout=90
    )
    # The bad records were produced last: the scrape that shows them may come later.
    server.wait_for("sum(weave_stream_ingest_records_total)", len(calls) + len(bad), timeout=60)
    assert server.value("sum(weave_stream_dead_letters_total)") == len(bad)
    reasons = {row["metric"]["reason"] for row in server.query("weave_stream_dead_letters_total")}
    assert reasons == {reason for reason, _ in bad}
    # The topology worker's metrics reach Prometheus through the worker's /metrics.
    server.wait_for('sum(weave_stream_topology_calls_total{topology="wordy"})', len(calls))
    server.wait_for(
        'sum(weave_stream_derived_values_written_total{topology="wordy", column="words"})',
        len(calls),
    )
    op_refs = server.query('weave_stream_column_info{topology="wordy"}')
    assert {row["metric"]["column"] for row in op_refs} == {"words", "size"}
    # Lag drains to zero, for the ingest group and for the topology's own group.
    prefix = settings.topic_prefix
    server.wait_for(
        f'sum(weave_stream_consumer_lag{{group="weave-stream.{prefix}", topic="{prefix}.calls"}})',
        0,
    )
    server.wait_for(
        f'sum(weave_stream_consumer_lag{{group="weave-stream.{prefix}.topology.wordy",'
        f' topic="{prefix}.calls.valid"}})',
        0,
    )


def test_the_alerting_rules_and_dashboard_queries_evaluate_on_a_live_worker(
    make_settings: Callable[..., Settings],
    start_worker: Callable[..., WorkerProcess],
    prometheus: Callable[[WorkerProcess], Prometheus],
) -> None:
    settings = make_settings()
    worker = start_worker(settings)
    server = prometheus(worker)
    register_file(settings, WORDY)
    server.wait_for('sum(weave_stream_topology_info{topology="wordy"})', 1)
    calls = documents(["science"], "rules")
    produce_calls(settings, calls)
    server.wait_for(
        'sum(weave_stream_derived_values_written_total{topology="wordy", column="words"})',
        len(calls),
    )

    # Every rule of alerts/ has been evaluated against the real series without error
    # (a many-to-many match or a bad label join would show here, not in promtool).
    def unhealthy(groups: list[dict[str, Any]]) -> list[tuple[str, str, str]]:
        return [
            (rule["name"], rule["health"], rule.get("lastError", ""))
            for group in groups
            for rule in group["rules"]
            if rule["health"] != "ok"
        ]

    groups = wait_until(
        lambda: httpx.get(f"{server.url}/api/v1/rules", timeout=5).json()["data"]["groups"],
        60,
        "every alerting rule evaluated without error",
        until=lambda groups: any(g["rules"] for g in groups) and not unhealthy(groups),
        interval=0.5,
        describe=lambda groups: unhealthy(groups) or "no rules loaded",
    )
    assert {group["file"] for group in groups} == {
        str(path) for path in (ROOT / "alerts").glob("*.yml")
    }

    # Every query of the topology's dashboard is valid PromQL for this Prometheus.
    board = build_dashboard(load_topology(WORDY, settings), default_prefix=settings.topic_prefix)
    values = {"$__rate_interval": "1m", "$prefix": settings.topic_prefix}
    for panel in board["panels"]:
        for target in panel.get("targets", []):
            expr = target["expr"]
            for variable, value in values.items():
                expr = expr.replace(variable, value)
            server.query(expr)  # asserts status "success"
