"""Compare two columns (two classifier versions) or two op refs of one column, per class.

For each class, and over all calls, the two score distributions side by side (n,
mean, standard deviation, median) with Welch's t test (unequal variances) and the
Mann-Whitney U test (two-sided), both from scipy. The inputs are the sampled calls
of an aggregate (:func:`~weave_stream.aggregates.compose.sample_frame`) or any frame of
per-call values; the tests are unpaired, as the two samples need not hold the same
calls.

>>> import pandas as pd
>>> samples = pd.DataFrame({"call_id": [f"c{i}" for i in range(40)],
...                         "doc_class": ["a", "b"] * 20,
...                         "v1": [0.1 * (i % 5) for i in range(40)],
...                         "v2": [0.1 * (i % 5) + 0.3 for i in range(40)]})
>>> result = compare_columns(samples, "v1", "v2", by="doc_class")
>>> row = result.frame.set_index("group").loc["all"]
>>> int(row["n_a"]), round(float(row["mean_b"] - row["mean_a"]), 2), bool(row["welch_p"] < 0.001)
(40, 0.3, True)
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import orjson
import pandas as pd
from matplotlib.figure import Figure
from matplotlib.patches import Patch
from scipy import stats

from weave_stream.aggregates.table import OutputFormat
from weave_stream.errors import QueryError

__all__ = ["Comparison", "compare_columns", "compare_op_refs", "compare_values", "plot_comparison"]

ALL = "all"


@dataclass
class Comparison:
    """Per-class statistics and tests of ``label_a`` against ``label_b``.

    ``values`` is the long frame compared (``group``, ``variant``, ``value``);
    ``frame`` one row per class plus ``all``.
    """

    label_a: str
    label_b: str
    by: str | None
    frame: pd.DataFrame
    values: pd.DataFrame

    def format(self, output: OutputFormat = "table") -> str:
        """As aligned text, CSV or JSON."""
        if output == "csv":
            return str(self.frame.to_csv(index=False))
        if output == "json":
            records = [
                {k: (None if isinstance(v, float) and math.isnan(v) else v) for k, v in r.items()}
                for r in self.frame.to_dict("records")
            ]
            body = {"a": self.label_a, "b": self.label_b, "by": self.by, "groups": records}
            return orjson.dumps(body, option=orjson.OPT_INDENT_2).decode()
        text = self.frame.to_string(index=False, float_format=lambda x: f"{x:.4g}", na_rep="-")
        return (
            f"A = {self.label_a}, B = {self.label_b}, per {self.by or 'all calls'}\n{text}\n"
            "# welch: Welch's t test (unequal variances); mwu: Mann-Whitney U; both two-sided;"
            " '-' where a side has fewer than 2 values\n"
        )


def compare_values(values: pd.DataFrame, label_a: str, label_b: str, by: str | None) -> Comparison:
    """Compare ``value`` where ``variant`` is ``label_a`` with ``label_b``, per ``group``."""
    rows = []
    groups = sorted(values["group"].astype(str).unique()) if by else []
    for group in [*groups, ALL]:
        part = values if group == ALL else values[values["group"].astype(str) == group]
        a = part.loc[part["variant"] == label_a, "value"].astype(float).to_numpy()
        b = part.loc[part["variant"] == label_b, "value"].astype(float).to_numpy()
        rows.append({"group": group, **_statistics(a, b)})
    return Comparison(label_a, label_b, by, pd.DataFrame(rows), values)


def _statistics(a: Any, b: Any) -> dict[str, float]:
    nan = math.nan
    out = {
        "n_a": len(a),
        "n_b": len(b),
        "mean_a": a.mean() if len(a) else nan,
        "mean_b": b.mean() if len(b) else nan,
        "std_a": a.std(ddof=1) if len(a) > 1 else nan,
        "std_b": b.std(ddof=1) if len(b) > 1 else nan,
        "median_a": float(pd.Series(a).median()) if len(a) else nan,
        "median_b": float(pd.Series(b).median()) if len(b) else nan,
        "welch_t": nan,
        "welch_p": nan,
        "mwu_u": nan,
        "mwu_p": nan,
    }
    if len(a) > 1 and len(b) > 1:
        welch = stats.ttest_ind(a, b, equal_var=False)
        mwu = stats.mannwhitneyu(a, b, alternative="two-sided")
        out.update(
            welch_t=float(welch.statistic),
            welch_p=float(welch.pvalue),
            mwu_u=float(mwu.statistic),
            mwu_p=float(mwu.pvalue),
        )
    return {k: float(v) if not isinstance(v, int) else v for k, v in out.items()}


def compare_columns(
    samples: pd.DataFrame, column_a: str, column_b: str, *, by: str | None = None
) -> Comparison:
    """Two columns of the same calls (e.g. two classifier versions), per class ``by``."""
    for column in (column_a, column_b, *([by] if by else [])):
        if column not in samples:
            known = sorted(map(str, samples.columns))
            raise QueryError(f"no column {column!r} in the samples; they have {known}")
    parts = [
        pd.DataFrame(
            {
                "group": samples[by] if by else ALL,
                "variant": column,
                "value": pd.to_numeric(samples[column], errors="coerce"),
            }
        )
        for column in (column_a, column_b)
    ]
    values = pd.concat(parts, ignore_index=True).dropna(subset=["value"])
    return compare_values(values, column_a, column_b, by)


def compare_op_refs(
    samples: pd.DataFrame, column: str, ref_a: str, ref_b: str, *, by: str | None = None
) -> Comparison:
    """Values of one column computed by two op refs (``column.op_ref`` tells them apart)."""
    refs = f"{column}.op_ref"
    if refs not in samples:
        raise QueryError(f"samples carry no op refs for {column!r} (no {refs!r} column)")
    found = set(samples[refs].dropna())
    absent = [ref for ref in (ref_a, ref_b) if ref not in found]
    if absent:
        raise QueryError(f"no sampled value of {column!r} by {absent}; refs seen: {sorted(found)}")
    chosen = samples[samples[refs].isin([ref_a, ref_b])]
    values = pd.DataFrame(
        {
            "group": chosen[by] if by else ALL,
            "variant": chosen[refs],
            "value": pd.to_numeric(chosen[column], errors="coerce"),
        }
    )
    return compare_values(values.dropna(subset=["value"]), ref_a, ref_b, by)


def plot_comparison(comparison: Comparison, path: str | Path, unit: str | None = None) -> Path:
    """Box plots of A and B side by side per class; sizes and p-values under each pair."""
    groups = list(comparison.frame["group"])
    figure = Figure(figsize=(max(6.0, 1.8 * len(groups) + 2), 5), layout="constrained")
    ax = figure.subplots()
    values = comparison.values
    for index, group in enumerate(groups):
        part = values if group == ALL else values[values["group"].astype(str) == group]
        for offset, label, color in (
            (-0.2, comparison.label_a, "C0"),
            (0.2, comparison.label_b, "C1"),
        ):
            data = part.loc[part["variant"] == label, "value"].astype(float)
            if len(data):
                box = ax.boxplot([data], positions=[index + offset], widths=0.35, patch_artist=True)
                for patch in box["boxes"]:
                    patch.set_facecolor(color)
                    patch.set_alpha(0.6)
    ticks = [
        f"{row['group']}\nn={row['n_a']}/{row['n_b']}\n"
        f"Welch p={row['welch_p']:.2g}\nMWU p={row['mwu_p']:.2g}"
        for row in comparison.frame.to_dict("records")
    ]
    ax.set_xticks(range(len(groups)), ticks)
    ax.set_xlabel(comparison.by or "calls")
    ax.set_ylabel(f"value ({unit})" if unit else "value")
    ax.legend(
        handles=[_patch("C0", comparison.label_a), _patch("C1", comparison.label_b)],
        loc="lower right",
        fontsize="small",
    )
    ax.set_title(
        f"{comparison.label_a} (A) vs {comparison.label_b} (B) per {comparison.by or 'all'}"
    )
    ax.grid(True, axis="y", alpha=0.3)
    target = Path(path)
    target.parent.mkdir(parents=True, exist_ok=True)
    figure.savefig(target, dpi=110)
    return target


def _patch(color: str, label: str) -> Patch:
    return Patch(facecolor=color, alpha=0.6, label=label)
