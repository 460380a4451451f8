"""What a topology declares under ``aggregates:``: windows, group-by keys, metrics, drill-down.

An :class:`Aggregate` is written in YAML or built in Python; both give the same
object, and :class:`~weave_stream.topology.spec.Topology` checks its keys against
the topology's columns when it is built. One entry, in YAML::

    aggregates:
      - name: quality_by_class
        window: {size: 1h, step: 5m}    # hopping; "5m" or {size: 5m} is tumbling
        grace: 10m                      # late calls within this still count
        retention: 2d                   # a window is forgotten this long after it ends
        group_by: [doc_class, attributes.model]
        metrics:
          judge_score: [count, mean, std, ci95, p50, p90, p99, error_rate, cost_sum]
          doc_class: [counts]
        drill_down: {sample_size: 20, worst_k: 5, score: judge_score, worst: lowest}

Durations are whole seconds, written as :mod:`weave_stream.durations` reads them
(``90s``, ``5m``, ``1h30m``, ``2d``, ``1w`` or a number of seconds). Windows are
aligned to the Unix epoch (UTC) and follow event time, the call's ``started_at``.

>>> spec = Aggregate(name="q", window="5m", metrics={"s": ["mean", "p90"]})
>>> spec.window.size, spec.window.step, spec.grace, spec.drill_down.score
(300, 300, 600, 's')
>>> spec == parse_aggregates([{"name": "q", "window": "5m", "metrics": {"s": ["mean", "p90"]}}],
...                          topology="demo")[0]
True
>>> Aggregate(name="q", window={"size": "1h", "step": "7m"})
Traceback (most recent call last):
...
weave_stream.errors.TopologyError: aggregate 'q', field window: hopping step 420s must divide \
the window size 3600s (e.g. size 1h with step 5m, 10m or 15m) (got ...); fix the aggregate
"""

from __future__ import annotations

import re
from collections.abc import Collection, Iterable, Mapping
from datetime import timedelta
from typing import Any, Literal

from pydantic import Field, field_validator, model_validator

from weave_stream.durations import WholeSeconds
from weave_stream.errors import TopologyError
from weave_stream.topology.models import SpecModel, check_entries
from weave_stream.topology.selection import FieldPath

__all__ = [
    "CATEGORY_METRICS",
    "DURATION",
    "NUMERIC_METRICS",
    "Aggregate",
    "DrillDownSpec",
    "Window",
    "aggregate_key",
    "check_aggregates",
    "parse_aggregates",
    "quantile_of",
    "required_fields",
]

NUMERIC_METRICS = frozenset({"count", "sum", "mean", "std", "ci95", "min", "max"})
CATEGORY_METRICS = frozenset({"counts"})
ANY_METRICS = frozenset({"error_rate", "cost_sum"})
DURATION = "duration_seconds"  # a key every call has: ended_at - started_at
_QUANTILE = re.compile(r"^p(?P<pct>\d{1,2}(?:\.\d+)?)$")
_NAME = r"^[A-Za-z_][A-Za-z0-9_.\-]{0,63}$"


def quantile_of(metric: str) -> float | None:
    """The quantile a metric name such as ``p90`` or ``p99.9`` asks for, else ``None``.

    >>> quantile_of("p99.9"), quantile_of("mean")
    (0.999, None)
    """
    match = _QUANTILE.match(metric)
    return round(float(match.group("pct")) / 100, 10) if match else None


class Window(SpecModel):
    """A tumbling (``step == size``) or hopping (``step < size``) window, in whole seconds.

    >>> Window(size="1h", step="5m").kind, Window(size="10m").step
    ('hopping', 600)
    """

    size: WholeSeconds = Field(gt=0)
    step: WholeSeconds = Field(default=0, ge=0, description="0 or absent: tumbling (step = size)")

    @model_validator(mode="before")
    @classmethod
    def _shorthands(cls, value: Any) -> Any:
        if isinstance(value, str | int | float | timedelta):
            return {"size": value}
        if isinstance(value, Mapping):
            if set(value) == {"tumbling"}:
                return {"size": value["tumbling"]}
            if set(value) == {"hopping"} and isinstance(value["hopping"], Mapping):
                return dict(value["hopping"])
        return value

    @model_validator(mode="after")
    def _check_step(self) -> Window:
        if self.step == 0:
            object.__setattr__(self, "step", self.size)
        if self.step > self.size or self.size % self.step:
            raise ValueError(
                f"hopping step {self.step}s must divide the window size {self.size}s "
                "(e.g. size 1h with step 5m, 10m or 15m)"
            )
        return self

    @property
    def kind(self) -> Literal["tumbling", "hopping"]:
        """``tumbling`` when windows do not overlap, else ``hopping``."""
        return "tumbling" if self.step == self.size else "hopping"


class DrillDownSpec(SpecModel):
    """What each bucket keeps to show the calls behind it."""

    sample_size: int = Field(default=10, ge=0, le=1000, description="calls kept per bucket")
    worst_k: int = Field(default=5, ge=0, le=1000)
    score: str | None = None
    # None: from the score's column (its higher_is_worse, else its op's; see
    # aggregates.source.worst_direction); "lowest" when nothing says.
    worst: Literal["lowest", "highest"] | None = None
    worst_reason: str = ""  # why that direction, for the drill-down's heading

    @property
    def direction(self) -> Literal["lowest", "highest"]:
        """The worst scores are the lowest or the highest."""
        return self.worst or "lowest"


class Aggregate(SpecModel):
    """One windowed group-by of a topology: written in YAML or built here, validated when built.

    Its keys (``group_by`` and the ``metrics`` columns) are checked against the
    topology's columns by the :class:`~weave_stream.topology.spec.Topology` it joins.
    """

    name: str = Field(pattern=_NAME)
    window: Window
    grace: WholeSeconds = 600
    retention: WholeSeconds = 86400
    group_by: tuple[str, ...] = ()
    metrics: dict[str, tuple[str, ...]] = Field(default_factory=dict)
    max_categories: int = Field(default=50, ge=1, le=10_000)
    relative_accuracy: float = Field(default=0.01, ge=0.0001, le=0.2)
    drill_down: DrillDownSpec = Field(default_factory=DrillDownSpec)

    @field_validator("group_by", mode="before")
    @classmethod
    def _one_key(cls, value: Any) -> Any:
        return (value,) if isinstance(value, str) else value

    @field_validator("metrics", mode="before")
    @classmethod
    def _metric_lists(cls, value: Any) -> Any:
        if isinstance(value, Mapping):
            return {k: (v,) if isinstance(v, str) else v for k, v in value.items()}
        return value

    @field_validator("metrics")
    @classmethod
    def _known_metrics(cls, value: dict[str, tuple[str, ...]]) -> dict[str, tuple[str, ...]]:
        known = NUMERIC_METRICS | CATEGORY_METRICS | ANY_METRICS
        for column, names in value.items():
            for metric in names:
                if metric not in known and quantile_of(metric) is None:
                    raise ValueError(
                        f"column {column!r}: unknown metric {metric!r}; use "
                        f"{', '.join(sorted(known))} or a quantile such as p50, p90, p99.9"
                    )
            if len(set(names)) != len(names):
                raise ValueError(f"column {column!r} lists a metric twice: {list(names)}")
        return value

    @model_validator(mode="after")
    def _check_consistency(self) -> Aggregate:
        if len(set(self.group_by)) != len(self.group_by):
            raise ValueError(f"group_by repeats a key: {list(self.group_by)}")
        if self.retention < self.grace:
            raise ValueError(
                f"retention {self.retention}s is shorter than the grace period {self.grace}s; "
                "a window must be kept at least until late calls stop counting"
            )
        score = self.drill_down.score
        if score is None and self.drill_down.worst_k:
            numeric = [c for c in self.metrics if self.numeric(c)]
            if numeric:
                drill = self.drill_down.model_copy(update={"score": numeric[0]})
                object.__setattr__(self, "drill_down", drill)
        elif score is not None and score not in self.metrics:
            raise ValueError(
                f"drill_down.score {score!r} is not a metric column; add it under metrics "
                f"(columns: {sorted(self.metrics)})"
            )
        return self

    def numeric(self, column: str) -> bool:
        """True when ``column`` has a numeric metric (its values must be numbers)."""
        names = self.metrics.get(column, ())
        return any(m in NUMERIC_METRICS or quantile_of(m) is not None for m in names)

    def quantiles(self, column: str) -> tuple[float, ...]:
        """The quantiles asked for ``column``, in the order listed."""
        found = (quantile_of(m) for m in self.metrics.get(column, ()))
        return tuple(q for q in found if q is not None)


def parse_aggregates(
    entries: Iterable[Aggregate | Mapping[str, Any]], topology: str
) -> tuple[Aggregate, ...]:
    """Validate ``aggregates:`` entries; a :class:`TopologyError` names each bad one.

    Entries are :class:`Aggregate` s or their plain data. The keys are not checked
    here (they need the topology's columns): :func:`check_aggregates` does that.

    >>> parse_aggregates([{"name": "q", "window": {"size": "1h", "step": "7m"}}], "demo")
    Traceback (most recent call last):
    ...
    weave_stream.errors.TopologyError: topology 'demo', aggregate 'q', field window: ...
    """
    problems: list[str] = []
    specs = check_entries(Aggregate, entries, problems)
    if problems:
        raise TopologyError("\n".join(f"topology {topology!r}, {p}" for p in problems))
    return specs


def check_aggregates(
    specs: Iterable[Aggregate], columns: Collection[str], problems: list[str]
) -> None:
    """Append a problem for every key of ``specs`` that is neither a column nor a call field."""
    for key in sorted(required_fields(specs)):
        try:
            aggregate_key(key, columns)
        except ValueError as exc:
            problems.append(f"aggregates: {exc}")


def aggregate_key(text: str, columns: Collection[str]) -> tuple[str | None, tuple[str, ...]]:
    """Where a group-by key or metric column is read: ``(column, parts)`` or ``(None, parts)``.

    A key is a column (``doc_class``), a field inside one (``doc_class.confidence``), a
    call field (``attributes.model``) or :data:`DURATION` (``(None, ())``). A key that
    is none of these raises ``ValueError`` naming the topology's columns (the topology
    reports it as a :class:`TopologyError`).

    >>> aggregate_key("doc_class.confidence", {"doc_class"}), aggregate_key("op_name", ())
    (('doc_class', ('confidence',)), (None, ('op_name',)))
    """
    head, _, rest = text.partition(".")
    if head in columns:
        return head, tuple(rest.split(".")) if rest else ()
    if text == DURATION:
        return None, ()
    try:
        path = FieldPath.parse(text)
    except ValueError as exc:
        raise ValueError(
            f"key {text!r} is neither a column of the topology "
            f"({', '.join(sorted(columns)) or 'it has none'}) nor a call field: {exc}; "
            f"or use {DURATION!r}"
        ) from None
    if path.column is not None and path.column not in columns:
        raise ValueError(
            f"key {text!r} reads column {path.column!r}, which the topology does not have "
            f"(its columns: {', '.join(sorted(columns)) or 'none'})"
        )
    return path.column, path.parts


def required_fields(specs: Iterable[Aggregate]) -> frozenset[str]:
    """Every group-by key and metric column the row builder must extract for ``specs``.

    >>> entry = {"name": "q", "window": "1m", "group_by": ["op_name"], "metrics": {"s": "mean"}}
    >>> sorted(required_fields(parse_aggregates([entry], "t")))
    ['op_name', 's']
    """
    fields: set[str] = set()
    for spec in specs:
        fields.update(spec.group_by)
        fields.update(spec.metrics)
    return frozenset(fields)
