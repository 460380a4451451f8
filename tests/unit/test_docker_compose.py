"""docker/: the compose stack is coherent, checked without a Docker engine.

Images are pinned, commands are real ``weave-stream`` commands, every environment
variable is a real setting (and the workers' settings validate), every mounted file
exists, and the services point at each other on the right names and ports: workers
at Kafka, Prometheus at the workers, its rules and Alertmanager, Grafana at
Prometheus and the provisioned dashboards.
"""

from __future__ import annotations

import json
import re
import subprocess
from pathlib import Path, PurePosixPath
from typing import Any

import pytest
import yaml

from tests.support.promql import promtool
from weave_stream.cli.main import cli
from weave_stream.config import ENV_PREFIX, Settings, load_settings

DOCKER = Path(__file__).resolve().parents[2] / "docker"
ROOT = DOCKER.parent
COMPOSE = yaml.safe_load((DOCKER / "docker-compose.yml").read_text())
SERVICES: dict[str, dict[str, Any]] = COMPOSE["services"]
WORKERS = sorted(name for name in SERVICES if name.startswith("worker"))
_INTERPOLATION = re.compile(r"\$\{(?P<name>\w+)(?::?-(?P<default>[^}]*))?\}")


def interpolate(value: Any) -> str:
    """What compose substitutes for ``${VAR:-default}`` when VAR is unset."""
    return _INTERPOLATION.sub(lambda m: m.group("default") or "", str(value))


def environment(service: str) -> dict[str, str]:
    env = SERVICES[service].get("environment") or {}
    if isinstance(env, list):
        env = dict(item.split("=", 1) for item in env)
    return {key: interpolate(value) for key, value in env.items()}


def mounts(service: str) -> dict[str, str]:
    """``{container path: source}`` of a service's volumes."""
    found = {}
    for volume in SERVICES[service].get("volumes", []):
        source, target = volume.split(":")[:2]
        found[target] = source
    return found


def host_path(service: str, container_path: str) -> Path:
    """The host file behind ``container_path`` through one of the service's bind mounts."""
    wanted = PurePosixPath(container_path)
    for target, source in mounts(service).items():
        if wanted == PurePosixPath(target) or PurePosixPath(target) in wanted.parents:
            assert source.startswith("."), f"{container_path} is in a named volume"
            return (DOCKER / source / wanted.relative_to(target)).resolve()
    raise AssertionError(f"{service}: nothing is mounted at {container_path}")


def flag(service: str, name: str) -> str:
    for argument in SERVICES[service]["command"]:
        if argument.startswith(f"--{name}="):
            return str(argument.split("=", 1)[1])
    raise AssertionError(f"{service}: no --{name}")


def dockerfile_instructions() -> list[tuple[str, str]]:
    text = (DOCKER / "Dockerfile").read_text().replace("\\\n", " ")
    lines = [line.strip() for line in text.splitlines()]
    return [
        (line.split(None, 1)[0].upper(), line.split(None, 1)[1])
        for line in lines
        if line and not line.startswith("#")
    ]


def test_the_stack_has_kafka_two_workers_prometheus_alertmanager_and_grafana() -> None:
    assert set(SERVICES) == {"kafka", *WORKERS, "prometheus", "alertmanager", "grafana"}
    assert len(WORKERS) == 2


@pytest.mark.parametrize(
    ("service", "image"),
    [
        ("kafka", "apache/kafka"),
        ("prometheus", "prom/prometheus"),
        ("alertmanager", "prom/alertmanager"),
        ("grafana", "grafana/grafana"),
    ],
)
def test_third_party_images_are_the_official_ones_at_a_pinned_version(
    service: str, image: str
) -> None:
    name, _, tag = SERVICES[service]["image"].partition(":")
    assert name == image
    assert re.fullmatch(r"v?\d+\.\d+\.\d+", tag), f"{service}: pin a version, not {tag!r}"


def test_workers_are_built_from_the_dockerfile_and_run_the_worker_command() -> None:
    instructions = dockerfile_instructions()
    entrypoint = [json.loads(args) for kind, args in instructions if kind == "ENTRYPOINT"]
    assert entrypoint == [["weave-stream"]]
    for kind, args in instructions:
        if kind == "COPY":
            for source in args.split()[:-1]:
                assert (ROOT / source).exists(), f"Dockerfile copies missing {source}"
    for worker in WORKERS:
        build = SERVICES[worker]["build"]
        assert (DOCKER / build["context"] / build["dockerfile"]).resolve() == DOCKER / "Dockerfile"
        command = SERVICES[worker]["command"]
        assert command[0] in cli.commands, f"{worker}: no weave-stream command {command[0]!r}"
        assert SERVICES[worker]["depends_on"]["kafka"]["condition"] == "service_healthy"


def test_every_weave_stream_variable_is_a_setting_and_the_worker_settings_validate() -> None:
    fields = set(Settings.model_fields)
    dockerfile_env = {
        match.group(1): match.group(2)
        for kind, args in dockerfile_instructions()
        if kind == "ENV"
        for match in re.finditer(r"(WEAVE_STREAM_\w+)=(\S+)", args)
    }
    ids = set()
    for worker in WORKERS:
        env = {**dockerfile_env, **environment(worker)}
        names = {key for key in env if key.startswith(ENV_PREFIX)}
        unknown = {n for n in names if n.removeprefix(ENV_PREFIX).lower() not in fields}
        assert unknown == set(), f"{worker}: not settings: {sorted(unknown)}"
        settings = load_settings(env=env)
        assert settings.broker_kind == "kafka" and settings.store == "rocksdb://"
        assert settings.web_host == "0.0.0.0"
        ids.add(settings.worker_id)
    assert len(ids) == len(WORKERS)


def test_workers_reach_kafka_on_a_listener_it_advertises_under_its_service_name() -> None:
    kafka = environment("kafka")
    roles = set(kafka["KAFKA_PROCESS_ROLES"].split(","))
    assert roles == {"broker", "controller"}, "one KRaft node is both broker and controller"
    assert not any(key.startswith("KAFKA_ZOOKEEPER") for key in kafka)
    voters = kafka["KAFKA_CONTROLLER_QUORUM_VOTERS"]
    assert voters.startswith(f"{kafka['KAFKA_NODE_ID']}@kafka:")
    advertised = dict(
        reversed(entry.split("://", 1)) for entry in kafka["KAFKA_ADVERTISED_LISTENERS"].split(",")
    )
    for worker in WORKERS:
        broker = load_settings(env=environment(worker)).broker_address
        assert broker in advertised, f"{worker} uses {broker}; Kafka advertises {advertised}"
    # The host listener is published, so `weave-stream ingest --broker` works from the host.
    host = next(address for address in advertised if address.startswith("localhost:"))
    assert f"{host.split(':')[1]}:{host.split(':')[1]}" in SERVICES["kafka"]["ports"]


def test_every_bind_mounted_file_exists_and_every_named_volume_is_declared() -> None:
    declared = set(COMPOSE.get("volumes") or {})
    for service in SERVICES:
        for source in mounts(service).values():
            if source.startswith("."):
                assert (DOCKER / source).exists(), f"{service} mounts missing {source}"
            else:
                assert source in declared, f"{service}: volume {source} is not declared"


def test_published_ports_do_not_collide_and_workers_publish_their_web_port() -> None:
    published = [port.split(":")[0] for s in SERVICES.values() for port in s.get("ports", [])]
    assert len(published) == len(set(published))
    for worker in WORKERS:
        web_port = str(load_settings(env=environment(worker)).web_port)
        assert any(port.endswith(f":{web_port}") for port in SERVICES[worker]["ports"])


def test_prometheus_scrapes_the_workers_loads_the_rules_and_sends_to_alertmanager(
    tmp_path: Path,
) -> None:
    config_path = host_path("prometheus", flag("prometheus", "config.file"))
    config = yaml.safe_load(config_path.read_text())
    (job,) = [j for j in config["scrape_configs"] if j["job_name"].startswith("weave-stream")]
    targets = {t for group in job["static_configs"] for t in group["targets"]}
    assert targets == {
        f"{worker}:{load_settings(env=environment(worker)).web_port}" for worker in WORKERS
    }
    (rule_glob,) = config["rule_files"]
    rules_dir = host_path("prometheus", str(PurePosixPath(rule_glob).parent))
    loaded = sorted(rules_dir.glob(PurePosixPath(rule_glob).name))
    assert loaded == sorted((ROOT / "alerts").glob("*.yml")) and loaded
    (manager,) = [t for am in config["alerting"]["alertmanagers"] for s in am["static_configs"]
                  for t in s["targets"]]  # fmt: skip
    service, port = manager.split(":")
    assert service in SERVICES and any(p.endswith(f":{port}") for p in SERVICES[service]["ports"])
    # promtool checks the whole config, rules included, with the rules at their host path.
    local = tmp_path / "prometheus.yml"
    local.write_text(yaml.safe_dump({**config, "rule_files": [str(p) for p in loaded]}))
    result = subprocess.run(
        [promtool(), "check", "config", str(local)], capture_output=True, text=True, check=False
    )
    assert result.returncode == 0, result.stdout + result.stderr


def test_alertmanager_routes_to_a_declared_receiver_and_critical_inhibits_warning() -> None:
    path = host_path("alertmanager", flag("alertmanager", "config.file"))
    config = yaml.safe_load(path.read_text())
    receivers = {receiver["name"] for receiver in config["receivers"]}
    routes = [config["route"], *config["route"].get("routes", [])]
    assert all(route["receiver"] in receivers for route in routes)
    (inhibit,) = config["inhibit_rules"]
    assert inhibit["source_matchers"] == ['severity="critical"']
    assert inhibit["target_matchers"] == ['severity="warning"']
    assert "alertname" in inhibit["equal"]


def test_grafana_reads_prometheus_and_provisions_the_generated_dashboards() -> None:
    (datasource,) = yaml.safe_load(
        host_path("grafana", "/etc/grafana/provisioning/datasources/prometheus.yml").read_text()
    )["datasources"]
    assert datasource["type"] == "prometheus" and datasource["isDefault"]
    assert datasource["url"] == "http://prometheus:9090"
    assert any(p.endswith(":9090") for p in SERVICES["prometheus"]["ports"])
    (provider,) = yaml.safe_load(
        host_path("grafana", "/etc/grafana/provisioning/dashboards/weave-stream.yml").read_text()
    )["providers"]
    folder = host_path("grafana", provider["options"]["path"])
    assert folder == DOCKER / "grafana" / "dashboards"
    boards = {path.name: json.loads(path.read_text()) for path in folder.glob("*.json")}
    assert "text_extract.json" in boards
    assert all(board["uid"].startswith("weave-stream-") for board in boards.values())
    home = environment("grafana")["GF_DASHBOARDS_DEFAULT_HOME_DASHBOARD_PATH"]
    assert host_path("grafana", home).is_file()
