"""Two sets of calls side by side (two time ranges): per group, each metric's change.

``calls(since="7d", until="1d").compare(calls(since="1d"), by="text_extract.doc_class.label",
metrics=["text_extract.faithfulness.score"])`` gives, per class and over all calls,
for each metric: the sizes and means of A and B, the difference of the means
(B - A) with its confidence interval, and Welch's t test (unequal variances,
two-sided), both from scipy. Calls without a value of a metric do not count for it.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import numpy as np
import orjson
import pandas as pd
from scipy import stats

from weave_stream.errors import QueryError

if TYPE_CHECKING:
    from weave_stream.query.calls import Query

__all__ = ["RangeComparison", "compare_queries", "mean_difference"]

ALL = "all"


@dataclass
class RangeComparison:
    """Per group and metric: A and B, B - A with its interval, Welch's t test."""

    label_a: str
    label_b: str
    by: str | None
    confidence: float
    frame: pd.DataFrame

    def format(self, output: str = "table") -> str:
        """As aligned text, CSV or JSON."""
        if output == "csv":
            return str(self.frame.to_csv(index=False))
        if output == "json":
            records = [
                {k: None if isinstance(v, float) and math.isnan(v) else v for k, v in r.items()}
                for r in self.frame.to_dict("records")
            ]
            body = {
                "a": self.label_a,
                "b": self.label_b,
                "by": self.by,
                "confidence": self.confidence,
                "rows": records,
            }
            return orjson.dumps(body, option=orjson.OPT_INDENT_2, default=str).decode()
        text = self.frame.to_string(index=False, float_format=lambda x: f"{x:.4g}", na_rep="-")
        return (
            f"A = {self.label_a}\nB = {self.label_b}\nper {self.by or 'all calls'}\n{text}\n"
            f"# diff = mean B - mean A; ci: its {self.confidence:.0%} interval (Welch); "
            "p: Welch's t test, two-sided; '-' where a side has fewer than 2 values\n"
        )


def mean_difference(a: Any, b: Any, confidence: float = 0.95) -> dict[str, float]:
    """Means of ``a`` and ``b``, ``b - a``, its Welch interval, t and p.

    >>> out = mean_difference([1.0, 2.0, 3.0], [2.0, 3.0, 4.0, 5.0])
    >>> out["diff"], round(out["p"], 3)
    (1.5, 0.144)
    """
    a = np.asarray(a, dtype=float)
    b = np.asarray(b, dtype=float)
    nan = math.nan
    out = {
        "n_a": len(a),
        "n_b": len(b),
        "mean_a": float(a.mean()) if len(a) else nan,
        "mean_b": float(b.mean()) if len(b) else nan,
        "diff": nan,
        "ci_low": nan,
        "ci_high": nan,
        "t": nan,
        "p": nan,
    }
    if len(a) and len(b):
        out["diff"] = out["mean_b"] - out["mean_a"]
    if len(a) > 1 and len(b) > 1:
        result = stats.ttest_ind(b, a, equal_var=False)
        interval = result.confidence_interval(confidence)
        out.update(
            t=float(result.statistic),
            p=float(result.pvalue),
            ci_low=float(interval.low),
            ci_high=float(interval.high),
        )
    return out


def compare_queries(
    a: Query, b: Query, *, metrics: Sequence[str], by: str | None, confidence: float
) -> RangeComparison:
    """Run ``a`` and ``b`` and compare ``metrics`` per ``by`` group (see the module)."""
    if isinstance(metrics, str) or not metrics:
        raise QueryError("compare needs metrics: a list of numeric fields or derived columns")
    if not 0 < confidence < 1:
        raise QueryError(f"confidence must be between 0 and 1, got {confidence}")
    wanted = {name: name for name in [*([by] if by else []), *metrics]}
    frames = [query.select(**wanted).to_pandas() for query in (a, b)]
    for frame in frames:
        for metric in metrics:
            present = frame[metric].dropna()
            if len(present) and not all(
                isinstance(v, int | float) and not isinstance(v, bool) for v in present
            ):
                raise QueryError(
                    f"metric {metric!r} holds non-numbers (e.g. {present.iloc[0]!r}); "
                    "compare a numeric field, such as a score"
                )
    groups: list[Any] = []
    if by:
        seen = pd.concat([frames[0][by], frames[1][by]]).dropna().unique()
        groups = sorted(seen, key=str)
    rows = []
    for group in [*groups, ALL]:
        for metric in metrics:
            sides = []
            for frame in frames:
                part = frame if group == ALL else frame[frame[by] == group]
                sides.append(pd.to_numeric(part[metric], errors="coerce").dropna().to_numpy())
            difference = mean_difference(sides[0], sides[1], confidence)
            rows.append({"group": group, "metric": metric, **difference})
    return RangeComparison(_label(a), _label(b), by, confidence, pd.DataFrame(rows))


def _label(query: Query) -> str:
    spec = query.spec
    text = f"calls started {spec.time.describe()}"
    if spec.op_names:
        text += f", op {', '.join(spec.op_names)}"
    return text
