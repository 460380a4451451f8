"""``weave-stream dashboard NAME``: the Grafana dashboard JSON of a topology.

Nothing runs and no broker is needed: the topology file is loaded and validated, and
the dashboard is built from its columns, aggregates and monitors
(:func:`weave_stream.dashboard.build.build_dashboard`). Put the file where Grafana's
dashboard provisioning looks (``docker/grafana/dashboards/`` in the compose stack),
or import it in Grafana's UI.
"""

from __future__ import annotations

import json
from pathlib import Path

import click

from weave_stream.cli.options import fail, settings_options
from weave_stream.config import Settings
from weave_stream.dashboard.build import build_dashboard
from weave_stream.errors import WeaveStreamError
from weave_stream.topology.loader import load_topology

__all__ = ["COMMANDS", "dashboard"]


@click.command()
@click.argument("topology_name", metavar="TOPOLOGY")
@click.option(
    "--out",
    "out_path",
    type=click.Path(dir_okay=False, path_type=Path),
    help="Write the JSON here (default: standard output).",
)
@settings_options()
def dashboard(topology_name: str, out_path: Path | None, settings: Settings) -> None:
    """Generate the Grafana dashboard of TOPOLOGY (a file, or a name under topologies/).

    Per class: mean scores over time with a band, counts; per column: values, errors,
    cache hits, op latency, cost; novelty and alerts; consumer lag. The dashboard's
    topic-prefix variable starts at --prefix (default: weave).
    """
    try:
        topology = load_topology(topology_name, settings)
        board = build_dashboard(topology, default_prefix=settings.topic_prefix)
    except WeaveStreamError as exc:
        fail(str(exc))
    text = json.dumps(board, indent=2, sort_keys=True, ensure_ascii=False) + "\n"
    if out_path is None:
        click.echo(text, nl=False)
        return
    out_path.parent.mkdir(parents=True, exist_ok=True)
    out_path.write_text(text, encoding="utf-8")
    panels = sum(1 for panel in board["panels"] if panel["type"] != "row")
    click.echo(f"wrote {out_path}: dashboard {board['uid']!r} with {panels} panels", err=True)


COMMANDS = [dashboard]
