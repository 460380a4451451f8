"""``weave-stream collector`` and ``weave-stream op-code``."""

from __future__ import annotations

import asyncio

import click

from weave_stream.cli.options import connected, fail, settings_options
from weave_stream.collector.objects import read_op_code
from weave_stream.config import Settings

__all__ = ["COMMANDS", "collector", "op_code"]


@click.command()
@click.option(
    "--upstream",
    default=None,
    metavar="URL",
    help="Also forward every request, unchanged, to this trace server (e.g. "
    "https://trace.wandb.ai) and answer with its answer (also WEAVE_STREAM_COLLECTOR_UPSTREAM).",
)
@settings_options("collector_host", "collector_port", "partitions", "log_level")
def collector(upstream: str | None, settings: Settings) -> None:
    """Serve the Weave trace server's write API and OTLP/HTTP traces: calls go to <prefix>.calls.

    It writes to the broker named (--broker) or the running one (`weave-stream broker`
    or `weave-stream worker` in another terminal); it starts none. Point a Weave
    application at it with WF_TRACE_SERVER_URL and WANDB_BASE_URL (the URL it prints);
    API keys come from WEAVE_STREAM_COLLECTOR_API_KEYS (none: loopback clients only).
    Stops on Ctrl-C or SIGTERM.
    """
    import logging

    from weave_stream.collector.serve import serve

    logging.basicConfig(level=settings.log_level.upper(), format="%(levelname)s %(message)s")
    upstream = upstream or settings.collector_upstream
    with connected(settings) as settings:

        def ready(url: str) -> None:
            click.echo(f"collector at {url} -> {settings.topics.calls} on {settings.broker}")
            if upstream:
                click.echo(f"  every request is also forwarded to {upstream}", err=True)
            click.echo("  point a Weave application at it:", err=True)
            click.echo(f"    export WF_TRACE_SERVER_URL={url} WANDB_BASE_URL={url}", err=True)
            click.echo(
                f"  OpenTelemetry: OTEL_EXPORTER_OTLP_TRACES_ENDPOINT={url}/v1/traces", err=True
            )

        try:
            asyncio.run(serve(settings, upstream, on_ready=ready))
        except OSError as exc:
            fail(f"cannot listen on {settings.collector_host}:{settings.collector_port}: {exc}")


@click.command("op-code")
@click.argument("op_ref")
@settings_options()
def op_code(op_ref: str, settings: Settings) -> None:
    """Print the code of an op, by the ref a call carries as its op_name.

    The collector keeps every op the weave client sends on <prefix>.objects.
    """
    with connected(settings) as settings:  # reads only: never starts a broker
        try:
            found = asyncio.run(read_op_code(settings, op_ref))
        except ValueError as exc:
            fail(str(exc))
    if found is None:
        fail(f"no op {op_ref} on {settings.topics.objects}: did its client send to the collector?")
    assert found is not None
    for name, content in found.files.items():
        click.secho(f"# {name}", bold=True)
        click.echo(content)


COMMANDS = [collector, op_code]
