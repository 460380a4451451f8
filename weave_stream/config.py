"""One settings object, validated when loaded; nothing is read at import.

Settings come, highest precedence first, from explicit values (command-line flags),
the environment (``WEAVE_STREAM_<NAME>``), an optional TOML config file
(``--config`` or ``WEAVE_STREAM_CONFIG``) and the defaults below. Every ``*_seconds``
setting is a duration: seconds (``300``) or text (``"5m"``, ``"500ms"``, see
:mod:`weave_stream.durations`). A bad setting is a :class:`~weave_stream.errors.ConfigError`.

>>> s = load_settings(env={}, broker="kafka://127.0.0.1:9092", topic_prefix="demo")
>>> s.broker_address
'127.0.0.1:9092'
>>> s.topics.calls, s.topics.dlq
('demo.calls', 'demo.calls.dlq')
>>> s.topics.derived("text_extract", "doc_class")
'demo.derived.text_extract.doc_class'
>>> load_settings(env={"WEAVE_STREAM_STALL_SECONDS": "2m"}).stall_seconds
120.0
"""

from __future__ import annotations

import json
import os
import re
import tomllib
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal

from pydantic import (
    BaseModel,
    ConfigDict,
    Field,
    SecretStr,
    ValidationError,
    field_validator,
    model_validator,
)

from weave_stream.durations import Duration
from weave_stream.errors import ConfigError, field_errors, shown
from weave_stream.topics import TopicNames

__all__ = ["ConsumerTimeouts", "Settings", "load_settings"]

ENV_PREFIX = "WEAVE_STREAM_"
_BROKER_URL = re.compile(r"^kafka://(?P<hosts>[^/\s]+?)/?$")
_HOST_PORT = re.compile(r"^[A-Za-z0-9._-]+:\d{1,5}$")
_TOPIC_PART = re.compile(r"^[A-Za-z0-9._-]+$")
_STORE_SCHEMES = frozenset({"file", "s3", "s3a", "gs", "az", "abfs", "abfss", "memory"})
# store_options may carry object-store credentials.
_SECRETS = frozenset({"judge_api_key", "api_token", "store_options"})
DEVICE_PATTERN = re.compile(r"^(auto|cpu|mps|cuda(:\d+)?)$")  # where the embedding model runs


@dataclass(frozen=True)
class ConsumerTimeouts:
    """Consumer-group timings, in seconds."""

    session: float
    heartbeat: float
    rebalance: float


# The embedded broker makes a joining member wait half the session timeout (rounded up
# to whole seconds: 3 s -> 2 s, 2 s -> 1 s, measured) and evicts a crashed member after a
# whole one. bench/soak.py: with 3 s a takeover after SIGKILL took ~6.5 s at the median
# (load 10-20 on 2 cores: ~2.8 s to notice, 2 s to rejoin, ~1.5 s to recover and write),
# with 2 s ~2 s less, and no member was evicted by mistake under that load. A real
# cluster gets Kafka's own defaults, which tolerate GC pauses and slow networks.
EMBEDDED_TIMEOUTS = ConsumerTimeouts(session=2.0, heartbeat=0.5, rebalance=3.0)
CLUSTER_TIMEOUTS = ConsumerTimeouts(session=45.0, heartbeat=3.0, rebalance=60.0)


class Settings(BaseModel):
    """Everything a weave-stream process can be told, validated as a whole.

    ``broker`` is ``kafka://host:port`` (comma-separate several bootstrap hosts);
    ``None`` means "start the embedded, memory-only broker".
    """

    model_config = ConfigDict(extra="forbid", frozen=True)

    broker: str | None = None
    topic_prefix: str = "weave"
    partitions: int = Field(default=4, ge=1, le=1024)
    replication_factor: int = Field(default=1, ge=1, le=16)
    store: Literal["memory://", "rocksdb://"] = "memory://"
    data_dir: Path = Field(default_factory=lambda: Path.home() / ".local/share/weave-stream")
    web_host: str = "127.0.0.1"
    web_port: int = Field(default=6066, ge=0, le=65535)  # 0: any free port
    worker_id: str = "worker"
    log_level: Literal["debug", "info", "warning", "error"] = "info"
    # Ingest.
    max_payload_bytes: int = Field(default=1024 * 1024, ge=1024)
    merge_timeout_seconds: Duration = Field(default=300.0, gt=0)
    # Ids forwarded lately, remembered per partition to tell a redelivery (duplicate)
    # from a second call under one id (conflict): ~150 bytes each (ingest/window.py).
    dedupe_window_calls: int = Field(default=100_000, ge=2, le=100_000_000)
    # What the broker is: "embedded" (Tansu: short group timeouts and its workarounds)
    # or "kafka" (a real cluster: Kafka's own timeouts). "auto" asks the broker
    # (weave_stream.broker.probe), whatever way its address was given. A timing set
    # below overrides the kind's.
    broker_kind: Literal["auto", "embedded", "kafka"] = "auto"
    # Kafka's idempotent producer for data topics: "auto" uses it when the broker
    # accepts an InitProducerId request (probed), "on" insists, "off" never.
    idempotent_producer: Literal["auto", "on", "off"] = "auto"
    session_timeout_seconds: Duration | None = Field(default=None, gt=0)
    heartbeat_interval_seconds: Duration | None = Field(default=None, gt=0)
    rebalance_timeout_seconds: Duration | None = Field(default=None, gt=0)
    # Micro-batches of ops. A batch waits for more calls only while it is not full, so
    # under load batches fill at once and the wait only adds latency to a quiet stream:
    # 0.25 s doubled bench/stream.py's p50 latency against 0.05 s at the same throughput.
    batch_size: int = Field(default=64, ge=1, le=100_000)
    batch_max_wait_seconds: Duration = Field(default=0.05, gt=0)
    # The embedding model of the embed and classify ops (weave_stream.ops.embed_device).
    # device: "auto" (a CUDA GPU, else Apple's MPS, else the CPU), "cpu", "cuda", "cuda:N"
    # or "mps"; precision "auto" is float16 on a GPU and float32 on the CPU. Vectors are
    # normalised float32 either way, and op refs do not depend on either.
    device: str = "auto"
    precision: Literal["auto", "float32", "float16", "bfloat16"] = "auto"
    # Padded tokens per forward pass, the longest wait for more texts to fill one, and
    # the threads tokenizing ahead of the model; None: the device's default.
    embed_token_budget: int | None = Field(default=None, ge=16, le=4_194_304)
    embed_gather_seconds: Duration | None = Field(default=None, ge=0, le=10)
    embed_tokenizer_threads: int | None = Field(default=None, ge=0, le=256)
    # Where a streaming worker's topology processes embed: "auto" (one model service per
    # worker, shared by them all), "process" (each loads its own model), or
    # "unix:/path/to.sock" (a running `weave-stream model-service`, e.g. one per host).
    embed_service: str = "auto"
    # A topology worker idle this long while its partitions lag restarts (see watchdog).
    stall_seconds: Duration = Field(default=30.0, gt=0)
    # Reconciliation: every interval, a topology worker checks the calls of its partitions
    # that its topology processed at least the settle time ago for missing derived values,
    # and recomputes the missing ones (0: off). See weave_stream/runners/reconcile.py.
    reconcile_interval_seconds: Duration = Field(default=30.0, ge=0)
    reconcile_settle_seconds: Duration = Field(default=60.0, ge=0)
    # How long a topology worker remembers a call's results (so a replay computes nothing).
    results_retention_seconds: Duration = Field(default=7 * 86400.0, gt=0)
    # Windowed aggregates: at most this many groups per aggregate get their own series in
    # the latest-closed-window metrics; the rest are summed under group="_other".
    aggregate_metric_max_groups: int = Field(default=20, ge=1, le=10_000)
    # "exactly_once" needs a real Kafka cluster (transactions); see the README.
    processing_guarantee: Literal["at_least_once", "exactly_once"] = "at_least_once"
    # The LLM judge (an OpenAI-compatible chat-completions endpoint).
    judge_base_url: str | None = None
    judge_model: str = "gpt-4o-mini"
    judge_api_key: SecretStr | None = None
    judge_concurrency: int = Field(default=8, ge=1, le=1024)
    # The result cache of derived values (default directory: <data_dir>/cache).
    cache_max_bytes: int = Field(default=1024**3, ge=1024**2)
    # Alert delivery: the targets file (Slack and webhooks; weave_stream.notify.targets).
    # Delivery state is kept in <data_dir>/notify/delivery.sqlite3.
    alert_targets_file: Path | None = None
    # Token guarding the HTTP endpoints that change state.
    api_token: SecretStr | None = None
    # Where running brokers and workers are recorded for the other commands to find
    # (besides <data_dir>/running.json); default $XDG_STATE_HOME/weave-stream/running.json.
    state_file: Path = Field(default_factory=lambda: _default_state_file())
    # SIGTERM or Ctrl-C stops a worker within this many seconds, whatever its consumers
    # do (what was processed is committed first); a second signal exits at once.
    shutdown_timeout_seconds: Duration = Field(default=15.0, gt=0, le=3600)
    # The collector (the Weave trace-server write API and OTLP/HTTP; weave_stream.collector):
    # `weave-stream collector` serves it on collector_host:collector_port, and every
    # worker on its web port too unless collector_on_workers is false.
    collector_host: str = "127.0.0.1"
    collector_port: int = Field(default=6068, ge=0, le=65535)
    collector_on_workers: bool = True
    # Comma-separated API keys the collector accepts (HTTP Basic api:<key>, as the weave
    # client sends WANDB_API_KEY, or a bearer token). None: loopback clients only.
    collector_api_keys: SecretStr | None = None
    collector_max_request_bytes: int = Field(default=32 * 1024 * 1024, ge=1024)
    collector_ack_timeout_seconds: Duration = Field(default=10.0, gt=0)
    collector_retry_after_seconds: Duration = Field(default=2.0, gt=0)
    # Forward every collector request to this trace server too (W&B's or self-hosted).
    collector_upstream: str | None = None
    # The call store: Delta tables of calls, derived values and alerts (weave_stream.store),
    # written by every worker's store sink and by run_local(store=...). A folder (default
    # <data_dir>/store) or s3://bucket/prefix; store_options go to delta-rs' object store
    # (endpoint, region...; credentials are best left to the AWS_* environment variables).
    # Not to be confused with `store`, the Faust table store above.
    store_url: str | None = None
    store_options: dict[str, str] = Field(default_factory=dict)
    store_sink: bool = True
    store_batch_rows: int = Field(default=5000, ge=1, le=1_000_000)
    store_batch_seconds: Duration = Field(default=2.0, gt=0)
    store_retention_days: float | None = Field(default=None, gt=0)
    store_maintenance_seconds: Duration = Field(default=3600.0, gt=0)

    def __init__(self, /, **values: Any) -> None:
        try:
            super().__init__(**values)
        except ValidationError as exc:
            problems = [
                f"{f}: {message} (got {_shown(f, v)})" for f, message, v in field_errors(exc)
            ]
            raise ConfigError("invalid settings:\n  " + "\n  ".join(problems)) from None

    # Marked as pydantic's own __init__, so that copies and nested validation skip it.
    __init__.__pydantic_base_init__ = True  # type: ignore[attr-defined]

    @field_validator("broker")
    @classmethod
    def _check_broker(cls, value: str | None) -> str | None:
        if value is None or value == "":
            return None
        match = _BROKER_URL.match(value.strip())
        hosts = match.group("hosts").split(",") if match else []
        if not hosts or not all(_HOST_PORT.match(h) for h in hosts):
            raise ValueError(
                f"broker {value!r} is not a Kafka URL; write kafka://host:port "
                "(several bootstrap servers: kafka://h1:9092,h2:9092)"
            )
        return f"kafka://{','.join(hosts)}"

    @field_validator("device")
    @classmethod
    def _check_device(cls, value: str) -> str:
        if not DEVICE_PATTERN.match(value.strip().lower()):
            raise ValueError(
                f"device {value!r} is not a device; use auto, cpu, cuda, cuda:N (N counts "
                "from 0) or mps"
            )
        return value.strip().lower()

    @field_validator("embed_service")
    @classmethod
    def _check_embed_service(cls, value: str) -> str:
        if value in ("auto", "process") or (value.startswith("unix:") and len(value) > 5):
            return value
        raise ValueError(
            f"embed_service {value!r} is not auto, process or unix:/path/to/model.sock "
            "(the socket of a running `weave-stream model-service`)"
        )

    @field_validator("topic_prefix")
    @classmethod
    def _check_prefix(cls, value: str) -> str:
        if not _TOPIC_PART.match(value) or len(value) > 100:
            raise ValueError(
                f"topic prefix {value!r} may hold only letters, digits, '.', '_' and '-' "
                "(at most 100 characters)"
            )
        return value

    @field_validator("store_options", mode="before")
    @classmethod
    def _parse_store_options(cls, value: Any) -> Any:
        # From the environment or a child's environment the options come as JSON text.
        if isinstance(value, str):
            try:
                value = json.loads(value) if value.strip() else {}
            except json.JSONDecodeError as exc:
                raise ValueError(
                    f"store_options must be a JSON object such as "
                    f'{{"aws_endpoint_url": "http://minio:9000"}} '
                    f"({exc.msg} at character {exc.pos})"
                ) from None
        return value

    @field_validator("store_url")
    @classmethod
    def _check_store_url(cls, value: str | None) -> str | None:
        if value is None or value == "":
            return None
        scheme = value.split("://", 1)[0] if "://" in value else "file"
        if scheme not in _STORE_SCHEMES:
            raise ValueError(
                f"store_url {value!r} has the scheme {scheme!r}; use a folder, file://, "
                + ", ".join(f"{s}://" for s in sorted(_STORE_SCHEMES - {"file"}))
            )
        return value

    @model_validator(mode="after")
    def _check_timeouts(self) -> Settings:
        timeouts = self.consumer_timeouts
        if timeouts.heartbeat >= timeouts.session / 2:
            raise ValueError(
                f"heartbeat interval {timeouts.heartbeat}s must be well under the session "
                f"timeout {timeouts.session}s (at most a third of it is usual)"
            )
        return self

    @model_validator(mode="after")
    def _check_guarantee(self) -> Settings:
        if self.processing_guarantee == "exactly_once" and self.embedded_broker_quirks:
            raise ValueError(
                "processing_guarantee exactly_once needs Kafka transactions, which the "
                "embedded broker does not support; use at_least_once there (readers "
                "deduplicate), or point broker at a real Kafka cluster with broker_kind=kafka"
            )
        return self

    @property
    def embedded_broker(self) -> bool:
        """True when no broker is configured and the embedded one must be started."""
        return self.broker is None

    @property
    def embedded_broker_quirks(self) -> bool:
        """True when the broker is the embedded one (its timings and workarounds apply).

        ``auto`` is decided by probing the broker (``weave_stream.broker.probe``);
        before that only a missing broker (the embedded one will be started) counts.
        """
        if self.broker_kind == "auto":
            return self.broker is None
        return self.broker_kind == "embedded"

    @property
    def idempotent(self) -> bool:
        """Whether data topics use Kafka's idempotent producer (``auto`` not probed: no)."""
        return self.idempotent_producer == "on"

    @property
    def broker_address(self) -> str:
        """``host:port[,host:port]`` for Kafka clients; fails when no broker is set."""
        if self.broker is None:
            raise ConfigError("no broker is set; start the embedded broker or pass --broker")
        return self.broker.removeprefix("kafka://")

    @property
    def store_location(self) -> str:
        """Where the call store lives: ``store_url``, else the folder ``<data_dir>/store``."""
        return self.store_url or str(self.data_dir / "store")

    @property
    def topics(self) -> TopicNames:
        """The topic names under this prefix."""
        return TopicNames(self.topic_prefix)

    @property
    def consumer_timeouts(self) -> ConsumerTimeouts:
        """Session, heartbeat and rebalance timeouts, defaults chosen by broker kind."""
        base = EMBEDDED_TIMEOUTS if self.embedded_broker_quirks else CLUSTER_TIMEOUTS
        return ConsumerTimeouts(
            session=self.session_timeout_seconds or base.session,
            heartbeat=self.heartbeat_interval_seconds or base.heartbeat,
            rebalance=self.rebalance_timeout_seconds or base.rebalance,
        )

    def with_broker(self, url: str) -> Settings:
        """A copy pointing at the embedded broker at ``url``, keeping its short timeouts."""
        kind = "embedded" if self.broker_kind == "auto" else self.broker_kind
        idempotent = "off" if self.idempotent_producer == "auto" else self.idempotent_producer
        values = {
            **self.model_dump(),
            "broker": url,
            "broker_kind": kind,
            "idempotent_producer": idempotent,
        }
        return Settings.model_validate(values)

    def as_environment(self) -> dict[str, str]:
        """These settings as ``WEAVE_STREAM_*`` variables, to hand to a child process."""
        env = {}
        for name, value in self.model_dump().items():
            if value is None:
                continue
            if isinstance(value, SecretStr):
                value = value.get_secret_value()
            if isinstance(value, dict):
                value = json.dumps(value)
            env[f"{ENV_PREFIX}{name.upper()}"] = str(value)
        return env


def _default_state_file() -> Path:
    state_home = os.environ.get("XDG_STATE_HOME") or str(Path.home() / ".local/state")
    return Path(state_home) / "weave-stream" / "running.json"


def load_settings(
    config_file: str | Path | None = None,
    env: Mapping[str, str] | None = None,
    **overrides: Any,
) -> Settings:
    """Load and validate settings from flags (``overrides``), environment and a TOML file.

    ``None`` overrides are ignored, so unset command-line flags fall through. Raises
    :class:`ConfigError` naming every bad setting, where it came from, and the fix.
    """
    environ = dict(os.environ if env is None else env)
    explicit = {k: v for k, v in overrides.items() if v is not None}
    config_file = config_file or environ.get(f"{ENV_PREFIX}CONFIG")
    from_file = _read_config_file(Path(config_file)) if config_file else {}
    from_env = _read_env(environ)
    values = {**from_file, **from_env, **explicit}
    try:
        return Settings.model_validate(values)
    except ValidationError as exc:
        problems = []
        for field, message, value in field_errors(exc, whole="settings"):
            origin = _origin(field, from_file, from_env, explicit, config_file)
            problems.append(f"{field} ({origin}): {message} (got {_shown(field, value)})")
        raise ConfigError("invalid settings:\n  " + "\n  ".join(problems)) from None


def _shown(field: str, value: Any) -> str:
    """A bad value for a message; secrets are never repeated."""
    return "(not shown)" if field.split(".")[0] in _SECRETS else shown(value)


def _read_env(environ: Mapping[str, str]) -> dict[str, str]:
    names = set(Settings.model_fields)
    values = {}
    for key, value in environ.items():
        if key.startswith(ENV_PREFIX) and key != f"{ENV_PREFIX}CONFIG":
            name = key.removeprefix(ENV_PREFIX).lower()
            if name not in names:
                raise ConfigError(
                    f"unknown setting {key} in the environment; known: "
                    + ", ".join(ENV_PREFIX + n.upper() for n in sorted(names))
                )
            values[name] = value
    return values


def _read_config_file(path: Path) -> dict[str, Any]:
    try:
        data = tomllib.loads(path.read_text())
    except FileNotFoundError:
        raise ConfigError(f"config file {path} does not exist") from None
    except tomllib.TOMLDecodeError as exc:
        raise ConfigError(f"config file {path} is not valid TOML: {exc}") from None
    # Allow both a flat file and one under a [weave_stream] table.
    section = data.get("weave_stream", data)
    if not isinstance(section, dict):
        raise ConfigError(f"config file {path}: [weave_stream] must be a table")
    return {str(k).replace("-", "_"): v for k, v in section.items()}


def _origin(
    field: str,
    from_file: Mapping[str, Any],
    from_env: Mapping[str, Any],
    explicit: Mapping[str, Any],
    config_file: str | Path | None,
) -> str:
    if field in explicit:
        return "command line"
    if field in from_env:
        return f"environment {ENV_PREFIX}{field.upper()}"
    if field in from_file:
        return f"config file {config_file}"
    return "default"
