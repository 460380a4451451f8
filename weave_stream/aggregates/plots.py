"""PNG plots of an aggregate: a score per class over time, counts per class, and trials.

Drawn with matplotlib's object API on the Agg canvas (no pyplot, no global backend
switch, no display needed). Each ``draw_*`` function fills one ``Axes``;
:func:`plot_aggregate` puts them on one figure and writes it.

* :func:`draw_scores_over_time` -- the mean of a column per class and window, with
  its 95 % confidence interval as error bars;
* :func:`draw_counts_stacked` -- rows per window, stacked by class;
* :func:`draw_trial_scatter` -- each sampled call on two score dimensions, at the
  mean of its trials, with error bars of one standard deviation across trials.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from pathlib import Path

import pandas as pd
from matplotlib.axes import Axes
from matplotlib.dates import AutoDateLocator, ConciseDateFormatter
from matplotlib.figure import Figure

from weave_stream.aggregates.table import AggregateTable
from weave_stream.errors import QueryError

__all__ = ["draw_counts_stacked", "draw_scores_over_time", "draw_trial_scatter", "plot_aggregate"]


def _labels(frame: pd.DataFrame, keys: Sequence[str]) -> pd.Series:
    if not keys:
        return pd.Series("all", index=frame.index)
    parts = [frame[key].map(lambda v: "(none)" if v is None else str(v)) for key in keys]
    label = parts[0]
    for part in parts[1:]:
        label = label + " / " + part
    return label


def _with_unit(text: str, unit: str | None) -> str:
    return f"{text} ({unit})" if unit else text


def _time_axis(ax: Axes) -> None:
    locator = AutoDateLocator()
    ax.xaxis.set_major_locator(locator)
    ax.xaxis.set_major_formatter(ConciseDateFormatter(locator))
    ax.set_xlabel("window start (UTC)")
    ax.grid(True, alpha=0.3)


def draw_scores_over_time(
    ax: Axes, table: AggregateTable, column: str, unit: str | None = None
) -> None:
    """Mean of ``column`` per group over time, error bars = 95 % CI of the mean."""
    mean = f"{column}.mean"
    frame = table.frame
    if mean not in frame:
        raise QueryError(
            f"aggregate {table.aggregate!r} has no {mean!r}; add 'mean' and 'ci95' to the "
            f"metrics of {column!r} to plot it"
        )
    has_ci = f"{column}.ci95_low" in frame
    labels = _labels(frame, table.group_keys)
    for label in sorted(labels.unique()):
        part = frame[labels == label]
        errors = None
        if has_ci:
            low = (part[mean] - part[f"{column}.ci95_low"]).clip(lower=0).fillna(0)
            high = (part[f"{column}.ci95_high"] - part[mean]).clip(lower=0).fillna(0)
            errors = [low.to_numpy(), high.to_numpy()]
        ax.errorbar(
            part["window_start"].dt.tz_localize(None),
            part[mean],
            yerr=errors,
            marker="o",
            markersize=4,
            capsize=3,
            linewidth=1.2,
            label=label,
        )
    bars = "mean ± 95% CI" if has_ci else "mean (no ci95 metric: no error bars)"
    ax.set_ylabel(_with_unit(f"{column}: {bars}", unit))
    by = " / ".join(table.group_keys) or "all calls"
    ax.set_title(f"{column} per {by} over time")
    ax.legend(title=by, fontsize="small", loc="best")
    _time_axis(ax)


def draw_counts_stacked(ax: Axes, table: AggregateTable) -> None:
    """Rows per window, one stacked bar segment per group."""
    frame = table.frame
    labels = _labels(frame, table.group_keys)
    counts = frame.assign(label=labels).pivot_table(
        index="window_start", columns="label", values="rows", aggfunc="sum", fill_value=0
    )
    starts = pd.DatetimeIndex(counts.index).tz_localize(None)
    size = (frame["window_end"] - frame["window_start"]).min() if not frame.empty else None
    gaps = pd.Series(starts).diff().dropna()
    slot = gaps.min() if len(gaps) else size  # hopping windows overlap: one bar per hop
    days = slot.total_seconds() / 86400 * 0.85 if slot is not None else 0.01
    bottom = pd.Series(0, index=counts.index)
    for label in counts.columns:
        ax.bar(starts, counts[label], width=days, bottom=bottom, align="edge", label=str(label))
        bottom = bottom + counts[label]
    by = " / ".join(table.group_keys) or "all calls"
    minutes = f"{size.total_seconds() / 60:g}-minute " if size is not None else ""
    ax.set_ylabel(f"rows per {minutes}window (calls)")
    ax.set_title(f"calls per {minutes}window, stacked by {by} (bars at window starts)")
    ax.legend(title=by, fontsize="small", loc="best")
    _time_axis(ax)


def draw_trial_scatter(
    ax: Axes,
    samples: pd.DataFrame,
    x: str,
    y: str,
    by: str | None = None,
    units: Mapping[str, str] | None = None,
    max_calls: int = 300,
) -> None:
    """Each call at the mean of its trials on ``x`` and ``y``; bars: ±1 s.d. across trials.

    At most ``max_calls`` calls are drawn (a seeded random choice), so points stay readable.
    """
    units = units or {}
    missing = [c for c in (x, y) if c not in samples]
    if missing:
        raise QueryError(f"samples have no column {missing}; they have {sorted(samples.columns)}")
    points = samples.dropna(subset=[x, y])
    keys = ["call_id", by] if by else ["call_id"]
    per_call = points.groupby(keys, dropna=False)[[x, y]].agg(["mean", "std", "count"])
    per_call = per_call.reset_index()
    total = len(per_call)
    if total > max_calls:
        per_call = per_call.sample(n=max_calls, random_state=0)
    classes = per_call[by] if by else pd.Series("all", index=per_call.index)
    for label in sorted(classes.astype(str).unique()):
        part = per_call[classes.astype(str) == label]
        ax.errorbar(
            part[(x, "mean")],
            part[(y, "mean")],
            xerr=part[(x, "std")].fillna(0),
            yerr=part[(y, "std")].fillna(0),
            fmt="o",
            markersize=4,
            capsize=2,
            alpha=0.75,
            label=label,
        )
    trials = int(per_call[(x, "count")].max()) if not per_call.empty else 0
    ax.set_xlabel(_with_unit(f"{x} (mean over trials)", units.get(x)))
    ax.set_ylabel(_with_unit(f"{y} (mean over trials)", units.get(y)))
    note = "±1 s.d. across trials" if trials > 1 else "1 trial per call: no spread to show"
    shown = f"{len(per_call)} of {total}" if total > len(per_call) else f"{total}"
    ax.set_title(f"{y} vs {x}: {shown} sampled calls, up to {trials} trials ({note})")
    if by:
        ax.legend(title=by, fontsize="small", loc="best")
    ax.grid(True, alpha=0.3)


def plot_aggregate(
    table: AggregateTable,
    path: str | Path,
    *,
    score: str,
    samples: pd.DataFrame | None = None,
    scatter: tuple[str, str] | None = None,
    scatter_by: str | None = None,
    units: Mapping[str, str] | None = None,
) -> Path:
    """Write the score-over-time, stacked-count and (with ``samples``) trial-scatter panels."""
    units = units or {}
    panels = 3 if samples is not None and scatter is not None and not samples.empty else 2
    figure = Figure(figsize=(11, 4.2 * panels), layout="constrained")
    axes = figure.subplots(panels, 1)
    draw_scores_over_time(axes[0], table, score, units.get(score))
    draw_counts_stacked(axes[1], table)
    if panels == 3 and samples is not None and scatter is not None:
        draw_trial_scatter(axes[2], samples, scatter[0], scatter[1], scatter_by, units)
    figure.suptitle(
        f"aggregate {table.aggregate}: {len(table.frame)} window x group rows, "
        f"{table.late_rows} late row(s) not counted"
    )
    target = Path(path)
    target.parent.mkdir(parents=True, exist_ok=True)
    figure.savefig(target, dpi=110)
    return target
