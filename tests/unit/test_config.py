"""Settings: one validated object; flags over environment over file over defaults."""

from __future__ import annotations

from pathlib import Path

import pytest

from weave_stream.config import CLUSTER_TIMEOUTS, EMBEDDED_TIMEOUTS, load_settings
from weave_stream.errors import ConfigError


def test_precedence_is_flags_then_environment_then_file_then_defaults(tmp_path: Path) -> None:
    config = tmp_path / "weave-stream.toml"
    config.write_text(
        '[weave_stream]\ntopic_prefix = "from-file"\npartitions = 8\nbatch_size = 5\n'
    )
    env = {"WEAVE_STREAM_PARTITIONS": "6", "WEAVE_STREAM_TOPIC_PREFIX": "from-env"}
    settings = load_settings(config, env=env, topic_prefix="from-flag")
    assert settings.topic_prefix == "from-flag"
    assert settings.partitions == 6
    assert settings.batch_size == 5
    assert settings.store == "memory://"


def test_config_file_can_come_from_the_environment(tmp_path: Path) -> None:
    config = tmp_path / "c.toml"
    config.write_text("partitions = 3\n")
    assert load_settings(env={"WEAVE_STREAM_CONFIG": str(config)}).partitions == 3


@pytest.mark.parametrize(
    ("kwargs", "env", "mentions"),
    [
        ({"broker": "localhost:9092"}, {}, "kafka://host:port"),
        ({}, {"WEAVE_STREAM_PARTITIONS": "many"}, "environment WEAVE_STREAM_PARTITIONS"),
        ({"store": "redis://"}, {}, "store (command line)"),
        ({"topic_prefix": "a/b"}, {}, "letters, digits"),
        ({}, {"WEAVE_STREAM_PARTITONS": "2"}, "unknown setting WEAVE_STREAM_PARTITONS"),
        ({"session_timeout_seconds": 2, "heartbeat_interval_seconds": 1.5}, {}, "heartbeat"),
    ],
)
def test_bad_settings_fail_at_load_naming_the_setting_and_its_source(
    kwargs: dict, env: dict, mentions: str
) -> None:
    with pytest.raises(ConfigError, match=mentions.replace("(", r"\(").replace(")", r"\)")):
        load_settings(env=env, **kwargs)


def test_bad_config_files_are_reported_with_their_path(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="does not exist"):
        load_settings(tmp_path / "missing.toml", env={})
    broken = tmp_path / "broken.toml"
    broken.write_text("partitions = = 3")
    with pytest.raises(ConfigError, match="not valid TOML"):
        load_settings(broken, env={})


def test_group_timeouts_are_short_for_the_embedded_broker_and_kafkas_own_for_a_cluster() -> None:
    assert load_settings(env={}).consumer_timeouts == EMBEDDED_TIMEOUTS
    cluster = load_settings(env={}, broker="kafka://kafka-1:9092,kafka-2:9092")
    assert cluster.consumer_timeouts == CLUSTER_TIMEOUTS
    assert cluster.broker_address == "kafka-1:9092,kafka-2:9092"
    embedded = load_settings(env={}).with_broker("kafka://127.0.0.1:40000")
    assert embedded.consumer_timeouts == EMBEDDED_TIMEOUTS and embedded.embedded_broker_quirks
    tuned = load_settings(env={}, broker="kafka://k:9092", session_timeout_seconds=10)
    assert tuned.consumer_timeouts.session == 10
    assert tuned.consumer_timeouts.heartbeat == CLUSTER_TIMEOUTS.heartbeat


def test_settings_survive_the_trip_to_a_child_process_environment() -> None:
    settings = load_settings(env={}, broker="kafka://127.0.0.1:1", judge_api_key="sk-secret")
    again = load_settings(env=settings.as_environment())
    assert again == settings
    assert "sk-secret" not in repr(settings)
