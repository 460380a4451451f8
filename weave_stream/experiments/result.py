"""The tree of results of an experiment, and what is read from it without computing anything.

:class:`ExperimentResult` holds every cell (variant x example x column x trial) as
computed or read from the cache. Everything here is a view of those cells: no op
runs, so a new summary, another grouping or another comparison costs nothing.

* trials are averaged per example first (:meth:`ExperimentResult.per_example`): the
  unit of every mean and test is the example; the spread *between* trials of one
  example is reported separately (``trial_sd``, the pooled within-example standard
  deviation);
* a failed cell is never dropped silently: an example whose trials all failed is
  counted in ``failed_examples``, failed trials in ``failed_trials``, cells never
  computed (:meth:`~weave_stream.experiments.Experiment.load`) in ``not_computed``.
"""

from __future__ import annotations

import functools
import math
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import numpy as np
import pandas as pd

from weave_stream.aggregates.rows import field_of
from weave_stream.aggregates.significance import IntervalMethod, mean_interval
from weave_stream.errors import ExperimentError
from weave_stream.experiments.data import Examples
from weave_stream.experiments.run import NOT_COMPUTED, VariantCells
from weave_stream.topology.selection import MISSING, FieldPath, walk

if TYPE_CHECKING:
    from weave_stream.experiments.compare import ExperimentComparison
    from weave_stream.experiments.failures import FailureKinds, Grouper

__all__ = ["ALL", "ExperimentResult"]

ALL = "all"
NONE_CLASS = "(none)"
CELL_COLUMNS = [
    "variant",
    "example",
    "example_id",
    "trial",
    "column",
    "value",
    "error",
    "op_ref",
    "cached",
    "cost",
]


@dataclass
class ExperimentResult:
    """Every cell of an experiment, and summaries, comparisons and plots read from them."""

    experiment: str
    examples: Examples
    variants: list[VariantCells]
    scores: list[str]
    by: str | None = None
    output: str | None = None

    # -- the cells -----------------------------------------------------------------------
    @property
    def variant_names(self) -> list[str]:
        """The variants, in the experiment's order."""
        return [cells.variant for cells in self.variants]

    def cells(self) -> pd.DataFrame:
        """One row per variant, example, column and trial (``CELL_COLUMNS``)."""
        rows = [
            {
                "variant": cells.variant,
                "example": value.call_id,
                "example_id": self.examples.label(value.call_id),
                "trial": value.trial,
                "column": value.column,
                "value": value.value,
                "error": value.error,
                "op_ref": value.op_ref,
                "cached": value.cached,
                "cost": value.cost,
            }
            for cells in self.variants
            for value in cells.values
        ]
        return pd.DataFrame(rows, columns=CELL_COLUMNS)

    def computed(self) -> dict[str, int]:
        """Op evaluations run in this run, per variant (0 everywhere for a cached re-run)."""
        return {cells.variant: cells.stats.computed for cells in self.variants}

    def failures(self) -> pd.DataFrame:
        """Failed and not-computed cells per variant and column, with the first error."""
        frame = self.cells()
        rows = []
        for (variant, column), part in frame.groupby(["variant", "column"], sort=False):
            errors = part["error"].dropna()
            missing = errors.str.contains(NOT_COMPUTED, regex=False)
            failed = errors[~missing]
            rows.append(
                {
                    "variant": variant,
                    "column": column,
                    "cells": len(part),
                    "failed": len(failed),
                    "not_computed": int(missing.sum()),
                    "first_error": failed.iloc[0] if len(failed) else None,
                }
            )
        return pd.DataFrame(rows)

    # -- scores per trial and per example -------------------------------------------------
    def score_values(self, score: str) -> pd.DataFrame:
        """One row per variant, example and trial: the score's ``value`` or its ``error``."""
        head, _, path = score.partition(".")
        self._check_column(head, f"score {score!r}")
        rows = []
        for cells in self.variants:
            for value in cells.values:
                if value.column != head:
                    continue
                number, error = _number(value.value, path, value.error, score)
                rows.append(
                    {
                        "variant": cells.variant,
                        "example": value.call_id,
                        "trial": value.trial,
                        "value": number,
                        "error": error,
                    }
                )
        return pd.DataFrame(rows, columns=["variant", "example", "trial", "value", "error"])

    def per_example(self, score: str | None = None, by: str | None = None) -> pd.DataFrame:
        """Trials averaged per example: ``mean``, ``trial_sd``, ``trials_ok``, ``trials_failed``.

        ``class`` is the example's class when ``by`` (or the experiment's ``by``) is set.
        An example whose trials all failed has ``mean`` NaN and is counted as failed.
        """
        score = self._score(score)
        values = self.score_values(score)
        values["ok"] = values["error"].isna()
        values["missing"] = values["error"].fillna("").str.contains(NOT_COMPUTED, regex=False)
        grouped = values.groupby(["variant", "example"], sort=False)
        frame = grouped.agg(
            mean=("value", "mean"),
            trial_sd=("value", lambda v: float(v.std(ddof=1)) if v.count() > 1 else math.nan),
            trials_ok=("ok", "sum"),
            trials_missing=("missing", "sum"),
            trials=("trial", "count"),
        ).reset_index()
        frame["trials_failed"] = frame["trials"] - frame["trials_ok"] - frame["trials_missing"]
        frame["example_id"] = frame["example"].map(self.examples.label)
        by = by if by is not None else self.by
        frame["class"] = self.classes(frame, by) if by else ALL
        return frame

    def classes(self, frame: pd.DataFrame, by: str) -> list[str]:
        """The class of each (variant, example) row of ``frame`` by ``by``."""
        head, _, path = by.partition(".")
        if any(head in {c.name for c in cells.topology.columns} for cells in self.variants):
            found: dict[tuple[str, str], str] = {}
            for cells in self.variants:
                for value in cells.values:
                    if value.column == head and value.trial == 0:
                        label = field_of(value.value, path) if value.error is None else None
                        found[(cells.variant, value.call_id)] = _label(label)
            pairs = zip(frame["variant"], frame["example"], strict=True)
            return [found.get(pair, NONE_CLASS) for pair in pairs]
        try:
            field_path = FieldPath.parse(by)
        except ValueError as exc:
            columns = sorted({c.name for cells in self.variants for c in cells.topology.columns})
            raise ExperimentError(
                f"by={by!r} is neither a column ({', '.join(columns)}) nor a field of the "
                f"examples: {exc}"
            ) from None
        data = {call.id: call.to_dict() for call in self.examples.calls}
        labels = []
        for example in frame["example"]:
            found_value = walk(data.get(example, {}), field_path.parts)
            labels.append(_label(None if found_value is MISSING else found_value))
        return labels

    # -- summaries -----------------------------------------------------------------------
    def summary(
        self,
        score: str | None = None,
        by: str | None = None,
        *,
        ci: IntervalMethod = "t",
        confidence: float = 0.95,
    ) -> pd.DataFrame:
        """Per variant (and class): the mean of per-example means with its CI over examples.

        Columns: ``score``, ``variant``, ``class``, ``examples`` (with a value),
        ``failed_examples``, ``failed_trials``, ``not_computed``, ``mean``, ``ci_low``,
        ``ci_high``, ``ci`` (t, bootstrap (BCa), or Wilson for pass/fail), ``trial_sd``
        (pooled spread between trials of one example) and ``trials`` (most per example).
        Every score is summarised when ``score`` is None. Reads cells only.
        """
        rows = []
        for name in [score] if score else self.scores:
            frame = self.per_example(name, by)
            classes = sorted(frame["class"].unique()) if (by or self.by) else []
            for variant in self.variant_names:
                part = frame[frame["variant"] == variant]
                for group in [*classes, ALL]:
                    subset = part if group == ALL else part[part["class"] == group]
                    rows.append(
                        {"score": name, "variant": variant, "class": group}
                        | _summary_row(subset, ci, confidence)
                    )
        return pd.DataFrame(rows)

    def compare(self, a: str, b: str, **options: Any) -> ExperimentComparison:
        """Variant ``b`` against ``a``, paired on their examples; see
        :func:`~weave_stream.experiments.compare.compare_variants`."""
        from weave_stream.experiments.compare import compare_variants

        return compare_variants(self, a, b, **options)

    def failure_kinds(
        self,
        column: str,
        variant: str | None = None,
        max_kinds: int = 8,
        grouper: Grouper | None = None,
    ) -> FailureKinds:
        """The reasons an explain column gave, grouped into a few kinds with counts
        (by ``grouper``, default :func:`~weave_stream.experiments.failures.cluster_reasons`)."""
        from weave_stream.experiments.failures import failure_kinds

        return failure_kinds(self, column, variant=variant, max_kinds=max_kinds, grouper=grouper)

    # -- helpers -------------------------------------------------------------------------
    def output_of(self, variant: str, example: str) -> Any:
        """Trial 0's value of the experiment's output column for ``example`` under ``variant``."""
        return self._outputs.get((variant, example))

    @functools.cached_property
    def _outputs(self) -> dict[tuple[str, str], Any]:
        column = self.output or self.variants[0].topology.compiled[0].name
        return {
            (cells.variant, value.call_id): (
                value.value if value.error is None else f"error: {value.error}"
            )
            for cells in self.variants
            for value in cells.values
            if value.column == column and value.trial == 0
        }

    def variant(self, name: str) -> VariantCells:
        """The cells of variant ``name``."""
        for cells in self.variants:
            if cells.variant == name:
                return cells
        raise ExperimentError(
            f"experiment {self.experiment!r} has no variant {name!r}; its variants: "
            f"{', '.join(self.variant_names)}"
        )

    def _score(self, score: str | None) -> str:
        if score is not None:
            return score
        if not self.scores:
            raise ExperimentError(
                f"experiment {self.experiment!r} declares no scores; pass score='column' or "
                "'column.field', or give the experiment scores=[...]"
            )
        return self.scores[0]

    def _check_column(self, column: str, where: str) -> None:
        names = {c.name for cells in self.variants for c in cells.topology.columns}
        if column not in names:
            raise ExperimentError(
                f"{where}: {column!r} is not a column of experiment {self.experiment!r}; its "
                f"columns: {', '.join(sorted(names))}"
            )


def _number(value: Any, path: str, error: str | None, score: str) -> tuple[float, str | None]:
    if error is not None:
        return math.nan, error
    found = field_of(value, path)
    if isinstance(found, bool | np.bool_):
        return float(found), None
    if isinstance(found, int | float | np.integer | np.floating):
        return float(found), None
    if found is None:
        return math.nan, f"no value for {score!r}"
    raise ExperimentError(
        f"score {score!r} holds {type(found).__name__} values ({str(found)[:40]!r}), not "
        "numbers; score a numeric field (e.g. 'column.score' or 'column.confidence'), or a "
        "pass/fail column"
    )


def _label(value: Any) -> str:
    return NONE_CLASS if value is None else str(value)


def _summary_row(part: pd.DataFrame, ci: IntervalMethod, confidence: float) -> dict[str, Any]:
    values = part["mean"].dropna().to_numpy()
    interval = mean_interval(values, method=ci, confidence=confidence)
    variances = part["trial_sd"].dropna().to_numpy() ** 2
    return {
        "examples": interval.n,
        "failed_examples": int(((part["trials_ok"] == 0) & (part["trials_failed"] > 0)).sum()),
        "failed_trials": int(part["trials_failed"].sum()),
        "not_computed": int(part["trials_missing"].sum()),
        "mean": interval.mean,
        "ci_low": interval.low,
        "ci_high": interval.high,
        "ci": interval.method,
        "trial_sd": float(math.sqrt(variances.mean())) if variances.size else math.nan,
        "trials": int(part["trials"].max()) if len(part) else 0,
    }
