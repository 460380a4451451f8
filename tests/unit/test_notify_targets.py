"""The targets file: Slack and webhook targets, secrets from the environment, never echoed."""

from __future__ import annotations

from datetime import UTC, datetime
from pathlib import Path

import pytest

from weave_stream.errors import ConfigError
from weave_stream.notify.alerts import Alert
from weave_stream.notify.targets import SlackTarget, WebhookTarget, load_targets

SLACK_URL = "https://hooks.slack.com/services/T000/B000/XXXXSLACKTOKENXXXX"
WEBHOOK_SECRET = "whsec-0123456789abcdef-topsecret"

TARGETS_YAML = """
call_url_template: https://wandb.ai/{project_id}/weave/calls/{call_id}
retry: {initial_seconds: 0.5, max_seconds: 60, jitter: 0.2}
targets:
  - {kind: slack, name: ml-alerts, url: "env:SLACK_URL"}
  - kind: webhook
    name: pager
    url: https://hooks.example.com/weave
    secret: "env:PAGER_SECRET"
    kinds: [distribution_shift]
    topologies: [extract]
"""


def write(tmp_path: Path, text: str, name: str = "targets.yaml") -> Path:
    path = tmp_path / name
    path.write_text(text)
    return path


def test_a_yaml_targets_file_reads_secrets_from_the_environment(tmp_path: Path) -> None:
    env = {"SLACK_URL": SLACK_URL, "PAGER_SECRET": WEBHOOK_SECRET}

    config = load_targets(write(tmp_path, TARGETS_YAML), env=env)

    slack, pager = config.targets
    assert isinstance(slack, SlackTarget) and isinstance(pager, WebhookTarget)
    assert slack.url.get_secret_value() == SLACK_URL
    assert pager.secret.get_secret_value() == WEBHOOK_SECRET
    assert config.retry.initial_seconds == 0.5 and config.retry.jitter == 0.2
    assert slack.where == "target 'ml-alerts' (hooks.slack.com)"
    assert SLACK_URL not in repr(config) and WEBHOOK_SECRET not in repr(config)
    assert config.target("pager") is pager


def test_targets_take_only_the_kinds_and_topologies_they_ask_for(tmp_path: Path) -> None:
    env = {"SLACK_URL": SLACK_URL, "PAGER_SECRET": WEBHOOK_SECRET}
    slack, pager = load_targets(write(tmp_path, TARGETS_YAML), env=env).targets

    def alert(kind: str, topology: str) -> Alert:
        return Alert.create(
            topology=topology,
            monitor="m",
            kind=kind,
            score=1.0,
            threshold=0.5,
            call_ids=["c1"],
            time=datetime.now(UTC),
        )

    assert slack.wants(alert("novel_example", "other"))
    assert pager.wants(alert("distribution_shift", "extract"))
    assert not pager.wants(alert("novel_example", "extract"))
    assert not pager.wants(alert("distribution_shift", "other"))


def test_toml_and_json_files_are_read_too(tmp_path: Path) -> None:
    toml = '[[targets]]\nkind = "slack"\nname = "a"\nurl = "https://hooks.slack.com/x"\n'
    json_text = '{"targets": [{"kind": "slack", "name": "b", "url": "https://hooks.slack.com/y"}]}'

    assert load_targets(write(tmp_path, toml, "t.toml"), env={}).targets[0].name == "a"
    assert load_targets(write(tmp_path, json_text, "t.json"), env={}).targets[0].name == "b"


BAD_FILES = [
    (
        f"targets: [{{kind: webhook, name: p, url: 'ftp://x/{WEBHOOK_SECRET}', "
        "secret: 0123456789abcdef}]",
        "targets.0.webhook.url: .*must be an http",
    ),
    (
        "targets: [{kind: webhook, name: p, url: 'https://x/', secret: short}]",
        "targets.0.webhook.secret: .*at least 16 characters",
    ),
    ("targets: [{kind: sms, name: p, url: 'https://x/'}]", "targets.0"),
    ("call_url_template: 'https://w/{entity}/{call_id}'", "uses \\['entity'\\]"),
    (
        "targets: [{kind: slack, name: a, url: 'https://x/1'}, "
        "{kind: slack, name: a, url: 'https://x/2'}]",
        "repeated: \\['a'\\]",
    ),
    (
        "targets: [{kind: slack, name: a, url: 'env:NOT_SET_ANYWHERE'}]",
        "NOT_SET_ANYWHERE, which is not set",
    ),
    ("targets: [", "is not valid"),
]


@pytest.mark.parametrize(("text", "message"), BAD_FILES)
def test_a_bad_targets_file_says_what_and_where_without_echoing_secrets(
    tmp_path: Path, text: str, message: str
) -> None:
    with pytest.raises(ConfigError, match=message) as caught:
        load_targets(write(tmp_path, text), env={})

    assert WEBHOOK_SECRET not in str(caught.value) and "'short'" not in str(caught.value)


def test_a_missing_targets_file_says_so(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="cannot be read"):
        load_targets(tmp_path / "absent.yaml", env={})
