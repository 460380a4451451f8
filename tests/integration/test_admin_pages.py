"""The worker's HTTP endpoints that change state: token-guarded register and unregister.

Real worker processes on the embedded broker; requests over loopback HTTP. Reading
needs no token; registering and unregistering need ``Authorization: Bearer <token>``,
and are refused outright on a worker without a configured token.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from pathlib import Path

import httpx
import pytest
import yaml

from tests.support.metrics import wait_for_metric
from weave_stream.config import Settings
from weave_stream.runners.workers import WorkerProcess
from weave_stream.topology.registrations import read_registry, registration_for

TOKEN = "s3cret-token-for-tests"
SPEC = {
    "name": "http_topology",
    "source": {"op_name": "text-extract"},
    "columns": [
        {
            "name": "doc_class",
            "op": "classify",
            "params": {"labels": ["money", "food"]},
            "args": {"text": "inputs.document"},
        }
    ],
}
BODY = yaml.safe_dump(SPEC)


def registered(settings: Settings) -> dict[str, str]:
    return {name: r.version for name, r in asyncio.run(read_registry(settings)).items()}


def test_registering_and_unregistering_need_the_token(
    make_settings: Callable[..., Settings],
    start_worker: Callable[..., WorkerProcess],
    tmp_path: Path,
) -> None:
    settings = make_settings(api_token=TOKEN)
    worker = start_worker(settings)
    url = f"{worker.url}/topologies/http_topology"
    bearer = {"Authorization": f"Bearer {TOKEN}"}

    listing = httpx.get(f"{worker.url}/topologies")
    assert listing.status_code == 200 and listing.json() == []

    missing = httpx.post(url, content=BODY)
    assert missing.status_code == 401
    assert missing.headers["WWW-Authenticate"].startswith("Bearer")
    assert "Authorization: Bearer" in missing.json()["error"]
    wrong = httpx.post(url, content=BODY, headers={"Authorization": f"Bearer {TOKEN}x"})
    assert wrong.status_code == 403
    not_bearer = httpx.post(url, content=BODY, headers={"Authorization": f"Basic {TOKEN}"})
    assert not_bearer.status_code == 401
    assert registered(settings) == {}

    created = httpx.post(url, content=BODY, headers=bearer)
    assert created.status_code == 201, created.text
    spec_file = tmp_path / "http_topology.yaml"
    spec_file.write_text(BODY)
    _, cli_registration = registration_for(str(spec_file), settings)
    assert created.json()["version"] == cli_registration.version  # as `weave-stream register`
    assert set(created.json()["columns"]) == {"doc_class"}
    assert registered(settings) == {"http_topology": cli_registration.version}
    entry = asyncio.run(read_registry(settings))["http_topology"]
    assert entry.registered_by == "http:127.0.0.1"
    listed = httpx.get(f"{worker.url}/topologies").json()
    assert [(t["name"], t["version"]) for t in listed] == [
        ("http_topology", cli_registration.version)
    ]
    # The worker's supervisor follows the registry: the topology is now running.
    running = 'weave_stream_topology_registered{topology="http_topology"}'
    wait_for_metric(worker, running, lambda value: value == 1, timeout=30)

    assert httpx.delete(url).status_code == 401
    assert httpx.delete(url, headers={"Authorization": "Bearer nope"}).status_code == 403
    assert registered(settings) == {"http_topology": cli_registration.version}
    unknown = httpx.delete(f"{worker.url}/topologies/other", headers=bearer)
    assert unknown.status_code == 404 and "http_topology" in unknown.json()["error"]
    deleted = httpx.delete(url, headers=bearer)
    assert deleted.status_code == 200 and deleted.json()["unregistered"] is True
    assert registered(settings) == {}


def test_invalid_topologies_are_refused_with_the_loaders_message(
    make_settings: Callable[..., Settings], start_worker: Callable[..., WorkerProcess]
) -> None:
    settings = make_settings(api_token=TOKEN)
    worker = start_worker(settings)
    bearer = {"Authorization": f"Bearer {TOKEN}"}
    base = f"{worker.url}/topologies"

    renamed = httpx.post(f"{base}/elsewhere", content=BODY, headers=bearer)
    assert renamed.status_code == 422
    assert "http_topology" in renamed.json()["error"] and "elsewhere" in renamed.json()["error"]
    broken = httpx.post(f"{base}/http_topology", content="name: [unclosed", headers=bearer)
    assert broken.status_code == 422 and "YAML" in broken.json()["error"]
    bad_op = yaml.safe_dump({**SPEC, "columns": [{**SPEC["columns"][0], "op": "clasify"}]})
    typo = httpx.post(f"{base}/http_topology", content=bad_op, headers=bearer)
    assert typo.status_code == 422 and "clasify" in typo.json()["error"]
    bad_name = httpx.post(f"{base}/-dash", content=BODY, headers=bearer)
    assert bad_name.status_code == 400
    assert registered(settings) == {}


@pytest.mark.parametrize("token", [None, ""], ids=["unset", "empty"])
def test_a_worker_without_a_token_refuses_every_change_but_still_reads(
    make_settings: Callable[..., Settings],
    start_worker: Callable[..., WorkerProcess],
    token: str | None,
) -> None:
    # An empty token (docker compose's ${WEAVE_STREAM_API_TOKEN:-}) is no token.
    settings = make_settings(api_token=token)
    worker = start_worker(settings)
    url = f"{worker.url}/topologies/http_topology"
    for headers in ({}, {"Authorization": "Bearer anything"}, {"Authorization": "Bearer"}):
        refused = httpx.post(url, content=BODY, headers=headers)
        assert refused.status_code == 403
        assert "WEAVE_STREAM_API_TOKEN" in refused.json()["error"]
        assert httpx.delete(url, headers=headers).status_code == 403
    assert registered(settings) == {}
    assert httpx.get(f"{worker.url}/topologies").status_code == 200
    assert httpx.get(f"{worker.url}/healthz").json() == {"status": "alive"}
