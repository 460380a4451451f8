"""Options shared by the commands, and the broker every Kafka command talks to."""

from __future__ import annotations

import contextlib
import functools
import typing
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any, TypeVar

import click

from weave_stream.broker.embedded import MEMORY_ONLY_NOTICE, EmbeddedBroker
from weave_stream.config import ENV_PREFIX, Settings, load_settings
from weave_stream.errors import WeaveStreamError

__all__ = ["connected", "fail", "settings_options"]

F = TypeVar("F", bound=Callable[..., Any])


def settings_options(*extra: str) -> Callable[[F], F]:
    """Add ``--config``, ``--broker``, ``--prefix`` and a flag per named setting in ``extra``.

    The command receives the validated ``settings``. Flags win over
    ``WEAVE_STREAM_*`` variables, which win over the config file.
    """

    def decorate(function: F) -> F:
        @functools.wraps(function)
        def wrapper(*args: Any, **kwargs: Any) -> Any:
            config_file = kwargs.pop("config_file")
            overrides = {name: kwargs.pop(name) for name in ("broker", "topic_prefix", *extra)}
            try:
                settings = load_settings(config_file, **overrides)
            except WeaveStreamError as exc:
                raise click.UsageError(str(exc)) from None
            return function(*args, settings=settings, **kwargs)

        for name in reversed(extra):
            wrapper = _setting_option(name)(wrapper)
        wrapper = click.option("--prefix", "topic_prefix", help="Topic prefix (default: weave).")(
            wrapper
        )
        wrapper = click.option(
            "--broker",
            help="Kafka bootstrap URL, kafka://host:port (also WEAVE_STREAM_BROKER). "
            "Unset: start the embedded, memory-only broker.",
        )(wrapper)
        wrapper = click.option(
            "--config",
            "config_file",
            type=click.Path(dir_okay=False, path_type=Path),
            help="TOML settings file (also WEAVE_STREAM_CONFIG).",
        )(wrapper)
        return wrapper  # type: ignore[return-value]

    return decorate


def _setting_option(name: str) -> Callable[[F], F]:
    field = Settings.model_fields[name]
    annotation = str(field.annotation)
    choice = typing.get_args(field.annotation)
    if typing.get_origin(field.annotation) is typing.Literal:
        kind: Any = click.Choice([str(c) for c in choice])
    elif name.endswith("_seconds"):
        kind = str  # a duration: "5m" or seconds, read by the settings
    elif field.annotation in (int, float):
        kind = field.annotation
    elif "Path" in annotation:
        kind = click.Path(path_type=Path)
    else:
        kind = str
    flag = "--" + name.replace("_", "-")
    variable = f"{ENV_PREFIX}{name.upper()}"
    return click.option(flag, name, type=kind, default=None, help=f"(also {variable})")


@contextlib.contextmanager
def connected(settings: Settings) -> Iterator[Settings]:
    """Yield settings with a broker: the configured one, or a new embedded one (said plainly)."""
    if not settings.embedded_broker:
        yield settings
        return
    broker = EmbeddedBroker(log_path=settings.data_dir / "broker.log")
    try:
        broker.start()
    except WeaveStreamError as exc:
        fail(str(exc))
    click.secho(MEMORY_ONLY_NOTICE.format(url=broker.url), fg="yellow", err=True)
    try:
        yield settings.with_broker(broker.url)
    finally:
        broker.stop()


def fail(message: str) -> None:
    """Stop the command with ``message`` and exit status 1."""
    raise click.ClickException(message)
