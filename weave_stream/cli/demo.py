"""``weave-stream demo``: the main job a new user runs first, end to end on one machine.

It starts the embedded broker and a worker, registers the text-extract topology
(classify the document, judge the extraction, embed the document, assign its topic),
and streams calls built from real documents (with start/end event pairs, calls whose
other half never comes, and malformed records mixed in) in two phases: after the
first half, it fits and names a topic map of the stored calls' embeddings
(cli/demo_topics.py), which the worker's topic column then uses for every later call
as it streams, watching its windows for topic alerts. It shows live progress from the
worker's own metrics, the derived values as they arrive, the drift and topic alerts
the Japanese calls of the second phase raise, queries the call store the worker's sink
wrote (the lowest judge scores, with their documents; the topic table), and ends with
a summary whose books must balance and the "from now on" dataset of the lowest judge
scores the store sink filled. With no judge endpoint configured, the judge column and
the topic namer use a built-in stand-in (word overlap, not an LLM), and the demo says so.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import random
import secrets
import tempfile
import time
from collections import Counter
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import click
import orjson
from tqdm import tqdm

from weave_stream.broker.kafka import ensure_topics, produce, read_topic
from weave_stream.cli.aggregates_cmds import show_aggregates
from weave_stream.cli.demo_calls import (
    await_rule_datasets,
    await_stored,
    show_lowest_scores,
    show_rule_datasets,
)
from weave_stream.cli.demo_topics import await_topic_checks, fit_first_map, show_stream_topics
from weave_stream.cli.ingest_cmds import call_key
from weave_stream.cli.options import connected, fail, settings_options
from weave_stream.columns.derive import DerivedValue
from weave_stream.columns.values import read_derived
from weave_stream.config import Settings
from weave_stream.demo.judge_standin import StandInJudge
from weave_stream.demo.samples import (
    Document,
    corpus_documents,
    malformed_records,
    sample_calls,
    split_into_events,
)
from weave_stream.errors import WeaveStreamError
from weave_stream.ingest.call import parse_call_object
from weave_stream.ingest.outcomes import DeadLetter
from weave_stream.notify import Alert
from weave_stream.notify.receiver import WebhookReceiver
from weave_stream.runners.workers import WorkerProcess
from weave_stream.topology.registrations import register, registration_for
from weave_stream.topology.spec import Topology
from weave_stream.topology.topic_columns import TopicColumn

__all__ = ["COMMANDS", "demo", "demo_calls"]

_MERGE_TIMEOUT = 3.0


DEFAULT_TOPOLOGY = Path("topologies") / "text_extract.yaml"
SHIFT_AT = 0.75  # the share of calls before the documents change kind
FIT_AT = 0.5  # the share of calls streamed before the first topic map is fitted
# Up to this window (seconds), the demo's calls end where a topic window starts: at most
# 2 minutes ago, so its 7 minutes of calls stay within the aggregates' 10-minute grace.
_ALIGN_WINDOWS = 120.0
SHIFTED_LANGUAGE = "japanese"


@click.command()
@click.option("--calls", "call_count", type=int, default=400, show_default=True)
@click.option(
    "--topology",
    "topology_path",
    type=click.Path(dir_okay=False, path_type=Path),
    default=DEFAULT_TOPOLOGY,
    show_default=True,
    help="The topology to register (run from the repository root for the default).",
)
@click.option("--rate", type=float, default=300.0, show_default=True, help="Records per second.")
@click.option(
    "--out",
    "out_dir",
    type=click.Path(file_okay=False, path_type=Path),
    default=Path("demo-output"),
    show_default=True,
    help="Folder for the demo's outputs.",
)
@click.option(
    "--weave",
    "with_weave",
    is_flag=True,
    help="Trace a small application with the real weave client instead (pip install "
    "'weave-stream[weave]'): its calls reach the topology through the collector.",
)
@click.option(
    "--write-calls",
    "calls_file",
    type=click.Path(dir_okay=False, path_type=Path),
    help="Only write the demo's calls (--calls of them, complete, one JSON per line) to "
    "this file and exit: input for `run`, `plan`, `ingest` and `aggregates --input`.",
)
@settings_options("judge_base_url", "judge_model")
def demo(
    call_count: int,
    topology_path: Path,
    rate: float,
    out_dir: Path,
    with_weave: bool,
    calls_file: Path | None,
    settings: Settings,
) -> None:
    """Run weave-stream end to end on the embedded broker: no Docker, nothing to set up."""
    if calls_file is not None:
        calls = demo_calls(call_count)
        calls_file.write_bytes(b"".join(orjson.dumps(call) + b"\n" for call in calls))
        click.echo(f"wrote {len(calls)} calls to {calls_file}")
        return
    if not topology_path.is_file():
        fail(
            f"no topology file {topology_path}: run the demo from the repository root, "
            "or pass --topology FILE"
        )
    out_dir.mkdir(parents=True, exist_ok=True)
    with contextlib.ExitStack() as stack:
        receiver = None
        if settings.alert_targets_file is None:
            receiver = stack.enter_context(_alert_receiver())
            targets = out_dir / "alert-targets.json"
            targets.write_text(
                json.dumps(
                    {
                        "targets": [
                            {
                                "kind": "webhook",
                                "name": "demo-receiver",
                                "url": receiver.url,
                                "secret": receiver.secret,
                            }
                        ]
                    }
                )
            )
            settings = settings.model_copy(update={"alert_targets_file": targets})
            click.echo(f"drift alerts go to a webhook receiver the demo runs at {receiver.url}")
        if settings.judge_base_url is None:
            judge = stack.enter_context(StandInJudge())
            settings = settings.model_copy(update={"judge_base_url": judge.base_url})
            click.secho(
                f"no judge endpoint configured (--judge-base-url / WEAVE_STREAM_JUDGE_BASE_URL): "
                f"the judge column uses the built-in stand-in at {judge.base_url} — it scores "
                "by word overlap and is NOT an LLM.",
                fg="yellow",
            )
        if with_weave:
            from weave_stream.cli.demo_weave import run_weave_demo

            data_dir = Path(tempfile.mkdtemp(prefix="weave-stream-demo-"))
            settings = settings.model_copy(
                update={"data_dir": data_dir, "web_port": 0, "partitions": 2}
            )
            run_weave_demo(settings, min(call_count, 60), topology_path, out_dir)
            return
        _run(settings, call_count, topology_path, rate, out_dir, receiver)


def _run(
    settings: Settings,
    call_count: int,
    topology_path: Path,
    rate: float,
    out_dir: Path,
    receiver: WebhookReceiver | None,
) -> None:
    data_dir = Path(tempfile.mkdtemp(prefix="weave-stream-demo-"))
    settings = settings.model_copy(
        update={
            "data_dir": data_dir,
            "topic_prefix": settings.topic_prefix,
            "merge_timeout_seconds": _MERGE_TIMEOUT,
            "web_port": 0,
            "partitions": 2,
        }
    )
    _step("1", "broker")
    # Its own broker unless one is named: a running one may hold another user's topics.
    with connected(settings, may_start=True, discover=False) as settings:
        _step("2", "worker")
        worker = WorkerProcess(settings, log_path=out_dir / "worker.log")
        with worker:
            try:
                worker.wait_ready(timeout=90)
            except WeaveStreamError as exc:
                fail(str(exc))
            click.echo(f"worker ready; metrics at {worker.url}/metrics (log: {worker.log_path})")
            _step("3", f"registering {topology_path}")
            topology = _register(settings, topology_path)
            spec = topology.topics[0] if topology.topics else None
            records, expected = _demo_records(
                call_count, settings.max_payload_bytes, end=_timeline_end(spec), topology=topology
            )
            asyncio.run(ensure_topics(settings, [settings.topics.calls]))
            first, later = records
            _step(
                "4",
                f"streaming the first {expected['first_calls']} calls to {settings.topics.calls}",
            )
            _produce(settings, first, rate)
            _follow(worker, len(first), expected["first_calls"] + expected["incomplete"])
            _step("5", "topics: a map of the first calls, fitted and named")
            topic_map = None
            if spec is None:
                click.echo(f"  skipped: {topology.name} has no topics: entry")
            elif (
                await_stored(settings, topology, spec.column, expected["first_selected"])
                < (expected["first_selected"])
            ):
                click.echo("  skipped: the call store did not catch up with the stream")
            else:
                topic_map = fit_first_map(settings, topology, spec)
            _step(
                "6",
                f"streaming the other {expected['calls'] - expected['first_calls'] - 2} calls"
                + (
                    f": the worker's {spec.name} column assigns each as it comes"
                    if topic_map and spec
                    else ""
                ),
            )
            _produce(settings, later, rate)
            counts = _follow(worker, len(first) + len(later), expected["calls"])
            letters = asyncio.run(_dead_letters(settings))
            _step("7", f"derived values of {topology.name}")
            values = _follow_values(settings, topology, expected["selected"])
            _show_values(topology, values)
            if topic_map is not None and spec is not None:
                window = spec.watch.window
                ends = sorted({(t // window + 1) * window for t in expected["later_started"]})
                await_topic_checks(worker, topology, spec, ends)
            if receiver is not None and (topology.monitors or topology.topics):
                _await_alerts(receiver)
            plots: list[Path] = []
            if topology.aggregates:
                _step("8", f"aggregates of {topology.name}")
                plots = show_aggregates(settings, topology.name, out_dir)
            _step("9", "calls() over the call store: the lowest judge scores")
            stored = show_lowest_scores(settings, topology, expected["selected"])
            datasets = await_rule_datasets(settings, topology) if stored else []
            if topic_map is not None and spec is not None:
                _step("10", "topics on the stream: the worker's assignments, the topic table")
                plot = show_stream_topics(
                    settings, topology, spec, values, out_dir, topology_path.resolve()
                )
                plots += [plot] if plot else []
        _step(_LAST, "summary")
        ok = _summary(counts, letters, expected, len(first) + len(later))
        ok = _values_summary(topology, values, expected["selected"]) and ok
        if not stored:
            click.echo("  the call store did not catch up with the stream in time")
        if receiver is not None:
            kinds = Counter(alert.kind for alert in receiver.alerts)
            shown = ", ".join(f"{n} {kind}" for kind, n in sorted(kinds.items())) or "none"
            click.echo(f"  drift and topic alerts received by the demo's webhook: {shown}")
        for plot in plots:
            click.echo(f"  plot: {plot}")
        show_rule_datasets(datasets, settings.store_location)
        click.echo(f"  outputs (worker log, plots, alert targets) are in {out_dir}/")
    if not ok:
        fail("the books do not balance: see the summary above and the worker log")


def _produce(settings: Settings, records: list[bytes], rate: float) -> None:
    with tqdm(total=len(records), unit="rec", desc="produce") as bar:
        asyncio.run(
            produce(
                settings,
                settings.topics.calls,
                ((call_key(raw), raw, ()) for raw in records),
                rate=rate,
                on_sent=lambda n: bar.update(1),
            )
        )


def _await_alerts(receiver: WebhookReceiver, quiet_seconds: float = 5.0) -> None:
    """Wait until no new alert arrived for ``quiet_seconds`` (grouped ones come late)."""
    seen, last_change = len(receiver.alerts), time.monotonic()
    deadline = last_change + 60
    while time.monotonic() - last_change < quiet_seconds and time.monotonic() < deadline:
        time.sleep(0.5)
        if len(receiver.alerts) != seen:
            seen, last_change = len(receiver.alerts), time.monotonic()


def _alert_receiver() -> WebhookReceiver:
    """A loopback webhook receiver that prints each (signature-checked) alert as it arrives."""

    def show(alert: Alert) -> None:
        excerpt = (alert.excerpt or "").replace("\n", " ")[:70]
        tqdm.write(
            click.style(f"  ALERT {alert.kind}", fg="red", bold=True)
            + f" {alert.topology}/{alert.monitor}: score {alert.score:.3f} > threshold "
            f"{alert.threshold:.3f}, {alert.count} call(s); e.g. {excerpt!r}"
        )

    return WebhookReceiver(secrets.token_hex(16), on_alert=show)


def _register(settings: Settings, topology_path: Path) -> Topology:
    try:
        topology, registration = registration_for(str(topology_path), settings)
    except WeaveStreamError as exc:
        fail(str(exc))
    asyncio.run(register(settings, registration))
    for column in topology.compiled:
        click.echo(f"  column {column.name:<16} op {column.op.ref}")
    click.echo(
        f"registered {topology.name} version {registration.version}: the worker computes it "
        "on every call from now on"
    )
    return topology


def _follow_values(
    settings: Settings, topology: Topology, calls: int, timeout: float = 300.0
) -> list[DerivedValue]:
    """Poll the derived topics until every call has a value in every column."""
    columns = [column.name for column in topology.compiled]
    wanted = calls * len(columns)
    deadline = time.monotonic() + timeout
    values: list[DerivedValue] = []
    with tqdm(total=wanted, unit="value", desc="derived", mininterval=0.5) as bar:
        while time.monotonic() < deadline:
            values = asyncio.run(read_derived(settings, topology.name, columns))
            bar.n = len(values)
            bar.refresh()
            if len(values) >= wanted:
                break
            time.sleep(1.0)
    return values


def _show_values(topology: Topology, values: list[DerivedValue], rows: int = 8) -> None:
    by_call: dict[str, dict[str, DerivedValue]] = {}
    for value in values:
        by_call.setdefault(value.call_id, {})[value.column] = value
    columns = [column.name for column in topology.compiled]
    click.echo("  " + "call".ljust(10) + "".join(c[:28].ljust(30) for c in columns))
    listed = list(by_call.items())
    shown = listed if len(listed) <= rows else listed[: rows // 2] + listed[-(rows // 2) :]
    for call_id, row in shown:  # some of the first calls and some of the last
        cells = [_cell(row.get(column)).ljust(30) for column in columns]
        click.echo("  " + call_id[:8].ljust(10) + "".join(cells))


def _cell(value: DerivedValue | None) -> str:
    if value is None:
        return "-"
    if value.error is not None:
        return f"error: {value.error[:20]}"
    shown = value.value
    if isinstance(shown, dict) and "label" in shown:
        return f"{shown['label']} ({shown.get('confidence', 0):.2f})"
    if isinstance(shown, dict) and "score" in shown:
        return f"score {shown['score']:.2f}"
    if isinstance(shown, list):
        return f"[{len(shown)} floats]"
    return str(shown)[:28]


def _values_summary(topology: Topology, values: list[DerivedValue], calls: int) -> bool:
    complete = True
    click.echo(f"  derived values of {topology.name} (each counted once):")
    for column in topology.compiled:
        mine = [v for v in values if v.column == column.name]
        errors = sum(1 for v in mine if v.error is not None)
        click.echo(f"    {column.name:<38}  {len(mine):>6}  ({errors} errors)")
        complete = complete and len(mine) == calls
    for spec in topology.topics:
        waited = sum(1 for v in values if v.column == spec.name and v.error is not None)
        if waited:
            click.echo(
                f"    ({spec.name}: the calls before its first topic map have an error value "
                f"saying so; `weave-stream topics fit {topology.name}` fits one)"
            )
    return complete


_LAST = "11"  # the demo's steps: 1 to 11, each numbered "[n/11]"


def _step(number: str, title: str) -> None:
    click.secho(f"\n[{number}/{_LAST}] {title}", bold=True)


def _shuffled_english() -> list[Document]:
    english = corpus_documents("english")
    random.Random(7).shuffle(english)
    return english


def demo_calls(
    call_count: int, shift_at: float = SHIFT_AT, end: datetime | None = None
) -> list[dict[str, Any]]:
    """The demo's complete calls: real English documents, then (from ``shift_at``)
    Japanese ones, started over the few minutes before ``end`` (now), 1 s apart."""
    english = _shuffled_english()
    familiar = int(call_count * shift_at)
    documents = english[:familiar] + corpus_documents(SHIFTED_LANGUAGE)[: call_count - familiar]
    # Live calls: started over the last few minutes, as a production stream's would be
    # (windows close on wall-clock time too, so calls from hours ago would be late).
    spacing = timedelta(seconds=1.0)  # 400 calls over 7 minutes: a few windows
    end = end or datetime.now(UTC)
    return sample_calls(documents, start=end - spacing * len(documents), spacing=spacing)


def _timeline_end(spec: TopicColumn | None) -> datetime:
    """When the demo's calls end: the start of the topic watch's current window (when its
    windows are short), so every window of the calls has ended and the worker checks each
    as soon as the stream is quiet, not when the clock passes the last one; else now."""
    now = datetime.now(UTC)
    if spec is None or not spec.watch.enabled or spec.watch.window > _ALIGN_WINDOWS:
        return now
    window = spec.watch.window
    return datetime.fromtimestamp(now.timestamp() // window * window, UTC)


def _demo_records(
    call_count: int,
    max_payload: int,
    shift_at: float = SHIFT_AT,
    fit_at: float = FIT_AT,
    end: datetime | None = None,
    topology: Topology | None = None,
) -> tuple[tuple[list[bytes], list[bytes]], dict[str, Any]]:
    """The records of the demo's two phases: its first calls (English; a topic map is
    fitted on them), then the rest, English and, from ``shift_at``, Japanese — a new
    kind of document the drift monitor and the topic map have not seen. Every 5th call
    comes as start + end events; two lone halves and one bad record per dead-letter
    reason are mixed into the first phase. Each part is shuffled (calls arrive out of
    order), the Japanese ones among themselves so that the shift stays clean.
    """
    calls = demo_calls(call_count, shift_at, end)
    familiar, fitted = (
        int(call_count * shift_at),
        min(int(call_count * fit_at), int(call_count * shift_at)),
    )
    english = _shuffled_english()
    parts: list[list[bytes]] = [[], [], []]
    for index, call in enumerate(calls):
        part = parts[0 if index < fitted else 1 if index < familiar else 2]
        if index % 5 == 0:
            first_half, second_half = split_into_events(call)
            part += [orjson.dumps(first_half), orjson.dumps({"end": second_half})]
        else:
            part.append(orjson.dumps(call))
    lone_start, _ = split_into_events(sample_calls(english[-2:-1], seed="lone-start")[0])
    _, lone_end = split_into_events(sample_calls(english[-1:], seed="lone-end")[0])
    bad = malformed_records(max_payload)
    parts[0] += [orjson.dumps(lone_start), orjson.dumps(lone_end), *(raw for _, raw in bad)]
    lone = int(topology is None or topology.selects(parse_call_object(lone_start)))
    for number, part in enumerate(parts):
        random.Random(11 + number).shuffle(part)
    expected = {
        "calls": len(calls) + 2,
        # An end event alone has no op_name, so no topology's source selects it; whether
        # the start alone is selected is the topology's call (text_extract: no, it has
        # no output to judge yet).
        "selected": len(calls) + lone,
        "complete": len(calls),
        "incomplete": 2,
        "dead_letters": Counter(reason for reason, _ in bad),
        "first_calls": fitted,
        "first_selected": fitted + lone,
        "later_started": [
            datetime.fromisoformat(call["started_at"]).timestamp() for call in calls[fitted:]
        ],
    }
    return (parts[0], parts[1] + parts[2]), expected


def _follow(
    worker: WorkerProcess, records: int, calls: int, timeout: float = 120.0
) -> dict[str, float]:
    """Show the worker's progress until every record has an outcome and every call is out."""
    deadline = time.monotonic() + timeout + _MERGE_TIMEOUT
    counts: dict[str, float] = {}
    with tqdm(total=records, unit="rec", desc="ingest") as bar:
        while time.monotonic() < deadline:
            counts = _counts(worker.metrics())
            bar.n = int(counts["records"])
            bar.set_postfix(valid=int(counts["calls"]), dead=int(counts["dead_letter"]))
            bar.refresh()
            if counts["records"] >= records and counts["calls"] >= calls:
                break
            time.sleep(0.25)
    return counts


def _counts(metrics: dict[str, float]) -> dict[str, float]:
    outcomes = {
        outcome: metrics.get(f'weave_stream_ingest_records_total{{outcome="{outcome}"}}', 0.0)
        for outcome in ("valid", "pending", "merged", "duplicate", "conflict", "dead_letter")
    }
    kinds = {
        kind: metrics.get(f'weave_stream_calls_ingested_total{{kind="{kind}"}}', 0.0)
        for kind in ("complete", "start", "end")
    }
    return {
        **outcomes,
        **{f"calls_{kind}": value for kind, value in kinds.items()},
        "records": sum(outcomes.values()),
        "calls": sum(kinds.values()),
    }


async def _dead_letters(settings: Settings) -> list[DeadLetter]:
    return [
        DeadLetter.from_record(record.value, record.key, record.headers)
        async for record in read_topic(settings, settings.topics.dlq)
    ]


def _summary(
    counts: dict[str, float], letters: list[DeadLetter], expected: dict[str, Any], produced: int
) -> bool:
    by_reason = Counter(letter.reason for letter in letters)
    rows = [
        ("records produced", produced),
        ("  complete calls", int(counts["valid"])),
        ("  start/end events held", int(counts["pending"])),
        ("  start/end events that completed a call", int(counts["merged"])),
        ("  dead letters", int(counts["dead_letter"])),
        ("calls ingested (complete)", int(counts["calls_complete"])),
        ("calls ingested, end never came", int(counts["calls_start"])),
        ("calls ingested, start never came", int(counts["calls_end"])),
    ]
    width = max(len(label) for label, _ in rows)
    for label, value in rows:
        click.echo(f"  {label:<{width}}  {value:>6}")
    click.echo("  dead letters by reason:")
    for reason, count in sorted(by_reason.items()):
        click.echo(f"    {reason:<{width - 2}}  {count:>6}")
    balanced = (
        counts["records"] == produced
        and counts["calls"] == expected["calls"]
        and counts["calls_complete"] == expected["complete"]
        and by_reason == expected["dead_letters"]
    )
    verdict = "books balance" if balanced else "books do NOT balance"
    click.secho(
        f"\n  {verdict}: every record has one outcome, every call came out once, "
        "every bad record is in the dead-letter topic with its reason",
        fg="green" if balanced else "red",
    )
    return balanced


COMMANDS = [demo]
