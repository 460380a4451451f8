"""What a topology's ``monitors:`` entry says: a :class:`Monitor`, validated when built.

A monitor watches one embedding column (the :class:`~weave_stream.topology.spec.Topology`
it joins checks that the column is one of its own). Its *reference* is the set of known examples
(the first N calls, a time range of calls, or a JSONL file of calls); its *index*
holds their embeddings (exact, HNSW or IVF, chosen by size unless overridden); its
*threshold* is calibrated from the reference unless given; its *learning* policy says
whether acknowledged examples join the known set and how many may; its *shift*
settings configure the window test and the change detector.

The reference may be written in full or as a shorthand:

>>> spec = Monitor(name="doc_drift", column="doc_embedding", reference={"first_n": 500})
>>> spec.reference.kind, spec.reference.n, spec.index.kind, spec.calibration_quantile
('first_n', 500, 'auto', 0.997)
>>> Monitor(name="m", column="e", reference={"first_n": 2}, cooldown="10m").cooldown
600.0
>>> parse_monitors("extract", [{"name": "m", "column": "emb", "reference": {"first_n": 1}}])
Traceback (most recent call last):
...
weave_stream.errors.TopologyError: topology 'extract', monitor 'm', field reference.first_n.n: \
Input should be greater than or equal to 2 (got 1); fix the monitors: entry of the topology
"""

from __future__ import annotations

import warnings
from collections.abc import Iterable, Mapping
from datetime import datetime
from pathlib import Path
from typing import Annotated, Any, Literal

from pydantic import AliasChoices, Field, field_validator, model_validator

from weave_stream.durations import Duration
from weave_stream.errors import TopologyError
from weave_stream.ingest.call import Timestamp
from weave_stream.topology.models import SpecModel, check_entries
from weave_stream.topology.selection import FieldPath

__all__ = [
    "FirstNReference",
    "IndexKind",
    "IndexSpec",
    "JsonlReference",
    "LearningSpec",
    "Monitor",
    "ReferenceSpec",
    "ShiftSpec",
    "TimeRangeReference",
    "parse_monitors",
]

IndexKind = Literal["auto", "exact", "hnsw", "ivf"]
_NAME = r"^[A-Za-z_][A-Za-z0-9_.-]{0,99}$"


class _Spec(SpecModel):
    """A part of a monitor; errors in it name the monitor's field."""


class FirstNReference(_Spec):
    """The first ``n`` calls the monitor sees are the known examples."""

    kind: Literal["first_n"] = "first_n"
    n: int = Field(ge=2, le=50_000_000)


class TimeRangeReference(_Spec):
    """Calls whose ``started_at`` lies in ``[start, end)`` are the known examples."""

    kind: Literal["time_range"] = "time_range"
    start: Timestamp
    end: Timestamp

    @model_validator(mode="after")
    def _check_order(self) -> TimeRangeReference:
        if self.end <= self.start:
            raise ValueError(
                f"end {self.end.isoformat()} is not after start {self.start.isoformat()}"
            )
        return self

    def contains(self, when: datetime) -> bool:
        """True when ``when`` falls in the range."""
        return self.start <= when < self.end


class JsonlReference(_Spec):
    """A JSONL file of known calls (Weave's call shape, one per line)."""

    kind: Literal["jsonl"] = "jsonl"
    path: Path


ReferenceSpec = Annotated[
    FirstNReference | TimeRangeReference | JsonlReference, Field(discriminator="kind")
]


class IndexSpec(_Spec):
    """Which FAISS index holds the known embeddings, and its search parameters.

    ``auto`` picks ``exact`` up to ``exact_max`` vectors and ``ivf`` above: IVF with
    8-bit scalar quantization, whose ``ivf_rerank`` best candidates are re-ranked
    with exact distances, was both faster and more accurate than HNSW at 1 M
    vectors here (bench/drift.py), and it builds in half the time.
    """

    kind: IndexKind = "auto"
    exact_max: int = Field(default=20_000, ge=0)
    hnsw_m: int = Field(default=32, ge=4, le=128)
    hnsw_ef_construction: int = Field(default=40, ge=8, le=1024)
    hnsw_ef_search: int = Field(default=64, ge=1, le=4096)
    ivf_nlist: int | None = Field(default=None, ge=1, le=1_000_000)  # None: ~4 * sqrt(n)
    ivf_nprobe: int = Field(default=8, ge=1, le=65_536)
    ivf_rerank: int = Field(default=4, ge=1, le=256)


class LearningSpec(_Spec):
    """Whether acknowledged examples join the known set, and how many may.

    The reference is never evicted; ``capacity`` bounds the examples learned on top
    of it, and ``eviction`` chooses which learned example is forgotten when full.
    ``pending_capacity`` bounds the novel examples remembered so that they can be
    acknowledged later (oldest forgotten first).
    """

    learn_acknowledged: bool = False
    capacity: int = Field(default=100_000, ge=0)
    eviction: Literal["oldest", "least_recently_matched"] = "oldest"
    pending_capacity: int = Field(default=10_000, ge=0)


class ShiftSpec(_Spec):
    """Distribution-shift detection: a sequential test of the latest calls, per group.

    After every ``every`` calls, the means of the latest ``calls`` embeddings, and of
    seven shorter runs down by half-octave steps, are compared with the reference's mean
    (``whitened_mean``: in the reference's whitened space, covariance shrunk toward
    the identity by ``shrinkage``; ``mean``: a plain centroid distance), together
    with (``spread``) how far the calls lie from the reference in that space. The
    threshold is calibrated on the reference so that stable traffic raises a false
    alarm with probability ``false_alarm_rate`` per ``false_alarm_calls`` calls (see
    :mod:`weave_stream.drift.shift`). Once a shift is detected, a
    ``domain_classifier`` trained on the reference against the calls that moved
    the mean flags each later call that belongs to the new distribution as a
    ``novel_example``.

    ``window`` (the former name of ``calls``) is still accepted, with a warning;
    the removed ADWIN/Page-Hinkley and permutation-test settings are ignored with a
    warning.
    """

    enabled: bool = True
    calls: int = Field(default=80, ge=10, le=10_000)
    every: int = Field(default=1, ge=1, le=10_000)
    statistic: Literal["whitened_mean", "mean"] = "whitened_mean"
    spread: bool = True
    shrinkage: float = Field(default=0.3, gt=0, le=100)
    false_alarm_rate: float = Field(default=0.01, gt=0, lt=0.5)
    false_alarm_calls: int = Field(default=10_000, ge=1_000, le=1_000_000_000)
    domain_classifier: bool = True

    @model_validator(mode="before")
    @classmethod
    def _accept_former_names(cls, data: Any) -> Any:
        if not isinstance(data, Mapping):
            return data
        data = dict(data)
        if "window" in data:
            if "calls" in data:
                raise ValueError("give calls (the number of recent calls tested), not window too")
            data["calls"] = data.pop("window")
            _warn("shift.window is deprecated: it is now shift.calls (a count of calls)")
        removed = sorted(set(data) & _REMOVED_SHIFT_FIELDS)
        for name in removed:
            data.pop(name)
        if removed:
            _warn(
                f"shift settings {removed} are ignored: the sliding sequential test replaced "
                "ADWIN/Page-Hinkley on the novelty stream and the fixed-window permutation test"
            )
        former = {"mmd": "whitened_mean", "centroid": "mean"}
        if data.get("statistic") in former:
            _warn(f"shift.statistic {data['statistic']!r} is now {former[data['statistic']]!r}")
            data["statistic"] = former[data["statistic"]]
        return data


_REMOVED_SHIFT_FIELDS = {
    "detector",
    "adwin_delta",
    "page_hinkley_threshold",
    "page_hinkley_delta",
    "min_instances",
    "calibration",
    "permutations",
    "reference_sample",
}


def _warn(message: str) -> None:
    warnings.warn(f"monitor spec: {message}", FutureWarning, stacklevel=2)


class Monitor(SpecModel):
    """One drift monitor of a topology (see the module docstring).

    ``cooldown`` is a duration (``"5m"`` or seconds; ``cooldown_seconds`` is read too):
    at most one grouped alert per group per cool-down.
    """

    name: str = Field(pattern=_NAME)
    column: str = Field(min_length=1, description="the embedding column to watch")
    text: str | None = Field(
        default=None, description="dotted call path of the document, for alert excerpts"
    )
    reference: ReferenceSpec
    index: IndexSpec = IndexSpec()
    threshold: float | None = Field(default=None, ge=0, description="overrides calibration")
    neighbours: int = Field(default=10, ge=1, le=100, description="known examples per score")
    calibration_quantile: float = Field(default=0.997, ge=0.5, lt=1)
    calibration_sample: int = Field(default=20_000, ge=10)
    learning: LearningSpec = LearningSpec()
    shift: ShiftSpec = ShiftSpec()
    cooldown: Duration = Field(
        default=300.0, ge=0, validation_alias=AliasChoices("cooldown", "cooldown_seconds")
    )
    group_by: tuple[str, ...] = ()
    sample_size: int = Field(default=5, ge=1, le=100)

    @field_validator("text")
    @classmethod
    def _check_text(cls, value: str | None) -> str | None:
        if value is not None:
            FieldPath.parse(value)  # raises ValueError saying what a path looks like
        return value

    @field_validator("group_by")
    @classmethod
    def _check_group_by(cls, value: tuple[str, ...]) -> tuple[str, ...]:
        for path in value:
            if FieldPath.parse(path).column is not None:
                raise ValueError(f"group by {path!r}: group by call fields, not columns")
        return value

    @model_validator(mode="before")
    @classmethod
    def _expand_reference(cls, data: Any) -> Any:
        """Accept ``{first_n: N}``, ``{time_range: {start, end}}`` and ``{jsonl: path}``."""
        if not isinstance(data, Mapping) or not isinstance(data.get("reference"), Mapping):
            return data
        reference = dict(data["reference"])
        if "kind" not in reference and len(reference) == 1:
            ((kind, value),) = reference.items()
            if kind == "first_n":
                reference = {"kind": kind, "n": value}
            elif kind == "jsonl":
                reference = {"kind": kind, "path": value}
            elif kind == "time_range" and isinstance(value, Mapping):
                reference = {"kind": kind, **value}
        return {**data, "reference": reference}


def parse_monitors(topology: str, entries: Iterable[Monitor | Mapping[str, Any]]) -> list[Monitor]:
    """Validate ``monitors:`` entries; a :class:`TopologyError` names each bad one.

    Entries are :class:`Monitor` s or their plain data. The message names the
    topology, the monitor, the field, the bad value and the fix. Monitor names must
    be unique within the topology. The column is not checked here (the topology
    checks it against its columns).
    """
    problems: list[str] = []
    specs = check_entries(Monitor, entries, problems)
    if problems:
        raise TopologyError("\n".join(f"topology {topology!r}, {p}" for p in problems))
    return list(specs)
