"""``weave-stream alerts``: recent alerts with their delivery status; acknowledgements."""

from __future__ import annotations

import asyncio
from datetime import datetime
from typing import Any

import click
import orjson

from weave_stream.broker.kafka import produce, read_topic
from weave_stream.cli.options import connected, fail, settings_options
from weave_stream.config import Settings
from weave_stream.drift.observation import encode_ack
from weave_stream.notify import Alert

__all__ = ["COMMANDS", "alerts", "read_alerts"]


async def read_alerts(settings: Settings) -> list[tuple[Alert, dict[str, Any]]]:
    """Every alert on the alerts topic (oldest first) with its latest delivery status."""
    statuses: dict[str, dict[str, Any]] = {}
    async for record in read_topic(settings, settings.topics.alerts_status):
        if record.key and record.value:
            statuses[record.key.decode()] = orjson.loads(record.value)["targets"]
    found: dict[str, Alert] = {}
    async for record in read_topic(settings, settings.topics.alerts):
        if record.value:
            alert = Alert.from_json(record.value)
            found.setdefault(alert.id, alert)  # an alert raised twice is one alert
    ordered = sorted(found.values(), key=lambda a: (a.time, a.id))
    return [(alert, statuses.get(alert.id, {})) for alert in ordered]


@click.command()
@click.option("--limit", type=int, default=20, show_default=True, help="The most recent N.")
@click.option("--topology", default=None, help="Only this topology's alerts.")
@click.option("--format", "output_format", type=click.Choice(["table", "json"]), default="table")
@click.option(
    "--ack",
    "acknowledge",
    metavar="ALERT_ID",
    default=None,
    help="Acknowledge a novel-example alert: its calls join the monitor's known examples "
    "(when the monitor's learning policy allows).",
)
@settings_options()
def alerts(
    limit: int,
    topology: str | None,
    output_format: str,
    acknowledge: str | None,
    settings: Settings,
) -> None:
    """List recent alerts and their delivery status per target, or acknowledge one."""
    with connected(settings) as settings:
        found = asyncio.run(read_alerts(settings))
        if acknowledge:
            _acknowledge(settings, [alert for alert, _ in found], acknowledge)
            return
    if topology:
        found = [(alert, status) for alert, status in found if alert.topology == topology]
    found = found[-limit:]
    if output_format == "json":
        rows = [{**orjson.loads(a.to_json()), "delivery": s} for a, s in found]
        click.echo(orjson.dumps(rows, option=orjson.OPT_INDENT_2).decode())
        return
    if not found:
        click.echo("no alerts")
        return
    for alert, status in reversed(found):
        when = alert.time.strftime("%Y-%m-%d %H:%M:%S") if isinstance(alert.time, datetime) else ""
        click.secho(
            f"{when}  {alert.topology}/{alert.monitor}  {alert.kind}  "
            f"score {alert.score:.3f} vs threshold {alert.threshold:.3f}  x{alert.count}",
            bold=True,
        )
        click.echo(f"  id {alert.id}  calls {', '.join(alert.call_ids[:3])}")
        if alert.nearest_known_call:
            click.echo(f"  nearest known example: {alert.nearest_known_call}")
        deliveries = ", ".join(
            f"{name}: {s['state']} ({s['attempts']} attempts)" for name, s in sorted(status.items())
        )
        click.echo(f"  delivery: {deliveries or 'no targets / not yet processed'}")


def _acknowledge(settings: Settings, known: list[Alert], alert_id: str) -> None:
    alert = next((a for a in known if a.id == alert_id), None)
    if alert is None:
        fail(f"no alert {alert_id!r} on {settings.topics.alerts}")
    assert alert is not None
    if alert.kind != "novel_example":
        fail(f"alert {alert_id} is a {alert.kind}: only novel examples can be acknowledged")
    topic = settings.topics.observations(alert.topology, alert.monitor)
    record = (b"ack", encode_ack(alert.call_ids), ())
    asyncio.run(produce(settings, topic, [record]))
    click.echo(
        f"acknowledged {len(alert.call_ids)} calls of alert {alert_id}: monitor "
        f"{alert.topology}/{alert.monitor} learns them if its learning policy allows"
    )


COMMANDS = [alerts]
