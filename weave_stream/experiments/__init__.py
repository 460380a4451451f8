"""Experiments: variants x examples x trials, computed through the result cache, compared honestly.

::

    data (DataFrame, JSONL, calls, calls() query, dataset) ─► examples (data.py)
    columns + variants (ops, params, topologies, slices)    ─► a topology per variant (spec.py)
    plan (only missing cells priced) ─► run: derive_batch + result cache (run.py)
        ─► ExperimentResult: cells ─► per-example means ─► summary, compare, plots,
                                                           failure kinds (no op runs)

>>> from weave_stream.experiments import Experiment, Variant
>>> Experiment("x", data=[{"t": "a"}], variants=[Variant("v"), Variant("v")])  # doctest: +ELLIPSIS
Traceback (most recent call last):
...
weave_stream.errors.ExperimentError: experiment 'x': variant name 'v' is used twice; ...
"""

from __future__ import annotations

from weave_stream.experiments.compare import ExperimentComparison, compare_variants
from weave_stream.experiments.data import Examples, load_examples
from weave_stream.experiments.experiment import Experiment
from weave_stream.experiments.result import ExperimentResult
from weave_stream.experiments.run import ExperimentPlan
from weave_stream.experiments.spec import Variant

__all__ = [
    "Examples",
    "Experiment",
    "ExperimentComparison",
    "ExperimentPlan",
    "ExperimentResult",
    "Variant",
    "compare_variants",
    "load_examples",
]
