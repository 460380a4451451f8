"""``weave-stream experiment FILE``: run an experiment written in YAML, print and plot it.

It prices the cells not in the result cache (``--plan`` stops there; ``--budget``
refuses to start past a cost), computes them, and prints what was computed per
variant, the failures per variant, the summary (per-example means, CIs over
examples, trial spread), the comparison the file names (paired, per class, Holm)
and the failure kinds of its explain column; tables (CSV) and plots (PNG) go to
``--out``. The cache is the one ``weave-stream run`` uses (``<data_dir>/cache``):
a second run computes only new cells, and ``--cached-only`` computes nothing.
"""

from __future__ import annotations

import asyncio
import dataclasses
from pathlib import Path

import click

from weave_stream.cli.options import fail, settings_options
from weave_stream.columns.cache import results_cache
from weave_stream.config import Settings
from weave_stream.errors import WeaveStreamError
from weave_stream.experiments.loader import ExperimentFile, load_experiment
from weave_stream.experiments.result import ExperimentResult

__all__ = ["COMMANDS", "STANDIN_MODEL", "experiment_command"]

STANDIN_MODEL = "stand-in"  # the judge model's name while the stand-in answers


@click.command(name="experiment")
@click.argument("file", type=click.Path(exists=True, dir_okay=False, path_type=Path))
@click.option("--plan", "plan_only", is_flag=True, help="Show what would be computed; run nothing.")
@click.option("--budget", type=click.FloatRange(min=0), help="Refuse to start past this many USD.")
@click.option("--trials", type=click.IntRange(min=1), help="Trials (overrides the file's).")
@click.option(
    "--compare", "pair", nargs=2, metavar="A B", help="Compare these variants (B against A)."
)
@click.option("--common", is_flag=True, help="Compare on the examples both variants cover.")
@click.option("--cached-only", is_flag=True, help="Read cached cells only; compute nothing.")
@click.option(
    "--out",
    "out_dir",
    type=click.Path(file_okay=False, path_type=Path),
    help="Where tables and plots go (default: <data_dir>/experiments/<name>).",
)
@click.option(
    "--cache-dir",
    type=click.Path(file_okay=False, path_type=Path),
    help="Directory of the result cache (default: <data_dir>/cache).",
)
@click.option(
    "--standin-judge",
    is_flag=True,
    help="Answer judge and explain requests with the loopback stand-in (word overlap, NOT an LLM).",
)
@settings_options("judge_base_url", "judge_model", "data_dir")
def experiment_command(
    file: Path,
    plan_only: bool,
    budget: float | None,
    trials: int | None,
    pair: tuple[str, str] | None,
    common: bool,
    cached_only: bool,
    out_dir: Path | None,
    cache_dir: Path | None,
    standin_judge: bool,
    settings: Settings,
) -> None:
    """Run the experiment in FILE (YAML): variants x examples x trials, through the cache."""
    directory = cache_dir or settings.data_dir / "cache"
    if not standin_judge:
        _run(
            file, settings, directory, plan_only, budget, trials, pair, common, cached_only, out_dir
        )
        return
    from weave_stream.demo.judge_standin import StandInJudge

    with StandInJudge() as standin:
        click.secho(
            f"judge: the stand-in on {standin.base_url} (word overlap, not an LLM), as model "
            f"{STANDIN_MODEL!r}: its answers are cached apart from a real model's",
            fg="yellow",
            err=True,
        )
        # The endpoint is not part of a judge's version, its model is: under the configured
        # model's name, the stand-in's answers would later be taken for that model's.
        with_standin = settings.model_copy(
            update={"judge_base_url": standin.base_url, "judge_model": STANDIN_MODEL}
        )
        _run(
            file,
            with_standin,
            directory,
            plan_only,
            budget,
            trials,
            pair,
            common,
            cached_only,
            out_dir,
        )


def _run(
    file: Path,
    settings: Settings,
    cache_dir: Path,
    plan_only: bool,
    budget: float | None,
    trials: int | None,
    pair: tuple[str, str] | None,
    common: bool,
    cached_only: bool,
    out_dir: Path | None,
) -> None:
    with results_cache(settings, cache_dir) as cache:
        try:
            spec = load_experiment(file, settings=settings, cache=cache, trials=trials)
            experiment = spec.experiment
            if plan_only:
                click.echo(experiment.plan().render())
                return
            if cached_only:
                result = experiment.load()
            else:
                result = asyncio.run(experiment.arun(budget=budget))
            if pair is not None:
                spec = dataclasses.replace(spec, compare=pair)
            out = out_dir or settings.data_dir / "experiments" / experiment.name
            _report(spec, result, out, common)
        except WeaveStreamError as exc:
            fail(str(exc))


def _report(spec: ExperimentFile, result: ExperimentResult, out: Path, common: bool) -> None:
    out.mkdir(parents=True, exist_ok=True)
    for cells in result.variants:
        stats = cells.stats
        values = sum(c.values for c in stats.columns.values())
        click.echo(
            f"variant {cells.variant}: {values} cells ({stats.computed} computed, "
            f"{stats.cache_hits} from the cache)",
            err=True,
        )
    failures = result.failures()
    failed = failures[(failures["failed"] > 0) | (failures["not_computed"] > 0)]
    if len(failed):
        click.secho("failed or missing cells (kept out of every mean, counted below):", fg="yellow")
        click.echo(failed.to_string(index=False))
    written = [out / "cells.csv"]
    result.cells().to_csv(written[0], index=False)
    if result.scores:
        summary = result.summary()
        click.secho("\nsummary (unit = example; trials averaged per example first)", bold=True)
        click.echo(summary.to_string(index=False, float_format=lambda x: f"{x:.4g}", na_rep="-"))
        summary.to_csv(out / "summary.csv", index=False)
        written.append(out / "summary.csv")
    if spec.compare is not None:
        comparison = result.compare(*spec.compare, common=common)
        click.secho(f"\ncompare {spec.compare[1]} (B) with {spec.compare[0]} (A)", bold=True)
        click.echo(comparison.render())
        comparison.to_pandas().to_csv(out / "comparison.csv", index=False)
        comparison.changed().to_csv(out / "changed.csv", index=False)
        written += [out / "comparison.csv", out / "changed.csv", *comparison.plot(out)]
    if spec.explain is not None:
        kinds = result.failure_kinds(spec.explain)
        click.secho("", nl=False)
        click.echo("\n" + kinds.render())
        kinds.to_pandas().to_csv(out / "failure_kinds.csv", index=False)
        written.append(out / "failure_kinds.csv")
    for path in written:
        click.echo(f"wrote {path}", err=True)


COMMANDS = [experiment_command]
