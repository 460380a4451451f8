"""Failure kinds: the reasons an ``explain`` column gave, grouped into a short list.

Each reason (``{"reason": ...}`` or a plain string) is one failed example-trial;
:func:`cluster_reasons` puts similar reasons in one kind, and each kind is shown by
its most frequent reason, with its count, its share of all reasons, its count per
variant and a few example ids -- what to read before rewriting a prompt.

:func:`cluster_reasons` is the seam: it drops the words every reason starts or ends
with (a model's boilerplate, the stand-in's "not an LLM"), embeds the distinct rest with
the offline all-MiniLM-L6-v2 model and cuts an average-linkage tree of their cosine
distances (scipy) at ``distance``; the largest ``max_kinds - 1`` kinds are kept and the
rest pooled as ``other``. Any function from reasons to kind numbers fits there
(``failure_kinds(..., grouper=...)``), e.g. a topic model later.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import numpy as np
import pandas as pd

from weave_stream.errors import ExperimentError

if TYPE_CHECKING:
    from weave_stream.experiments.result import ExperimentResult

__all__ = ["OTHER", "FailureKinds", "Grouper", "cluster_reasons", "failure_kinds"]

OTHER = -1
Grouper = Callable[[Sequence[str]], list[int]]
EXAMPLES_PER_KIND = 3


@dataclass
class FailureKinds:
    """``kinds``: one row per kind (``kind``, ``count``, ``share``, ``per_variant``,
    ``examples``); ``reasons``: every reason with its variant, example, trial and kind."""

    column: str
    kinds: pd.DataFrame
    reasons: pd.DataFrame

    def to_pandas(self) -> pd.DataFrame:
        """The kinds as a DataFrame."""
        return self.kinds.copy()

    def render(self) -> str:
        """The kinds as text: count, share, per variant, a few example ids."""
        if self.kinds.empty:
            return f"no failures explained in {self.column!r}"
        lines = [f"failure kinds in {self.column!r} ({len(self.reasons)} reasons):"]
        for row in self.kinds.to_dict("records"):
            per_variant = ", ".join(f"{v}: {n}" for v, n in row["per_variant"].items())
            lines.append(
                f"  {row['count']:>4}  {row['share']:>5.0%}  {row['kind']}\n"
                f"              ({per_variant}; e.g. {', '.join(row['examples'])})"
            )
        return "\n".join(lines)


def failure_kinds(
    result: ExperimentResult,
    column: str,
    *,
    variant: str | None = None,
    max_kinds: int = 8,
    grouper: Grouper | None = None,
) -> FailureKinds:
    """Group the reasons of ``column`` (of one ``variant``, or all) into kinds."""
    if max_kinds < 2:
        raise ExperimentError(f"failure kinds: max_kinds must be >= 2, got {max_kinds}")
    result.variant(variant) if variant else None
    rows = []
    for cells in result.variants:
        if variant is not None and cells.variant != variant:
            continue
        for value in cells.values:
            if value.column == column and value.error is None:
                reason = _reason(value.value)
                if reason:
                    rows.append(
                        {
                            "variant": cells.variant,
                            "example": value.call_id,
                            "example_id": result.examples.label(value.call_id),
                            "trial": value.trial,
                            "reason": reason,
                        }
                    )
    reasons = pd.DataFrame(rows, columns=["variant", "example", "example_id", "trial", "reason"])
    if not any(column == c.name for cells in result.variants for c in cells.topology.columns):
        raise ExperimentError(f"failure kinds: {column!r} is not a column of the experiment")
    if reasons.empty:
        empty = pd.DataFrame(columns=["kind", "count", "share", "per_variant", "examples"])
        return FailureKinds(column, empty, reasons.assign(kind=[]))
    group = grouper or (lambda texts: cluster_reasons(texts, max_kinds=max_kinds))
    reasons["kind_id"] = group(list(reasons["reason"]))
    kinds = []
    for kind_id, part in reasons.groupby("kind_id", sort=False):
        label = "other" if kind_id == OTHER else Counter(part["reason"]).most_common(1)[0][0]
        kinds.append(
            {
                "kind": label,
                "count": len(part),
                "share": len(part) / len(reasons),
                "per_variant": dict(Counter(part["variant"])),
                "examples": list(dict.fromkeys(part["example_id"]))[:EXAMPLES_PER_KIND],
            }
        )
    table = pd.DataFrame(kinds).sort_values("count", ascending=False, kind="stable")
    labels = {
        k: "other" if k == OTHER else Counter(p["reason"]).most_common(1)[0][0]
        for k, p in reasons.groupby("kind_id")
    }
    reasons["kind"] = reasons["kind_id"].map(labels)
    return FailureKinds(column, table.reset_index(drop=True), reasons.drop(columns="kind_id"))


def cluster_reasons(
    reasons: Sequence[str], *, max_kinds: int = 8, distance: float = 0.35
) -> list[int]:
    """A kind number per reason (``OTHER`` for the pooled small kinds); see the module doc."""
    distinct = list(dict.fromkeys(reasons))
    if len(distinct) == 1:
        return [0] * len(reasons)
    from scipy.cluster.hierarchy import fcluster, linkage

    from weave_stream.ops.embed import encode_sync

    vectors = encode_sync(_without_boilerplate(distinct))
    tree = linkage(vectors, method="average", metric="cosine")
    clusters = fcluster(tree, t=distance, criterion="distance")
    weight = Counter(reasons)
    sizes: Counter[int] = Counter()
    for text, cluster in zip(distinct, clusters, strict=True):
        sizes[int(cluster)] += weight[text]
    kept = [cluster for cluster, _ in sizes.most_common()]
    if len(kept) > max_kinds:
        kept = kept[: max_kinds - 1]
    number = {cluster: index for index, cluster in enumerate(kept)}
    of_text = {
        text: number.get(int(cluster), OTHER)
        for text, cluster in zip(distinct, np.asarray(clusters), strict=True)
    }
    return [of_text[text] for text in reasons]


def _without_boilerplate(texts: list[str]) -> list[str]:
    """``texts`` without the words all of them start or end with (they tell no kinds apart).

    >>> _without_boilerplate(["judge: too short here", "judge: off topic here"])
    ['too short', 'off topic']
    """
    split = [text.split() for text in texts]
    shortest = min(len(words) for words in split)
    start = 0
    while start < shortest - 1 and len({words[start] for words in split}) == 1:
        start += 1
    end = 0
    while end < shortest - start - 1 and len({words[-1 - end] for words in split}) == 1:
        end += 1
    return [" ".join(words[start : len(words) - end]) for words in split]


def _reason(value: Any) -> str | None:
    if isinstance(value, Mapping):
        value = value.get("reason")
    return value.strip() if isinstance(value, str) and value.strip() else None
