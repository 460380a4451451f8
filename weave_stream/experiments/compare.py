"""The eval-compare view, in code: variant B against variant A on the same examples.

:func:`compare_variants` (``result.compare("a", "b")``) pairs the two variants
example by example, after averaging each example's trials:

* overall and per class, the mean difference B - A with a BCa bootstrap interval over
  examples, and the p-value of the paired t test (Wilcoxon signed-rank beside it) for
  scores, or of the exact McNemar test for pass/fail examples (one trial each);
* Holm's adjustment of the per-class p-values (``p_holm``): testing ten classes at
  the 5 % level finds a "difference" by chance far more often than 5 % of the time;
* the examples that changed the most, regressions first, with their inputs and both
  outputs;
* plots (see :mod:`weave_stream.experiments.plots`).

Examples are paired only when both variants cover them: different coverage (a data
slice, a filter) is refused unless ``common=True`` asks for the shared examples.
An example that failed in either variant is left out of the pairs and counted in
``failed_a`` / ``failed_b``, never silently.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

import pandas as pd

from weave_stream.aggregates.significance import holm, paired_test
from weave_stream.errors import ExperimentError

if TYPE_CHECKING:
    from matplotlib.figure import Figure

    from weave_stream.experiments.result import ExperimentResult

__all__ = ["ExperimentComparison", "compare_variants"]

ALL = "all"


@dataclass
class ExperimentComparison:
    """Variant ``b`` against variant ``a`` on ``score``: per class, per example, plots.

    ``frame`` has one row per class and ``all``; ``examples`` one row per paired example
    (``mean_a``, ``mean_b``, ``difference``, trial spreads, ``input``, ``output_a``,
    ``output_b``), regressions first.
    """

    result: ExperimentResult
    a: str
    b: str
    score: str
    by: str | None
    frame: pd.DataFrame
    examples: pd.DataFrame
    higher_is_better: bool = True
    dimensions: tuple[str, str] | None = None

    def to_pandas(self) -> pd.DataFrame:
        """The per-class and overall rows as a DataFrame."""
        return self.frame.copy()

    @property
    def overall(self) -> dict[str, Any]:
        """The ``all`` row as a dict."""
        return dict(self.frame[self.frame["class"] == ALL].iloc[0])

    def changed(self, top: int | None = None) -> pd.DataFrame:
        """The examples that changed, regressions first (largest first), then improvements."""
        changed = self.examples[self.examples["difference"] != 0]
        return changed if top is None else changed.head(top)

    def render(self, top: int = 5) -> str:
        """The comparison as text for a terminal."""
        row = self.overall
        lines = [
            f"Experiment {self.result.experiment!r}: {self.b} (B) vs {self.a} (A) on "
            f"{self.score!r}, {row['examples']} examples paired "
            f"({row['failed_a']} failed in A, {row['failed_b']} failed in B, left out)",
            f"overall: B - A = {row['difference']:+.4g} "
            f"[95% CI {row['ci_low']:+.4g}, {row['ci_high']:+.4g}], "
            f"{row['test']} p = {row['p_value']:.3g}{_second(row)}",
            "",
        ]
        shown = self.frame.drop(columns=["improved", "regressed"])
        lines.append(shown.to_string(index=False, float_format=lambda x: f"{x:.4g}", na_rep="-"))
        changed = self.changed(top)
        if len(changed):
            lines += ["", f"examples that changed the most (regressions first, top {top}):"]
            table = changed[["example_id", "class", "mean_a", "mean_b", "difference"]].copy()
            table["input"] = changed["input"].map(_short)
            table["output_a"] = changed["output_a"].map(_short)
            table["output_b"] = changed["output_b"].map(_short)
            lines.append(table.to_string(index=False, float_format=lambda x: f"{x:.3g}"))
        lines += ["", NOTE]
        return "\n".join(lines)

    def figures(self) -> dict[str, Figure]:
        """The three plots as matplotlib figures (read their series back in tests)."""
        from weave_stream.experiments.plots import comparison_figures

        return comparison_figures(self)

    def plot(self, directory: str | Path) -> list[Path]:
        """Write the plots as PNG files into ``directory``; their paths."""
        target = Path(directory)
        target.mkdir(parents=True, exist_ok=True)
        paths = []
        for name, figure in self.figures().items():
            path = target / f"{self.result.experiment}.{self.b}-vs-{self.a}.{name}.png"
            figure.savefig(path, dpi=110)
            paths.append(path)
        return paths


NOTE = (
    "# unit = example: trials are averaged per example first. difference = B - A; 95% CI by"
    " BCa bootstrap over examples. test: paired t (wilcoxon_p: Wilcoxon signed-rank) for"
    " scores, McNemar exact for pass/fail; two-sided. p_holm: Holm-adjusted over the classes."
)


def compare_variants(
    result: ExperimentResult,
    a: str,
    b: str,
    *,
    score: str | None = None,
    by: str | None = None,
    common: bool = False,
    higher_is_better: bool = True,
    dimensions: tuple[str, str] | None = None,
    confidence: float = 0.95,
    seed: int = 0,
) -> ExperimentComparison:
    """Compare variant ``b`` with ``a`` on ``score``, paired on examples, per class ``by``.

    Raises :class:`ExperimentError` for an unknown variant, a variant compared with
    itself, examples covered by only one side (unless ``common``), or a class that
    differs between the sides (group by a field of the examples instead).
    """
    if a == b:
        raise ExperimentError(f"compare: variant {a!r} against itself; name two variants")
    result.variant(a), result.variant(b)
    score = result._score(score)
    by = by if by is not None else result.by
    frame = result.per_example(score, by)
    left = frame[frame["variant"] == a].set_index("example")
    right = frame[frame["variant"] == b].set_index("example")
    only_a = sorted(set(left.index) - set(right.index))
    only_b = sorted(set(right.index) - set(left.index))
    if (only_a or only_b) and not common:
        sample = [result.examples.label(e) for e in [*only_a, *only_b][:3]]
        raise ExperimentError(
            f"compare {a!r} with {b!r}: they do not cover the same examples ({len(only_a)} "
            f"only in {a!r}, {len(only_b)} only in {b!r}, e.g. {sample}); a paired comparison "
            f"needs the same examples on both sides. Compare on the "
            f"{len(set(left.index) & set(right.index))} they share with common=True "
            "(--common), or give both variants the same slice"
        )
    joined = left.merge(right, left_index=True, right_index=True, suffixes=("_a", "_b"))
    if by:
        differ = joined[joined["class_a"] != joined["class_b"]]
        if len(differ):
            raise ExperimentError(
                f"compare {a!r} with {b!r}: by={by!r} gives {len(differ)} example(s) a different "
                f"class in each variant (it depends on what varies); group by a field of the "
                f"examples instead (e.g. inputs.label)"
            )
    joined["class"] = joined["class_a"]
    rows = []
    classes = sorted(joined["class"].unique()) if by else []
    for group in [*classes, ALL]:
        part = joined if group == ALL else joined[joined["class"] == group]
        rows.append({"class": group, **_paired_row(part, confidence, seed, higher_is_better)})
    table = pd.DataFrame(rows)
    per_class = table["class"] != ALL
    table["p_holm"] = math.nan
    if per_class.any():
        table.loc[per_class, "p_holm"] = holm(list(table.loc[per_class, "p_value"]))
    examples = _examples(result, joined, a, b, higher_is_better)
    return ExperimentComparison(
        result, a, b, score, by, table, examples, higher_is_better, dimensions
    )


def _paired_row(
    part: pd.DataFrame, confidence: float, seed: int, higher_is_better: bool
) -> dict[str, Any]:
    complete = part.dropna(subset=["mean_a", "mean_b"])
    test = paired_test(
        complete["mean_a"].to_numpy(),
        complete["mean_b"].to_numpy(),
        confidence=confidence,
        seed=seed,
    )
    higher, lower = test.discordant or (
        int((complete["mean_b"] > complete["mean_a"]).sum()),
        int((complete["mean_b"] < complete["mean_a"]).sum()),
    )
    improved, regressed = (higher, lower) if higher_is_better else (lower, higher)
    return {
        "examples": test.n,
        "failed_a": int(part["mean_a"].isna().sum()),
        "failed_b": int(part["mean_b"].isna().sum()),
        "mean_a": test.mean_a,
        "mean_b": test.mean_b,
        "difference": test.mean_difference,
        "ci_low": test.ci_low,
        "ci_high": test.ci_high,
        "test": test.test,
        "p_value": test.p_value,
        "wilcoxon_p": test.wilcoxon_p,
        "improved": improved,
        "regressed": regressed,
        "trial_sd_a": _pooled(part["trial_sd_a"]),
        "trial_sd_b": _pooled(part["trial_sd_b"]),
    }


def _pooled(spreads: pd.Series) -> float:
    variances = spreads.dropna().to_numpy() ** 2
    return float(math.sqrt(variances.mean())) if variances.size else math.nan


def _examples(
    result: ExperimentResult, joined: pd.DataFrame, a: str, b: str, higher_is_better: bool
) -> pd.DataFrame:
    frame = joined.dropna(subset=["mean_a", "mean_b"]).reset_index()
    frame["difference"] = frame["mean_b"] - frame["mean_a"]
    gain = frame["difference"] if higher_is_better else -frame["difference"]
    # Regressions first (the largest first), then improvements (the largest first).
    frame["regression"] = gain < 0
    frame["_order"] = gain.abs()
    frame = frame.sort_values(["regression", "_order"], ascending=[False, False], kind="stable")
    frame["example_id"] = frame["example"].map(result.examples.label)
    frame["input"] = frame["example"].map(result.examples.inputs)
    frame["output_a"] = [result.output_of(a, e) for e in frame["example"]]
    frame["output_b"] = [result.output_of(b, e) for e in frame["example"]]
    columns = [
        "example",
        "example_id",
        "class",
        "mean_a",
        "mean_b",
        "difference",
        "regression",
        "trial_sd_a",
        "trial_sd_b",
        "input",
        "output_a",
        "output_b",
    ]
    return frame[columns].reset_index(drop=True)


def _second(row: dict[str, Any]) -> str:
    if row["test"] == "McNemar exact":
        return f" ({row['improved']} improved, {row['regressed']} regressed)"
    if not math.isnan(row["wilcoxon_p"]):
        return f", Wilcoxon signed-rank p = {row['wilcoxon_p']:.3g}"
    return ""


def _short(value: Any, width: int = 48) -> str:
    text = value if isinstance(value, str) else repr(value)
    text = " ".join(text.split())
    return text if len(text) <= width else text[: width - 1] + "…"
