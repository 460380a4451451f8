"""The base of a topology's typed parts (:class:`~weave_stream.topology.aggregates.Aggregate`,
:class:`~weave_stream.topology.monitors.Monitor` and what they hold): frozen pydantic
models whose errors are :class:`~weave_stream.errors.TopologyError` s.

Built in Python (``Aggregate(name=..., window="5m")``), a model that does not validate
raises a ``TopologyError`` naming the kind, the entry, each bad field, the value and
the fix, instead of pydantic's own ``ValidationError``. Entries of a topology are
checked by the topology (:func:`check_entries`), which adds its name to the same words.

>>> class PaneSpec(SpecModel):
...     size: int
>>> PaneSpec(size="big")
Traceback (most recent call last):
...
weave_stream.errors.TopologyError: pane: field size: Input should be a valid integer, \
unable to parse string as an integer (got 'big'); fix the pane
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Mapping
from typing import Any, Self, TypeVar

from pydantic import BaseModel, ConfigDict, ValidationError

from weave_stream.errors import TopologyError, validation_problems

__all__ = ["SpecModel", "check_entries"]


class SpecModel(BaseModel):
    """A frozen pydantic model that refuses unknown fields; its errors are ``TopologyError`` s."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    def __init__(self, /, **data: Any) -> None:
        try:
            super().__init__(**data)
        except ValidationError as exc:
            where = _entry(type(self), data.get("name"))
            raise TopologyError(
                f"{where}" + "; ".join(validation_problems(exc)) + f"; fix the {self.label()}"
            ) from None

    # Pydantic calls a model's own __init__ for every nested value too (an Aggregate's
    # window), unless it is marked as the base one: then nested values are validated
    # in place and their errors keep their field path within the outer entry.
    __init__.__pydantic_base_init__ = True  # type: ignore[attr-defined]

    @classmethod
    def label(cls) -> str:
        """How messages name this kind: ``Aggregate`` is ``aggregate``, ``ShiftSpec`` ``shift``."""
        name = cls.__name__.removesuffix("Spec")
        return re.sub(r"(?<=[a-z0-9])(?=[A-Z])", "_", name).lower()

    @classmethod
    def from_entry(cls, entry: Self | Mapping[str, Any]) -> tuple[Self | None, list[str]]:
        """``entry`` validated (a model is taken as it is), or ``None`` and its problems."""
        if isinstance(entry, cls):
            return entry, []
        try:
            return cls.model_validate(entry), []
        except ValidationError as exc:
            return None, validation_problems(exc)


M = TypeVar("M", bound=SpecModel)


def check_entries(kind: type[M], entries: Any, problems: list[str]) -> tuple[M, ...]:
    """The valid entries of a topology's section (``aggregates:``); problems appended.

    An entry is a ``kind`` model or its plain data (YAML); each problem names the
    entry, the field, the value and the fix. Names must be unique within the section.
    """
    section = f"{kind.label()}s"
    if isinstance(entries, str | Mapping) or not isinstance(entries, Iterable):
        problems.append(
            f"field {section!r}: must be a list of mappings (one per {kind.label()}), "
            f"got {entries!r:.80}"
        )
        return ()
    valid: list[M] = []
    for index, entry in enumerate(entries):
        model, found = kind.from_entry(entry)
        if model is None:
            name = entry.get("name", f"#{index}") if isinstance(entry, Mapping) else f"#{index}"
            problems.append(
                _entry(kind, name)
                + "; ".join(found)
                + f"; fix the {section}: entry of the topology"
            )
        elif any(getattr(known, "name", None) == getattr(model, "name", ...) for known in valid):
            problems.append(
                f"two {section} are named {getattr(model, 'name', '?')!r}; "
                f"give each {kind.label()} a unique name"
            )
        else:
            valid.append(model)
    return tuple(valid)


def _entry(kind: type[SpecModel], name: Any) -> str:
    return f"{kind.label()} {name!r}, " if name is not None else f"{kind.label()}: "
