"""Options shared by the commands, and the broker every Kafka command talks to."""

from __future__ import annotations

import contextlib
import functools
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any, TypeVar

import click

from weave_stream.broker import MEMORY_ONLY_NOTICE, EmbeddedBroker
from weave_stream.config import Settings, load_settings
from weave_stream.errors import WeaveStreamError

__all__ = ["connected", "fail", "settings_options"]

F = TypeVar("F", bound=Callable[..., Any])


def settings_options(function: F) -> F:
    """Add ``--config``, ``--broker`` and ``--prefix``; pass ``settings`` to the command.

    Flags win over ``WEAVE_STREAM_*`` variables, which win over the config file.
    """

    @click.option(
        "--config",
        "config_file",
        type=click.Path(dir_okay=False, path_type=Path),
        help="TOML settings file (also WEAVE_STREAM_CONFIG).",
    )
    @click.option(
        "--broker",
        help="Kafka bootstrap URL, kafka://host:port (also WEAVE_STREAM_BROKER). "
        "Unset: start the embedded, memory-only broker.",
    )
    @click.option("--prefix", "topic_prefix", help="Topic prefix (default: weave).")
    @functools.wraps(function)
    def wrapper(
        *args: Any,
        config_file: Path | None,
        broker: str | None,
        topic_prefix: str | None,
        **kwargs: Any,
    ) -> Any:
        try:
            settings = load_settings(config_file, broker=broker, topic_prefix=topic_prefix)
        except WeaveStreamError as exc:
            raise click.UsageError(str(exc)) from None
        return function(*args, settings=settings, **kwargs)

    return wrapper  # type: ignore[return-value]


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
