"""``Experiment``: data x variants x trials, a tree of results computed through the cache.

>>> from weave_stream.ops import op
>>> from weave_stream.topology.spec import Column
>>> @op
... def shout(text: str) -> str:
...     return text.upper()
>>> @op
... def whisper(text: str) -> str:
...     return text.lower()
>>> @op
... def is_loud(text: str) -> bool:
...     return text.isupper()
>>> experiment = Experiment(
...     "tone",
...     data=[{"text": "Hello there"}, {"text": "good MORNING"}],
...     columns=[Column("reply", shout, args={"text": "inputs.text"}),
...              Column("loud", is_loud, args={"text": "columns.reply"})],
...     variants=[Variant("shout"), Variant("whisper", ops={"reply": whisper})],
...     scores=["loud"],
... )
>>> result = experiment.run()
>>> result.summary()[["variant", "examples", "mean"]].values.tolist()
[['shout', 2, 1.0], ['whisper', 2, 0.0]]
>>> experiment.run().computed()  # everything is in the cache now
{'shout': 0, 'whisper': 0}
"""

from __future__ import annotations

import asyncio
import dataclasses
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from weave_stream.columns.cache import MemoryCache, ResultCache
from weave_stream.config import Settings
from weave_stream.errors import BudgetExceededError, ExperimentError
from weave_stream.experiments.data import Examples, load_examples
from weave_stream.experiments.result import ExperimentResult
from weave_stream.experiments.run import ExperimentPlan, plan_experiment, run_cells
from weave_stream.experiments.spec import Variant, base_topology, check_names, variant_topology
from weave_stream.runners.local import DEFAULT_BATCH_SIZE
from weave_stream.topology.spec import Column, Topology

__all__ = ["Experiment"]


@dataclasses.dataclass(frozen=True)
class Experiment:
    """An experiment: ``data`` (examples), the ``columns`` every variant computes (or a
    base ``topology``), the ``variants`` and how many ``trials`` of each
    non-deterministic op.

    ``scores`` are the columns (or ``column.field``) summarised and compared; ``by`` a
    field of the examples (``inputs.label``) or a column to group by; ``output`` the
    column shown beside inputs when examples are listed (default: the first column).
    ``cache`` keeps every cell; the default is an in-memory cache that copies made
    with :meth:`replace` share, so a re-run computes only new cells. Everything is
    validated here, before anything runs; problems raise
    :class:`~weave_stream.errors.ExperimentError` naming the fix.
    """

    name: str
    data: Any
    columns: Sequence[Column] | Topology = ()
    variants: Sequence[Variant] = (Variant("base"),)
    trials: int | None = None
    scores: Sequence[str] = ()
    by: str | None = None
    output: str | None = None
    cache: ResultCache = dataclasses.field(default_factory=MemoryCache, compare=False)
    settings: Settings | None = dataclasses.field(default=None, compare=False, repr=False)
    search_path: Path | None = dataclasses.field(default=None, compare=False, repr=False)
    id_field: str = "id"
    batch_size: int = DEFAULT_BATCH_SIZE
    examples: Examples = dataclasses.field(init=False, compare=False, repr=False)
    topologies: dict[str, Topology] = dataclasses.field(init=False, compare=False, repr=False)

    def __post_init__(self) -> None:
        check_names(self.name, list(self.variants))
        if self.trials is not None and (
            isinstance(self.trials, bool) or not isinstance(self.trials, int) or self.trials < 1
        ):
            raise ExperimentError(
                f"experiment {self.name!r}: trials must be a whole number >= 1, got "
                f"{self.trials!r} (1 for deterministic ops; more to measure the spread of a "
                "non-deterministic one)"
            )
        base_columns = self.columns.columns if isinstance(self.columns, Topology) else self.columns
        has_columns = bool(base_columns)
        if not has_columns and not all(v.topology is not None for v in self.variants):
            raise ExperimentError(
                f"experiment {self.name!r} has no columns: give columns=[Column(...)], a "
                "base topology, or a topology in every variant"
            )
        base = base_topology(
            self.name, self.columns, settings=self.settings, search_path=self.search_path
        )
        topologies = {v.name: variant_topology(self.name, base, v) for v in self.variants}
        examples = load_examples(
            self.data, id_field=self.id_field, where=f"experiment {self.name!r}"
        )
        object.__setattr__(self, "topologies", topologies)
        object.__setattr__(self, "examples", examples)
        columns = {c.name for t in topologies.values() for c in t.columns}
        for key in [*self.scores, *([self.output] if self.output else [])]:
            if key.partition(".")[0] not in columns:
                raise ExperimentError(
                    f"experiment {self.name!r}: {key!r} names no column; the columns are "
                    f"{', '.join(sorted(columns))}"
                )

    def replace(self, **changes: Any) -> Experiment:
        """A copy with ``changes`` (more ``trials``, more ``variants``, new ``data``...),
        sharing this experiment's cache unless ``cache`` is among the changes."""
        return dataclasses.replace(self, **changes)

    def with_variants(self, *variants: Variant) -> Experiment:
        """A copy with ``variants`` added after the existing ones."""
        return self.replace(variants=[*self.variants, *variants])

    # -- pricing, running, reading -------------------------------------------------------
    async def aplan(self) -> ExperimentPlan:
        """See :meth:`plan`."""
        return await plan_experiment(
            self.name,
            self.topologies,
            self.examples.calls,
            self.cache,
            trials=self.trials,
            batch_size=self.batch_size,
        )

    def plan(self) -> ExperimentPlan:
        """What a run would compute and cost (only the cells not cached yet); nothing runs."""
        return asyncio.run(self.aplan())

    async def arun(self, *, budget: float | None = None) -> ExperimentResult:
        """See :meth:`run`."""
        if budget is not None:
            plan = await self.aplan()
            reason = plan.over_budget(budget)
            if reason is not None:
                raise BudgetExceededError(f"not starting: {reason}.\n\n{plan.render()}")
        return self._result(await self._cells(compute=True))

    def run(self, *, budget: float | None = None) -> ExperimentResult:
        """Compute the cells not cached yet (refusing to start past ``budget`` USD); the result.

        From inside an event loop, await :meth:`arun`.
        """
        return asyncio.run(self.arun(budget=budget))

    async def aload(self) -> ExperimentResult:
        """See :meth:`load`."""
        return self._result(await self._cells(compute=False))

    def load(self) -> ExperimentResult:
        """The result from cached cells only: no op runs; a missing cell says 'not computed'."""
        return asyncio.run(self.aload())

    async def _cells(self, *, compute: bool) -> Any:
        return await run_cells(
            self.topologies,
            self.examples.calls,
            self.cache,
            trials=self.trials,
            batch_size=self.batch_size,
            compute=compute,
        )

    def _result(self, cells: Any) -> ExperimentResult:
        return ExperimentResult(
            self.name, self.examples, cells, list(self.scores), self.by, self.output
        )
