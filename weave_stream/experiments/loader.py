"""The YAML form of an experiment, as ``weave-stream experiment FILE`` runs it.

::

    name: judge-prompts
    data: rows.jsonl                  # a JSONL/CSV/Parquet file beside this one, or
    # data: {corpus: {categories: [money, science], per_category: 20, form: pairs}}
    columns:                          # as in a topology; what every variant computes
      - name: judge
        op: judge
        params: {prompt: "Document:\\n{question}\\n\\nExtraction:\\n{reply}", temperature: 0.7}
        args: {question: inputs.question, reply: inputs.reply}
    variants:
      - name: stays                   # the columns as they are
      - name: covers                  # ops, params, topology (a file) and slice, as in Python
        params: {judge: {prompt: "Document:\\n{reply}\\n\\nExtraction:\\n{question}"}}
    trials: 3
    scores: [judge.score]
    by: inputs.category
    output: judge                     # optional: the column shown beside inputs
    compare: [stays, covers]          # optional: the comparison to print and plot
    explain: why                      # optional: an explain column to group into failure kinds

>>> spec = experiment_from_dict({"name": "t", "data": [{"text": "hi"}],
...     "columns": [{"name": "n", "op": "weave_stream.ops.resolve:_example_length",
...                  "args": {"text": "inputs.text"}}], "scores": ["n"]})
>>> spec.experiment.run().summary()["mean"].tolist()
[2.0]
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import yaml

from weave_stream.columns.cache import MemoryCache, ResultCache
from weave_stream.config import Settings
from weave_stream.errors import ExperimentError, TopologyError
from weave_stream.experiments.experiment import Experiment
from weave_stream.experiments.spec import Variant
from weave_stream.topology.loader import load_topology, topology_from_dict

__all__ = ["ExperimentFile", "experiment_from_dict", "load_experiment"]

_KEYS = frozenset(
    {
        "name",
        "description",
        "data",
        "id_field",
        "columns",
        "variants",
        "trials",
        "scores",
        "by",
        "output",
        "compare",
        "explain",
    }
)
_VARIANT_KEYS = frozenset({"name", "description", "ops", "params", "topology", "slice"})


@dataclass(frozen=True)
class ExperimentFile:
    """An experiment read from YAML, with what its file asks to show."""

    experiment: Experiment
    compare: tuple[str, str] | None = None
    explain: str | None = None
    description: str = ""


def load_experiment(
    path: str | Path,
    *,
    settings: Settings | None = None,
    cache: ResultCache | None = None,
    trials: int | None = None,
) -> ExperimentFile:
    """Read and validate the experiment in YAML file ``path`` (nothing runs)."""
    path = Path(path)
    if not path.is_file():
        raise ExperimentError(f"experiment file {path} does not exist")
    try:
        data = yaml.safe_load(path.read_text(encoding="utf-8"))
    except yaml.YAMLError as exc:
        raise ExperimentError(f"experiment file {path} is not valid YAML: {exc}") from None
    return experiment_from_dict(
        data, settings=settings, folder=path.parent, cache=cache, trials=trials, origin=str(path)
    )


def experiment_from_dict(
    data: Any,
    *,
    settings: Settings | None = None,
    folder: Path | None = None,
    cache: ResultCache | None = None,
    trials: int | None = None,
    origin: str = "experiment spec",
) -> ExperimentFile:
    """Build (and so validate) an experiment from its plain-data form."""
    if not isinstance(data, Mapping):
        raise ExperimentError(f"{origin}: an experiment is a mapping (name, data, columns, ...)")
    unknown = sorted(set(data) - _KEYS)
    if unknown:
        raise ExperimentError(
            f"{origin}: unknown fields {unknown}; an experiment has {sorted(_KEYS)}"
        )
    for required in ("name", "data"):
        if required not in data:
            raise ExperimentError(f"{origin}: the field {required!r} is missing")
    name = data["name"]
    where = f"experiment {name!r} ({origin})"
    folder = folder or Path.cwd()
    try:
        base = topology_from_dict(
            {"name": name, "columns": data.get("columns") or []},
            settings=settings,
            search_path=folder,
            origin=origin,
        )
    except TopologyError as exc:
        raise ExperimentError(f"{where}, columns: {exc}") from None
    raw_variants = data.get("variants") or [{"name": "base"}]
    if not isinstance(raw_variants, list):
        raise ExperimentError(f"{where}, variants: must be a list of variants")
    variants = [
        _variant(entry, index, where, folder, settings) for index, entry in enumerate(raw_variants)
    ]
    compare = data.get("compare")
    if compare is not None and (not isinstance(compare, list) or len(compare) != 2):
        raise ExperimentError(f"{where}, compare: name two variants, e.g. [a, b]; got {compare!r}")
    names = [v.name for v in variants]
    for variant in compare or []:
        if variant not in names:
            raise ExperimentError(f"{where}, compare: no variant {variant!r}; variants: {names}")
    scores = data.get("scores") or []
    if isinstance(scores, str) or not isinstance(scores, list):
        raise ExperimentError(f"{where}, scores: must be a list, e.g. [judge.score]")
    experiment = Experiment(
        name,
        data=_data(data["data"], folder, where),
        columns=base,
        variants=variants,
        trials=trials if trials is not None else data.get("trials"),
        scores=[str(s) for s in scores],
        by=data.get("by"),
        output=data.get("output"),
        cache=cache if cache is not None else MemoryCache(),
        settings=settings,
        search_path=folder,
        id_field=str(data.get("id_field") or "id"),
    )
    explain = data.get("explain")
    if explain is not None and explain not in {c.name for c in base.columns}:
        raise ExperimentError(f"{where}, explain: {explain!r} is not one of the columns")
    pair = (str(compare[0]), str(compare[1])) if compare else None
    return ExperimentFile(experiment, pair, explain, str(data.get("description") or ""))


def _variant(
    entry: Any, index: int, where: str, folder: Path, settings: Settings | None
) -> Variant:
    if isinstance(entry, str):
        return Variant(entry)
    if not isinstance(entry, Mapping) or "name" not in entry:
        raise ExperimentError(f"{where}, variants[{index}]: a variant is a mapping with a name")
    unknown = sorted(set(entry) - _VARIANT_KEYS)
    if unknown:
        raise ExperimentError(
            f"{where}, variant {entry['name']!r}: unknown fields {unknown}; a variant has "
            f"{sorted(_VARIANT_KEYS)}"
        )
    topology = None
    if entry.get("topology") is not None:
        try:
            topology = load_topology(folder / str(entry["topology"]), settings=settings)
        except TopologyError as exc:
            raise ExperimentError(f"{where}, variant {entry['name']!r}, topology: {exc}") from None
    for kind in ("ops", "params"):
        if not isinstance(entry.get(kind) or {}, Mapping):
            raise ExperimentError(
                f"{where}, variant {entry['name']!r}, {kind}: must map column -> change"
            )
    return Variant(
        name=entry["name"],
        ops=dict(entry.get("ops") or {}),
        params=dict(entry.get("params") or {}),
        topology=topology,
        slice=entry.get("slice"),
        description=str(entry.get("description") or ""),
    )


def _data(spec: Any, folder: Path, where: str) -> Any:
    if isinstance(spec, str):
        return folder / spec
    if isinstance(spec, list):
        return spec
    if (
        isinstance(spec, Mapping)
        and set(spec) == {"corpus"}
        and isinstance(spec["corpus"], Mapping)
    ):
        from weave_stream.demo.samples import corpus_examples

        try:
            return corpus_examples(**dict(spec["corpus"]))
        except (TypeError, ValueError) as exc:
            raise ExperimentError(
                f"{where}, data.corpus: {exc} (it takes language, categories, per_category, form)"
            ) from None
    if isinstance(spec, Mapping) and set(spec) == {"file"}:
        return folder / str(spec["file"])
    raise ExperimentError(
        f"{where}, data: give a file (rows.jsonl, .csv, .parquet), a list of rows, or "
        "{corpus: {categories: [...], per_category: N, form: documents|pairs}}"
    )
