"""What a topology's ``topics:`` entry says: a :class:`TopicColumn`, validated when built.

An entry names an embedding column of the topology; declaring it adds a derived
column (``name``, default ``topic``) that assigns each call to its nearest topic of
the column's current topic map (the ``AssignTopic`` op of ``weave_stream.topic_maps``,
named by import path: this layer does not import that one). The streaming worker
also checks each window of assigned calls for ``topic_shift`` / ``new_topic`` alerts
(``watch``) and refits the map from the call store on a schedule (``refit``, over the
calls of the last ``since``; omitted: never refitted automatically). ``frozen`` maps
are assigned to, never refitted. ``max_topics``, ``min_topic_size``, ``k``, ``seed``
and ``budget`` are the fit's knobs, as ``weave-stream topics fit`` takes them.

>>> spec = TopicColumn(column="doc_embedding", refit="1d")
>>> spec.name, spec.refit, spec.since, spec.watch.enabled, spec.watch.window
('topic', 86400.0, 604800.0, True, 3600.0)
>>> TopicColumn(column="e", watch=False).watch.enabled
False
>>> TopicColumn(column="e", frozen=True, refit="1d")
Traceback (most recent call last):
...
weave_stream.errors.TopologyError: topic: field entry: a frozen map is never refitted: drop \
refit, or frozen (got {'column': 'e', 'frozen': True, 'refit': '1d'}); fix the topic
"""

from __future__ import annotations

from collections.abc import Collection, Mapping
from typing import Any

from pydantic import Field, model_validator

from weave_stream.durations import Duration
from weave_stream.topology.models import SpecModel

__all__ = ["ASSIGN_OP", "TopicColumn", "WatchSpec", "check_topic_columns", "is_generated"]

ASSIGN_OP = "weave_stream.topic_maps.assign:AssignTopic"
"""The op of a ``topics:`` entry's column, by import path."""

_COLUMN = r"^[A-Za-z_][A-Za-z0-9_]{0,99}$"


class WatchSpec(SpecModel):
    """The alerts on each window of assigned calls (``watch: false`` turns them off).

    ``window`` is a tumbling window of the calls' ``started_at``; it is checked once
    the latest call seen is ``grace`` past its end (or, idle, once the clock is).
    ``z_threshold``, ``min_calls`` and ``min_new_topic`` are :class:`TopicWatch`'s.
    """

    enabled: bool = True
    window: Duration = Field(default=3600.0, gt=0)
    grace: Duration = Field(default=60.0, ge=0)
    z_threshold: float = Field(default=4.0, gt=0)
    min_calls: int = Field(default=50, ge=1)
    min_new_topic: int = Field(default=8, ge=2)


class TopicColumn(SpecModel):
    """One ``topics:`` entry (see the module docstring)."""

    column: str = Field(min_length=1, description="the embedding column clustered")
    name: str = Field(default="topic", pattern=_COLUMN, description="the column it adds")
    refit: Duration | None = Field(default=None, gt=0)
    since: Duration = Field(default=7 * 86400.0, gt=0)
    frozen: bool = False
    watch: WatchSpec = WatchSpec()
    max_topics: int = Field(default=30, ge=2, le=500)
    min_topic_size: int = Field(default=5, ge=2)
    k: int | None = Field(default=None, ge=2)
    seed: int = 0
    budget: float | None = Field(default=None, ge=0, description="USD per refit's naming")

    @classmethod
    def label(cls) -> str:
        """Messages say ``topic 'topic', field ...``; the section is ``topics:``."""
        return "topic"

    @model_validator(mode="before")
    @classmethod
    def _watch_shorthand(cls, data: Any) -> Any:
        """``watch: true|false`` is ``watch: {enabled: ...}``."""
        if isinstance(data, Mapping) and isinstance(data.get("watch"), bool):
            return {**data, "watch": {"enabled": data["watch"]}}
        return data

    @model_validator(mode="after")
    def _check_frozen(self) -> TopicColumn:
        if self.frozen and self.refit is not None:
            raise ValueError("a frozen map is never refitted: drop refit, or frozen")
        return self

    def op_params(self, topology: str, embedding_ref: str | None) -> dict[str, Any]:
        """The assigning op's params: it follows the column's current map as refits replace it."""
        params: dict[str, Any] = {"topology": topology, "column": self.column, "follow": True}
        if embedding_ref is not None:
            params["embedding_ref"] = embedding_ref
        return params


def is_generated(column: Any, specs: tuple[TopicColumn, ...]) -> bool:
    """Whether ``column`` is the one a ``topics:`` entry adds (so a copy of a topology,
    which passes its columns back in, does not declare it twice)."""
    return (
        getattr(column, "op", None) == ASSIGN_OP
        and bool((getattr(column, "params", None) or {}).get("follow"))
        and any(spec.name == getattr(column, "name", None) for spec in specs)
    )


def check_topic_columns(
    specs: tuple[TopicColumn, ...], columns: Collection[str], problems: list[str]
) -> None:
    """Each entry's embedding column is one of ``columns`` (the topology's own) and the
    name of the column it adds is free; problems appended."""
    names = ", ".join(sorted(columns)) or "none"
    for spec in specs:
        where = f"topic {spec.name!r}"
        if spec.column not in columns and spec.column != spec.name:
            problems.append(
                f"{where}, field column: {spec.column!r} is not a column of the topology (its "
                f"columns: {names}); name the embedding column to cluster"
            )
        elif spec.column in {s.name for s in specs if s is not spec}:
            problems.append(
                f"{where}, field column: {spec.column!r} is a topic column itself; name the "
                "embedding column to cluster"
            )
        if spec.name in columns:
            problems.append(
                f"{where}, field name: the topology already has a column {spec.name!r}; the "
                "topics: entry adds its own, so give it another name (name: ...) or drop the "
                "hand-written one"
            )
