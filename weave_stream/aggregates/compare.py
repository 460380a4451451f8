"""Compare two columns (two classifier versions) or two op refs of one column, per class.

Trials are averaged per call first: the unit is the call, never the trial (ten
trials of one call are one observation). Then, for each class and over all calls:

* when both sides cover the same calls (two columns of the same calls, or two op refs
  run on the same calls), the comparison is **paired**: the mean difference B - A with
  a BCa bootstrap 95 % interval, the paired t test and the Wilcoxon signed-rank test
  (scores), or the exact McNemar test (a pass/fail value per call);
* otherwise it is **unpaired**: Welch's t test (unequal variances, with its 95 %
  interval of the difference) and the Mann-Whitney U test.

Every row says which test gave its ``p_value`` (``test``); ``p_holm`` adjusts the
per-class p-values for testing several classes at once (Holm). The statistics come
from :mod:`weave_stream.aggregates.significance` (scipy underneath). The inputs are
the sampled calls of an aggregate (:func:`~weave_stream.aggregates.compose.sample_frame`)
or any frame of per-call values.

>>> import pandas as pd
>>> samples = pd.DataFrame({"call_id": [f"c{i}" for i in range(40)],
...                         "doc_class": ["a", "b"] * 20,
...                         "v1": [0.1 * (i % 5) for i in range(40)],
...                         "v2": [0.1 * (i % 5) + 0.3 for i in range(40)]})
>>> result = compare_columns(samples, "v1", "v2", by="doc_class")
>>> row = result.frame.set_index("group").loc["all"]
>>> int(row["n_a"]), round(float(row["difference"]), 2), row["test"], bool(row["p_value"] < 0.001)
(40, 0.3, 'paired t', True)
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import orjson
import pandas as pd
from matplotlib.figure import Figure
from matplotlib.patches import Patch
from scipy import stats

from weave_stream.aggregates.significance import holm, paired_test, unpaired_test
from weave_stream.aggregates.table import OutputFormat
from weave_stream.errors import QueryError

__all__ = ["Comparison", "compare_columns", "compare_op_refs", "compare_values", "plot_comparison"]

ALL = "all"
NOTE = (
    "# trials are averaged per call first (the unit is the call). paired (both sides cover the"
    " same calls): difference = mean of B - A per call, 95% CI by BCa bootstrap over calls,"
    " p from the paired t test (Wilcoxon signed-rank in wilcoxon_p), or McNemar exact for"
    " pass/fail; unpaired: Welch's t (95% CI of the difference) and Mann-Whitney U (mwu_p);"
    " all two-sided; p_holm: Holm-adjusted over the classes; '-' where a side has fewer than"
    " 2 calls"
)


@dataclass
class Comparison:
    """Per-class statistics and tests of ``label_a`` against ``label_b``.

    ``values`` is the long frame compared, one row per call and side (``group``,
    ``variant``, ``call_id``, ``value``: the mean over the call's trials); ``frame``
    one row per class plus ``all``, its ``test`` column naming the test behind ``p_value``.
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
        header = f"A = {self.label_a}, B = {self.label_b}, per {self.by or 'all calls'}"
        return f"{header}\n{text}\n{NOTE}\n"


def compare_values(values: pd.DataFrame, label_a: str, label_b: str, by: str | None) -> Comparison:
    """Compare ``value`` where ``variant`` is ``label_a`` with ``label_b``, per ``group``.

    Rows of one ``call_id`` (its trials) are averaged first; without a ``call_id``
    column every row is its own unit (and the test is unpaired).
    """
    per_call = _per_call(values)
    rows = []
    groups = sorted(per_call["group"].astype(str).unique()) if by else []
    for group in [*groups, ALL]:
        part = per_call if group == ALL else per_call[per_call["group"].astype(str) == group]
        a = part[part["variant"] == label_a].set_index("call_id")["value"].astype(float)
        b = part[part["variant"] == label_b].set_index("call_id")["value"].astype(float)
        rows.append({"group": group, **_statistics(a, b)})
    frame = pd.DataFrame(rows)
    classes = frame["group"] != ALL
    frame["p_holm"] = math.nan
    if classes.any():
        frame.loc[classes, "p_holm"] = holm(list(frame.loc[classes, "p_value"]))
    return Comparison(label_a, label_b, by, frame, per_call)


def _per_call(values: pd.DataFrame) -> pd.DataFrame:
    frame = values.copy()
    if "call_id" not in frame:
        frame["call_id"] = [f"row{i}" for i in range(len(frame))]
    frame["value"] = frame["value"].astype(float)
    keys = ["group", "variant", "call_id"]
    means: pd.DataFrame = frame.groupby(keys, sort=False)[["value"]].mean().reset_index()
    return means


def _statistics(a: pd.Series, b: pd.Series) -> dict[str, Any]:
    nan = math.nan
    out: dict[str, Any] = {
        "n_a": len(a),
        "n_b": len(b),
        "mean_a": float(a.mean()) if len(a) else nan,
        "mean_b": float(b.mean()) if len(b) else nan,
        "std_a": float(a.std(ddof=1)) if len(a) > 1 else nan,
        "std_b": float(b.std(ddof=1)) if len(b) > 1 else nan,
        "median_a": float(a.median()) if len(a) else nan,
        "median_b": float(b.median()) if len(b) else nan,
        "difference": nan,
        "ci_low": nan,
        "ci_high": nan,
        "test": "-",
        "p_value": nan,
        "paired_t": nan,
        "wilcoxon_p": nan,
        "welch_t": nan,
        "welch_p": nan,
        "mwu_u": nan,
        "mwu_p": nan,
    }
    if len(a) and len(b):
        out["difference"] = out["mean_b"] - out["mean_a"]
    paired = len(a) > 0 and a.index.is_unique and set(a.index) == set(b.index)
    if paired:
        result = paired_test(a.to_numpy(), b.reindex(a.index).to_numpy())
        out.update(ci_low=result.ci_low, ci_high=result.ci_high, test=result.test)
        out.update(p_value=result.p_value, wilcoxon_p=result.wilcoxon_p)
        if result.test == "paired t":
            out["paired_t"] = result.statistic
    elif len(a) > 1 and len(b) > 1:
        result_u = unpaired_test(a.to_numpy(), b.to_numpy())
        out.update(test="Welch t", p_value=result_u.welch_p, welch_t=result_u.welch_t)
        out.update(welch_p=result_u.welch_p, mwu_u=result_u.mwu_u, mwu_p=result_u.mwu_p)
        out["ci_low"], out["ci_high"] = _welch_interval(a.to_numpy(), b.to_numpy())
    return out


def _welch_interval(a: np.ndarray, b: np.ndarray) -> tuple[float, float]:
    if float(np.std(a)) == 0.0 and float(np.std(b)) == 0.0:
        return math.nan, math.nan
    interval = stats.ttest_ind(b, a, equal_var=False).confidence_interval(0.95)
    return float(interval.low), float(interval.high)


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
                **({"call_id": samples["call_id"]} if "call_id" in samples else {}),
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
            **({"call_id": chosen["call_id"]} if "call_id" in chosen else {}),
        }
    )
    return compare_values(values.dropna(subset=["value"]), ref_a, ref_b, by)


def plot_comparison(comparison: Comparison, path: str | Path, unit: str | None = None) -> Path:
    """Box plots of A and B (per-call means) side by side per class; the test under each pair."""
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
        f"{row['group']}\nn={row['n_a']}/{row['n_b']}\n{row['test']} p={row['p_value']:.2g}"
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
