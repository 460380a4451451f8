"""Options shared by the commands, and the broker every Kafka command talks to."""

from __future__ import annotations

import contextlib
import functools
import os
import typing
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any, TypeVar

import click

from weave_stream.broker.discovery import BrokerEntry, find_broker, recorded, running_files
from weave_stream.broker.embedded import MEMORY_ONLY_NOTICE, EmbeddedBroker
from weave_stream.broker.probe import resolve_broker
from weave_stream.config import ENV_PREFIX, Settings, load_settings
from weave_stream.errors import WeaveStreamError

__all__ = ["connected", "fail", "no_broker_message", "settings_options"]

_ORIGIN = "weave_stream.broker_origin"

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
            context = click.get_current_context(silent=True)
            if context is not None:
                context.meta[_ORIGIN] = _broker_origin(overrides.get("broker"), config_file)
            return function(*args, settings=settings, **kwargs)

        for name in reversed(extra):
            wrapper = _setting_option(name)(wrapper)
        wrapper = click.option("--prefix", "topic_prefix", help="Topic prefix (default: weave).")(
            wrapper
        )
        wrapper = click.option(
            "--broker",
            help="Kafka bootstrap URL, kafka://host:port (also WEAVE_STREAM_BROKER). "
            "Unset: the running one that `weave-stream broker` or `worker` recorded.",
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


def _broker_origin(flag: str | None, config_file: Path | None) -> str:
    if flag:
        return "--broker"
    if os.environ.get(f"{ENV_PREFIX}BROKER"):
        return f"{ENV_PREFIX}BROKER"
    return f"config file {config_file or os.environ.get(f'{ENV_PREFIX}CONFIG')}"


def no_broker_message(settings: Settings) -> str:
    """What a command says when it was given no broker and finds none running."""
    places = " or ".join(str(running.path) for running in running_files(settings))
    return (
        f"no broker is running (none recorded in {places}) and none was named: start one "
        "with `weave-stream broker` or `weave-stream worker` in another terminal, or name "
        "one with --broker kafka://host:port (or WEAVE_STREAM_BROKER)"
    )


@contextlib.contextmanager
def connected(
    settings: Settings, *, may_start: bool = False, discover: bool = True
) -> Iterator[Settings]:
    """Yield settings with a broker, probed (``weave_stream.broker.probe``), its address
    said on one line to stderr.

    The broker is the one named (``--broker``, ``WEAVE_STREAM_BROKER``, config file), else
    the newest recorded running one (``weave_stream.broker.discovery``), else -- only
    when ``may_start`` (a worker, the demo) -- a new embedded broker, recorded while it
    runs. Any other command stops with how to start or name one: a broker started for
    one command would lose what it wrote when the command exits.
    """
    if settings.broker is not None:
        context = click.get_current_context(silent=True)
        origin = context.meta.get(_ORIGIN, "settings") if context else "settings"
        yield _announced(settings, origin)
        return
    found = find_broker(settings) if discover else None
    if found is not None:
        yield _announced(settings.model_copy(update={"broker": found.url}), found.describe())
        return
    if not may_start:
        fail(no_broker_message(settings))
    broker = EmbeddedBroker(log_path=settings.data_dir / "broker.log")
    try:
        broker.start()
    except WeaveStreamError as exc:
        fail(str(exc))
    assert broker.pid is not None
    click.secho(MEMORY_ONLY_NOTICE.format(url=broker.url), fg="yellow", err=True)
    context = click.get_current_context(silent=True)
    command = context.command_path if context else "weave-stream"
    entry = BrokerEntry(broker.url, os.getpid(), command, str(broker.log_path))
    try:
        with recorded(settings, entry):
            yield _resolved(settings.model_copy(update={"broker": broker.url}))
    finally:
        broker.stop()


def _announced(settings: Settings, origin: str) -> Settings:
    click.echo(f"broker {settings.broker} ({origin})", err=True)
    return _resolved(settings)


def _resolved(settings: Settings) -> Settings:
    try:
        return resolve_broker(settings)
    except WeaveStreamError as exc:
        fail(str(exc))
        raise  # fail() does not return


def fail(message: str) -> None:
    """Stop the command with ``message`` and exit status 1."""
    raise click.ClickException(message)
