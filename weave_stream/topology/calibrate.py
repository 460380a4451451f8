"""Resolve a topology's ``calibration: {first_n: N}`` columns to fixed samples of texts.

A column's request (:mod:`weave_stream.topology.calibration`) becomes the texts of the
first N calls it would classify, in call order (:func:`~weave_stream.ingest.call.call_order`:
``started_at``, then id), whatever order the calls were given or arrived in. The
resolved topology has those texts as the column's ``calibration``, so its op's ref
carries their digest: the same calls give the same ref, wherever it runs.

With fewer than N such calls the column stays uncalibrated (its own ref, so no value
is mislabelled) and :class:`Calibrated` says so: the streaming worker does the same
until N calls are stored.

>>> from weave_stream.topology.spec import Column, Topology
>>> topology = Topology("t", [Column("kind", "classify", args={"text": "inputs.q"},
...     params={"labels": ["spam", "ham"], "calibration": {"first_n": 10}})])
>>> calls = [{"id": f"c{i:02d}", "started_at": 1795662000 + i, "inputs": {"q": f"text {i}"}}
...          for i in reversed(range(12))]
>>> calibrated = calibrate(topology, calls)
>>> calibrated.samples["kind"][:3], len(calibrated.samples["kind"]), calibrated.pending
(('text 0', 'text 1', 'text 2'), 10, ())
>>> calibrated.topology.column("kind").op.ref != topology.column("kind").op.ref
True
>>> calibrate(topology, calls[:5]).notes
["column 'kind': calibration needs the first 10 calls of the source with a text at \
inputs.q; 5 found, so it is computed uncalibrated (give more calls, or a smaller first_n)"]
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, replace

from weave_stream.ingest.call import Call, call_order, parse_call_object
from weave_stream.topology.calibration import CalibrationRequest
from weave_stream.topology.selection import MissingFieldError
from weave_stream.topology.spec import Topology

__all__ = ["Calibrated", "calibrate", "first_n_sample", "with_samples"]


@dataclass(frozen=True)
class Calibrated:
    """A topology with its ``{first_n}`` calibrations resolved where there were enough calls.

    ``samples`` maps each resolved column to its texts and ``call_ids`` to the calls
    they came from (call order); ``pending`` lists the requests still short of calls,
    with ``found`` saying how many they have; ``notes`` say so in words.
    """

    topology: Topology
    samples: Mapping[str, tuple[str, ...]]
    call_ids: Mapping[str, tuple[str, ...]]
    pending: tuple[CalibrationRequest, ...]
    found: Mapping[str, int]

    @property
    def notes(self) -> list[str]:
        """One line per column still short of calls."""
        return [
            f"column {request.column!r}: calibration needs the first {request.n} calls of the "
            f"source with a text at {request.text.text}; {self.found[request.column]} found, so "
            "it is computed uncalibrated (give more calls, or a smaller first_n)"
            for request in self.pending
        ]


def first_n_sample(
    topology: Topology, request: CalibrationRequest, calls: Iterable[Call]
) -> list[tuple[str, str]]:
    """``(call id, text)`` of the first ``request.n`` calls the column classifies, in call
    order (fewer when ``calls`` hold fewer); a call id given twice counts once."""
    sample: list[tuple[str, str]] = []
    seen: set[str] = set()
    for call in sorted(calls, key=call_order):
        if call.id in seen:
            continue
        seen.add(call.id)
        data = call.to_dict()
        if not topology.selects(call, data):
            continue
        if request.filter is not None and not request.filter.matches(data, {}):
            continue
        try:
            text = request.text.resolve(data, {})
        except MissingFieldError:
            continue
        if isinstance(text, str) and text.strip():
            sample.append((call.id, text))
            if len(sample) == request.n:
                break
    return sample


def calibrate(topology: Topology, calls: Iterable[Call | Mapping[str, object]]) -> Calibrated:
    """Resolve every ``{first_n}`` calibration of ``topology`` from ``calls`` (any order)."""
    loaded = [call if isinstance(call, Call) else parse_call_object(call) for call in calls]
    samples: dict[str, tuple[str, ...]] = {}
    call_ids: dict[str, tuple[str, ...]] = {}
    pending = []
    found = {}
    for request in topology.calibrations:
        sample = first_n_sample(topology, request, loaded)
        found[request.column] = len(sample)
        if len(sample) < request.n:
            pending.append(request)
            continue
        call_ids[request.column] = tuple(call_id for call_id, _ in sample)
        samples[request.column] = tuple(text for _, text in sample)
    resolved = with_samples(topology, samples) if samples else topology
    return Calibrated(resolved, samples, call_ids, tuple(pending), found)


def with_samples(topology: Topology, samples: Mapping[str, Sequence[str]]) -> Topology:
    """``topology`` with the columns named in ``samples`` calibrated on those texts."""
    unknown = sorted(set(samples) - {request.column for request in topology.calibrations})
    if unknown:
        raise ValueError(f"columns {unknown} have no calibration {{first_n}} to resolve")
    columns = [
        replace(column, params={**column.params, "calibration": list(samples[column.name])})
        if column.name in samples
        else column
        for column in topology.columns
    ]
    return replace(topology, columns=tuple(columns))
