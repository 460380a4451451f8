"""The collector's routes on a worker's web port: there by default, gone when switched off."""

from __future__ import annotations

import asyncio
from pathlib import Path

import faust
import pytest

from weave_stream.collector.objects import read_op_code
from weave_stream.config import load_settings
from weave_stream.errors import QueryError
from weave_stream.runners.streaming.collector_pages import register_collector


def _paths(enabled: bool, tmp_path: Path) -> set[str]:
    settings = load_settings(
        env={}, broker="kafka://127.0.0.1:9", collector_on_workers=enabled, data_dir=tmp_path
    )
    app = faust.App(f"routes-{enabled}", broker="kafka://127.0.0.1:9", autodiscover=False)
    register_collector(app, settings)
    return {route.resource.canonical for route in app.web.web_app.router.routes()}


def test_workers_serve_the_write_api_unless_switched_off(tmp_path: Path) -> None:
    served = _paths(True, tmp_path)
    assert {
        "/server_info",
        "/graphql",
        "/v2/{entity}/{project}/calls/complete",
        "/v2/{entity}/{project}/call/start",
        "/call/upsert_batch",
        "/obj/create",
        "/file/create",
        "/v1/traces",
    } <= served
    assert not any(
        path.startswith(("/v1", "/v2", "/call", "/obj")) for path in _paths(False, tmp_path)
    )


def test_op_code_refuses_a_string_that_is_not_an_op_ref(tmp_path: Path) -> None:
    settings = load_settings(env={}, broker="kafka://127.0.0.1:9", data_dir=tmp_path)
    with pytest.raises(QueryError, match=r"'summarise' is not an op ref; expected weave:///"):
        asyncio.run(read_op_code(settings, "summarise"))  # refused before any broker is read
