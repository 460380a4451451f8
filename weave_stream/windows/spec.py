"""What a topology declares under ``aggregates:``: windows, group-by keys, metrics, drill-down.

One entry, in YAML::

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

Durations are whole seconds written as ``90s``, ``5m``, ``1h30m``, ``2d``, ``1w`` or a
number of seconds. Windows are aligned to the Unix epoch (UTC) and follow event time,
the call's ``started_at``.

>>> spec = parse_aggregates([{"name": "q", "window": "5m", "metrics": {"s": ["mean", "p90"]}}],
...                         topology="demo")[0]
>>> spec.window.size, spec.window.step, spec.grace, spec.drill_down.score
(300, 300, 600, 's')
>>> parse_duration("1h30m")
5400
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Mapping
from datetime import timedelta
from typing import Annotated, Any, Literal

from pydantic import (
    BaseModel,
    BeforeValidator,
    ConfigDict,
    Field,
    ValidationError,
    field_validator,
    model_validator,
)

from weave_stream.errors import TopologyError

__all__ = [
    "CATEGORY_METRICS",
    "NUMERIC_METRICS",
    "AggregateSpec",
    "DrillDownSpec",
    "WindowSpec",
    "parse_aggregates",
    "parse_duration",
    "quantile_of",
    "required_fields",
]

NUMERIC_METRICS = frozenset({"count", "sum", "mean", "std", "ci95", "min", "max"})
CATEGORY_METRICS = frozenset({"counts"})
ANY_METRICS = frozenset({"error_rate", "cost_sum"})
_QUANTILE = re.compile(r"^p(?P<pct>\d{1,2}(?:\.\d+)?)$")
_DURATION_PART = re.compile(r"(\d+)([wdhms])")
_UNIT_SECONDS = {"w": 604800, "d": 86400, "h": 3600, "m": 60, "s": 1}
_NAME = r"^[A-Za-z_][A-Za-z0-9_.\-]{0,63}$"


def parse_duration(value: Any) -> int:
    """Whole seconds from text (``"90s"``, ``"5m"``, ``"1h30m"``, ``"2d"``, ``"1w"``) or numbers.

    >>> parse_duration("2d"), parse_duration(45), parse_duration(timedelta(minutes=2))
    (172800, 45, 120)
    """
    if isinstance(value, timedelta):
        value = value.total_seconds()
    if isinstance(value, bool):
        raise ValueError(f"a duration cannot be a boolean ({value!r})")
    if isinstance(value, int | float):
        if value < 0 or value != int(value):
            raise ValueError(f"duration {value!r} must be a whole, non-negative number of seconds")
        return int(value)
    if isinstance(value, str):
        text = value.strip().lower().replace(" ", "")
        if text.isdigit():
            return int(text)
        parts = _DURATION_PART.findall(text)
        if parts and "".join(n + u for n, u in parts) == text:
            return sum(int(n) * _UNIT_SECONDS[u] for n, u in parts)
    raise ValueError(
        f"{value!r} is not a duration; write whole seconds or e.g. 90s, 5m, 1h30m, 2d, 1w"
    )


Duration = Annotated[int, BeforeValidator(parse_duration)]


def quantile_of(metric: str) -> float | None:
    """The quantile a metric name such as ``p90`` or ``p99.9`` asks for, else ``None``.

    >>> quantile_of("p99.9"), quantile_of("mean")
    (0.999, None)
    """
    match = _QUANTILE.match(metric)
    return round(float(match.group("pct")) / 100, 10) if match else None


class WindowSpec(BaseModel):
    """A tumbling (``step == size``) or hopping (``step < size``) window, in seconds."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    size: Duration = Field(gt=0)
    step: Duration = Field(default=0, ge=0, description="0 or absent: tumbling (step = size)")

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
    def _check_step(self) -> WindowSpec:
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


class DrillDownSpec(BaseModel):
    """What each bucket keeps to show the calls behind it."""

    model_config = ConfigDict(extra="forbid", frozen=True)

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


class AggregateSpec(BaseModel):
    """One windowed group-by of a topology, validated when the topology loads."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    name: str = Field(pattern=_NAME)
    window: WindowSpec
    grace: Duration = 600
    retention: Duration = 86400
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
    def _check_consistency(self) -> AggregateSpec:
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
    entries: Iterable[Mapping[str, Any]], topology: str
) -> tuple[AggregateSpec, ...]:
    """Validate a topology's ``aggregates:`` entries; a :class:`TopologyError` names the bad one.

    >>> parse_aggregates([{"name": "q", "window": {"size": "1h", "step": "7m"}}], "demo")
    Traceback (most recent call last):
    ...
    weave_stream.errors.TopologyError: topology 'demo', aggregate 'q', field window: ...
    """
    specs: list[AggregateSpec] = []
    for index, entry in enumerate(entries):
        name = entry.get("name", f"#{index}") if isinstance(entry, Mapping) else f"#{index}"
        try:
            spec = AggregateSpec.model_validate(entry)
        except ValidationError as exc:
            raise TopologyError(_describe(exc, topology, str(name))) from None
        if any(s.name == spec.name for s in specs):
            raise TopologyError(
                f"topology {topology!r}: two aggregates are named {spec.name!r}; "
                "give each a unique name"
            )
        specs.append(spec)
    return tuple(specs)


def required_fields(specs: Iterable[AggregateSpec]) -> frozenset[str]:
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


def _describe(exc: ValidationError, topology: str, name: str) -> str:
    problems = []
    for error in exc.errors(include_url=False):
        field = ".".join(str(p) for p in error["loc"]) or "entry"
        message = str(error["msg"]).removeprefix("Value error, ")
        shown = repr(error.get("input"))
        shown = shown if len(shown) <= 80 else shown[:77] + "..."
        problems.append(f"field {field}: {message} (got {shown})")
    return f"topology {topology!r}, aggregate {name!r}, " + "; ".join(problems)
