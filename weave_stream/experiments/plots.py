"""The plots of a comparison, drawn with matplotlib's object API (Agg; no pyplot, no display).

* ``by_class`` -- each variant's mean score per class (and over all examples), the
  error bars its 95 % interval over examples (t, or Wilson for pass/fail);
* ``examples`` -- each example as a point on two score dimensions at the mean of its
  trials, error bars one standard deviation across trials: by default the score under
  A (x) against the score under B (y), with the line of no change; with
  ``dimensions=(x, y)`` two scores, one series per variant;
* ``differences`` -- the paired difference B - A per class and overall, with its
  bootstrap interval, against the line of no difference.

Each series carries its variant or class as its label, so a test can read the
figures back (``figure.axes[0].containers``).
"""

from __future__ import annotations

from typing import TYPE_CHECKING

import numpy as np
import pandas as pd
from matplotlib.axes import Axes
from matplotlib.figure import Figure

from weave_stream.aggregates.significance import mean_interval

if TYPE_CHECKING:
    from weave_stream.experiments.compare import ExperimentComparison

__all__ = ["comparison_figures", "draw_by_class", "draw_differences", "draw_examples"]

ALL = "all"


def comparison_figures(comparison: ExperimentComparison) -> dict[str, Figure]:
    """``by_class``, ``examples`` and ``differences``, each its own figure."""
    figures = {}
    for name, draw in (
        ("by_class", draw_by_class),
        ("examples", draw_examples),
        ("differences", draw_differences),
    ):
        figure = Figure(figsize=(9, 5.5), layout="constrained")
        draw(figure.subplots(), comparison)
        figures[name] = figure
    return figures


def draw_by_class(ax: Axes, comparison: ExperimentComparison) -> None:
    """Mean per class for A and B side by side, error bars = 95 % CI over examples."""
    frame = _paired_examples(comparison)
    classes = [c for c in comparison.frame["class"] if c != ALL] + [ALL]
    positions = np.arange(len(classes))
    for offset, variant, column in (
        (-0.12, comparison.a, "mean_a"),
        (0.12, comparison.b, "mean_b"),
    ):
        means, low, high = [], [], []
        for group in classes:
            part = frame if group == ALL else frame[frame["class"] == group]
            interval = mean_interval(part[column].to_numpy())
            means.append(interval.mean)
            low.append(max(interval.mean - interval.low, 0.0) if interval.n > 1 else 0.0)
            high.append(max(interval.high - interval.mean, 0.0) if interval.n > 1 else 0.0)
        ax.errorbar(
            positions + offset,
            means,
            yerr=[np.nan_to_num(low), np.nan_to_num(high)],
            fmt="o",
            capsize=4,
            label=variant,
        )
    counts = {row["class"]: row["examples"] for row in comparison.frame.to_dict("records")}
    ax.set_xticks(positions, [f"{c}\nn={counts.get(c, 0)}" for c in classes])
    ax.set_xlabel(comparison.by or "all examples")
    ax.set_ylabel(f"{comparison.score}: mean of per-example means ± 95% CI")
    ax.set_title(f"{comparison.score} by class: {comparison.a} vs {comparison.b}")
    ax.legend(title="variant", fontsize="small")
    ax.grid(True, axis="y", alpha=0.3)


def draw_examples(ax: Axes, comparison: ExperimentComparison) -> None:
    """Each example on two score dimensions; error bars = ±1 s.d. across its trials."""
    if comparison.dimensions is None:
        frame = _paired_examples(comparison)
        ax.errorbar(
            frame["mean_a"],
            frame["mean_b"],
            xerr=frame["trial_sd_a"].fillna(0),
            yerr=frame["trial_sd_b"].fillna(0),
            fmt="o",
            markersize=4,
            capsize=2,
            alpha=0.7,
            label="examples",
        )
        values = pd.concat([frame["mean_a"], frame["mean_b"]])
        low, high = (float(values.min()), float(values.max())) if len(values) else (0.0, 1.0)
        ax.plot([low, high], [low, high], color="grey", linestyle="--", label="no change")
        ax.set_xlabel(f"{comparison.score} under {comparison.a} (A), mean over trials")
        ax.set_ylabel(f"{comparison.score} under {comparison.b} (B), mean over trials")
        ax.set_title(f"each example under A and B ({len(frame)} examples; bars: ±1 s.d. of trials)")
    else:
        x, y = comparison.dimensions
        result = comparison.result
        for variant in (comparison.a, comparison.b):
            xs = result.per_example(x).query("variant == @variant").set_index("example")
            ys = result.per_example(y).query("variant == @variant").set_index("example")
            both = xs.merge(ys, left_index=True, right_index=True, suffixes=("_x", "_y")).dropna(
                subset=["mean_x", "mean_y"]
            )
            ax.errorbar(
                both["mean_x"],
                both["mean_y"],
                xerr=both["trial_sd_x"].fillna(0),
                yerr=both["trial_sd_y"].fillna(0),
                fmt="o",
                markersize=4,
                capsize=2,
                alpha=0.7,
                label=variant,
            )
        ax.set_xlabel(f"{x} (mean over trials)")
        ax.set_ylabel(f"{y} (mean over trials)")
        ax.set_title(f"each example on {x} and {y} (bars: ±1 s.d. across trials)")
    ax.legend(fontsize="small")
    ax.grid(True, alpha=0.3)


def draw_differences(ax: Axes, comparison: ExperimentComparison) -> None:
    """The paired difference B - A per class and overall, with its bootstrap 95 % CI."""
    frame = comparison.frame
    positions = np.arange(len(frame))
    low = (frame["difference"] - frame["ci_low"]).clip(lower=0).fillna(0)
    high = (frame["ci_high"] - frame["difference"]).clip(lower=0).fillna(0)
    ax.errorbar(
        frame["difference"],
        positions,
        xerr=[low.to_numpy(), high.to_numpy()],
        fmt="s",
        capsize=4,
        label="B - A (95% bootstrap CI)",
    )
    ax.axvline(0.0, color="grey", linestyle="--")
    labels = [
        f"{row['class']} (n={row['examples']}, p={row['p_value']:.2g})"
        for row in frame.to_dict("records")
    ]
    ax.set_yticks(positions, labels)
    ax.set_xlabel(f"{comparison.score}: {comparison.b} - {comparison.a}, paired per example")
    ax.set_title(f"paired difference by class ({frame['test'].iloc[-1]})")
    ax.legend(fontsize="small")
    ax.grid(True, axis="x", alpha=0.3)


def _paired_examples(comparison: ExperimentComparison) -> pd.DataFrame:
    return comparison.examples.dropna(subset=["mean_a", "mean_b"])
