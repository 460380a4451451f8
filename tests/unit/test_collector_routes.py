"""The collector's routes on a worker's web port: there by default, gone when switched off."""

from __future__ import annotations

from pathlib import Path

import faust

from weave_stream.config import load_settings
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
