"""The embedded broker: ready when it answers metadata, stopped cleanly, never orphaned."""

from __future__ import annotations

import signal
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

from tests.support.processes import alive, wait_gone
from weave_stream.broker.embedded import EmbeddedBroker, wait_for_broker
from weave_stream.errors import BrokerError


def test_broker_answers_metadata_keeps_a_log_and_stops_cleanly(tmp_path: Path) -> None:
    log = tmp_path / "broker.log"
    broker = EmbeddedBroker(log_path=log).start()
    pid = broker.pid
    assert pid is not None and broker.url.startswith("kafka://127.0.0.1:")
    wait_for_broker(broker.address, timeout=5)
    assert "tansu" in log.read_text().lower()
    broker.stop()
    wait_gone(pid, what="the stopped broker")
    with pytest.raises(BrokerError, match="no Kafka metadata answer"):
        wait_for_broker(broker.address, timeout=1)


def test_broker_dies_with_the_process_that_started_it(tmp_path: Path) -> None:
    script = textwrap.dedent(
        f"""
        import sys, time
        from weave_stream.broker.embedded import EmbeddedBroker
        broker = EmbeddedBroker(log_path={str(tmp_path / "b.log")!r}).start()
        print(broker.pid, flush=True)
        time.sleep(600)
        """
    )
    parent = subprocess.Popen([sys.executable, "-c", script], stdout=subprocess.PIPE, text=True)
    assert parent.stdout is not None
    broker_pid = int(parent.stdout.readline())
    assert alive(broker_pid)
    parent.send_signal(signal.SIGKILL)
    parent.wait()
    wait_gone(broker_pid, what="the broker, whose parent was killed")


def test_session_broker_fixture_serves_the_tests(broker: EmbeddedBroker) -> None:
    wait_for_broker(broker.address, timeout=5)
    assert broker.pid is not None and alive(broker.pid)
