"""Where alerts go: Slack incoming webhooks and generic webhooks, and how hard to retry.

A targets file (YAML, TOML or JSON) lists the targets; secrets may be written as
``env:NAME`` to be read from the environment instead of the file::

    call_url_template: https://wandb.ai/{project_id}/weave/calls/{call_id}
    retry: {initial_seconds: 1, max_seconds: 300}
    targets:
      - {kind: slack, name: ml-alerts, url: "env:SLACK_WEBHOOK_URL"}
      - {kind: webhook, name: pager, url: https://hooks.example.com/ws, secret: "env:PAGER_SECRET",
         kinds: [distribution_shift]}

A Slack incoming-webhook URL is itself a credential, so every URL is kept as a
secret: messages and logs name a target by its ``name`` and host only.

>>> config = TargetsConfig.model_validate({"targets": [
...     {"kind": "webhook", "name": "pager", "url": "https://hooks.example.com/x/TOKEN",
...      "secret": "0123456789abcdef"}]})
>>> config.targets[0].where
"target 'pager' (hooks.example.com)"
>>> "TOKEN" in repr(config)
False
"""

from __future__ import annotations

import json
import os
import string
import tomllib
from pathlib import Path
from typing import Annotated, Any, Literal
from urllib.parse import urlsplit

import yaml
from pydantic import (
    BaseModel,
    ConfigDict,
    Field,
    SecretStr,
    ValidationError,
    field_validator,
    model_validator,
)

from weave_stream.drift.findings import AlertKind
from weave_stream.durations import Duration
from weave_stream.errors import ConfigError, field_errors, shown
from weave_stream.notify.alerts import Alert

__all__ = [
    "DEFAULT_CALL_URL_TEMPLATE",
    "RetryPolicy",
    "SlackTarget",
    "Target",
    "TargetsConfig",
    "WebhookTarget",
    "load_targets",
]

DEFAULT_CALL_URL_TEMPLATE = "https://wandb.ai/{project_id}/weave/calls/{call_id}"
TEMPLATE_FIELDS = frozenset({"call_id", "project_id", "topology", "monitor", "alert_id"})
_NAME = r"^[A-Za-z0-9][A-Za-z0-9_.-]{0,63}$"
_SECRET_FIELDS = frozenset({"url", "secret"})


class RetryPolicy(BaseModel):
    """Exponential backoff with jitter: the n-th retry waits about ``initial * multiplier**n``.

    The wait is capped at ``max_seconds`` and drawn from ``[1 - jitter, 1]`` of it;
    a ``Retry-After`` answer is honoured (up to ``max_retry_after_seconds``). The
    ``*_seconds`` fields are durations: seconds or text (``"5m"``, ``"500ms"``).
    """

    model_config = ConfigDict(extra="forbid", frozen=True)

    initial_seconds: Duration = Field(default=1.0, gt=0)
    max_seconds: Duration = Field(default=300.0, gt=0)
    multiplier: float = Field(default=2.0, ge=1)
    jitter: float = Field(default=0.5, ge=0, le=1)
    max_retry_after_seconds: Duration = Field(default=3600.0, gt=0)
    timeout_seconds: Duration = Field(default=10.0, gt=0)


class _Target(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)

    name: str = Field(pattern=_NAME)
    url: SecretStr
    kinds: tuple[AlertKind, ...] = ()  # empty: every kind
    topologies: tuple[str, ...] = ()  # empty: every topology

    @field_validator("url")
    @classmethod
    def _check_url(cls, value: SecretStr) -> SecretStr:
        parts = urlsplit(value.get_secret_value())
        if parts.scheme not in ("http", "https") or not parts.hostname:
            raise ValueError(f"must be an http(s) URL (scheme {parts.scheme!r}, not shown in full)")
        return value

    @property
    def where(self) -> str:
        """The target for messages: its name and host, never the URL's secret path."""
        return f"target {self.name!r} ({urlsplit(self.url.get_secret_value()).hostname})"

    def wants(self, alert: Alert) -> bool:
        """True when this target takes ``alert`` (its kind and topology filters)."""
        return (not self.kinds or alert.kind in self.kinds) and (
            not self.topologies or alert.topology in self.topologies
        )


class SlackTarget(_Target):
    """A Slack incoming webhook (Block Kit message)."""

    kind: Literal["slack"] = "slack"
    call_url_template: str | None = None  # overrides the config's


class WebhookTarget(_Target):
    """A generic webhook: JSON body, HMAC-SHA256 signature with ``secret``."""

    kind: Literal["webhook"] = "webhook"
    secret: SecretStr

    @field_validator("secret")
    @classmethod
    def _check_secret(cls, value: SecretStr) -> SecretStr:
        if len(value.get_secret_value()) < 16:
            raise ValueError("must be at least 16 characters (use a random token)")
        return value


Target = Annotated[SlackTarget | WebhookTarget, Field(discriminator="kind")]


class TargetsConfig(BaseModel):
    """The targets, the retry policy and the link template (see the module docstring)."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    targets: tuple[Target, ...] = ()
    retry: RetryPolicy = RetryPolicy()
    call_url_template: str = DEFAULT_CALL_URL_TEMPLATE

    @field_validator("call_url_template")
    @classmethod
    def _check_template(cls, value: str) -> str:
        _check_template(value)
        return value

    @model_validator(mode="after")
    def _check_targets(self) -> TargetsConfig:
        names = [target.name for target in self.targets]
        repeated = sorted({name for name in names if names.count(name) > 1})
        if repeated:
            raise ValueError(f"target names must be unique; repeated: {repeated}")
        for target in self.targets:
            if isinstance(target, SlackTarget) and target.call_url_template:
                _check_template(target.call_url_template)
        return self

    def target(self, name: str) -> SlackTarget | WebhookTarget:
        """The target called ``name``."""
        for target in self.targets:
            if target.name == name:
                return target
        raise ConfigError(
            f"no alert target named {name!r}; known: {[t.name for t in self.targets]}"
        )


def _check_template(template: str) -> None:
    fields = {name for _, name, _, _ in string.Formatter().parse(template) if name is not None}
    unknown = fields - TEMPLATE_FIELDS
    if unknown:
        raise ValueError(
            f"link template {template!r} uses {sorted(unknown)}; it may use only "
            f"{sorted(TEMPLATE_FIELDS)}"
        )


def load_targets(path: Path, env: dict[str, str] | None = None) -> TargetsConfig:
    """Read and validate a targets file; ``env:NAME`` values come from ``env`` (or os.environ).

    Raises :class:`ConfigError` naming the file, the field and the fix; secret values
    are never repeated in the message.
    """
    environ = dict(os.environ) if env is None else env
    try:
        text = path.read_text()
        data: Any
        if path.suffix == ".toml":
            data = tomllib.loads(text)
        elif path.suffix == ".json":
            data = json.loads(text)
        else:
            data = yaml.safe_load(text)
    except OSError as exc:
        raise ConfigError(f"alert targets file {path} cannot be read: {exc.strerror}") from None
    except (ValueError, yaml.YAMLError) as exc:
        raise ConfigError(f"alert targets file {path} is not valid: {exc}") from None
    data = _resolve_env(data or {}, environ, path)
    try:
        return TargetsConfig.model_validate(data)
    except ValidationError as exc:
        problems = []
        for field, message, value in field_errors(exc, whole="file"):
            secret = _SECRET_FIELDS & set(field.split("."))
            problems.append(f"{field}: {message} (got {'(not shown)' if secret else shown(value)})")
        raise ConfigError(
            f"alert targets file {path} is invalid:\n  " + "\n  ".join(problems)
        ) from None


def _resolve_env(value: Any, environ: dict[str, str], path: Path) -> Any:
    if isinstance(value, dict):
        return {key: _resolve_env(item, environ, path) for key, item in value.items()}
    if isinstance(value, list):
        return [_resolve_env(item, environ, path) for item in value]
    if isinstance(value, str) and value.startswith("env:"):
        name = value.removeprefix("env:")
        if name not in environ:
            raise ConfigError(
                f"alert targets file {path} reads the environment variable {name}, which is "
                "not set; export it, or write the value in the file"
            )
        return environ[name]
    return value
