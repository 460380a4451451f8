"""Resolved ``calibration: {first_n: N}`` samples in the store's folder, written once.

::

    <store>/calibrations/<topology>/<column>.json   {first_n, text, call_ids, texts}

``text`` is the request's key: the column's text path and a digest of what selects its
calls (source, column filter, N), so a sample of another selection is never reused.

The streaming worker resolves a classify column's sample from the call store once it
holds N calls of the source, and keeps it here, so a restarted worker (or another
worker of the same topology, or a backfill) calibrates on the same texts, not on
whatever the store holds by then. The first sample written wins: a second writer
finds the file and uses it (:meth:`CalibrationFiles.save` returns the one kept).
The file is written to a temporary name and linked into place, so a reader never
sees half of it. A sample taken for another ``first_n`` or text path is not used
(the spec changed): :meth:`CalibrationFiles.load` ignores it and the next save
replaces it.

>>> import tempfile
>>> files = CalibrationFiles(tempfile.mkdtemp())
>>> kept = files.save(Sample("t", "kind", 2, "inputs.q", ("c1", "c2"), ("hi", "ho")))
>>> files.save(Sample("t", "kind", 2, "inputs.q", ("c3", "c4"), ("a", "b"))).call_ids
('c1', 'c2')
>>> files.load("t", "kind", 2, "inputs.q") == kept, files.load("t", "kind", 3, "inputs.q")
(True, None)
"""

from __future__ import annotations

import json
import os
import tempfile
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from weave_stream.errors import StoreError
from weave_stream.store.side_files import file_name, side_folder

__all__ = ["CalibrationFiles", "Sample"]


@dataclass(frozen=True)
class Sample:
    """The texts (and their call ids, in call order) a column's ``{first_n}`` resolved to."""

    topology: str
    column: str
    first_n: int
    text: str  # the column's args.text path
    call_ids: tuple[str, ...]
    texts: tuple[str, ...]

    def to_json(self) -> str:
        return json.dumps(
            {
                "topology": self.topology,
                "column": self.column,
                "first_n": self.first_n,
                "text": self.text,
                "call_ids": list(self.call_ids),
                "texts": list(self.texts),
            }
        )

    @classmethod
    def from_json(cls, raw: str) -> Sample:
        data: dict[str, Any] = json.loads(raw)
        return cls(
            str(data["topology"]),
            str(data["column"]),
            int(data["first_n"]),
            str(data["text"]),
            tuple(str(x) for x in data["call_ids"]),
            tuple(str(x) for x in data["texts"]),
        )


class CalibrationFiles:
    """The resolved samples kept beside a call store (a local folder)."""

    def __init__(self, store: Any) -> None:
        fix = (
            "Point store_url at a folder, or give the classify column a list of texts as "
            "calibration"
        )
        self.root = side_folder(store, "calibrations", StoreError, "calibration samples", fix)

    def path(self, topology: str, column: str) -> Path:
        """The file of ``topology``'s ``column``."""
        for what, name in (("topology", topology), ("column", column)):
            file_name(what, name, StoreError, "a calibration file")
        return self.root / topology / f"{column}.json"

    def load(self, topology: str, column: str, first_n: int, text: str) -> Sample | None:
        """The sample kept for this request, or None (none yet, or one for another spec)."""
        path = self.path(topology, column)
        try:
            sample = Sample.from_json(path.read_text(encoding="utf-8"))
        except FileNotFoundError:
            return None
        except (OSError, ValueError, KeyError, TypeError) as exc:
            raise StoreError(
                f"cannot read the calibration sample {path} ({exc}); delete the file and the "
                "worker takes the sample again from the store"
            ) from exc
        if sample.first_n != first_n or sample.text != text:
            return None
        return sample

    def save(self, sample: Sample) -> Sample:
        """Keep ``sample`` unless one for the same spec is kept already; returns the kept one."""
        path = self.path(sample.topology, sample.column)
        path.parent.mkdir(parents=True, exist_ok=True)
        with tempfile.NamedTemporaryFile(
            "w", dir=path.parent, suffix=".tmp", delete=False, encoding="utf-8"
        ) as handle:
            handle.write(sample.to_json())
        try:
            kept = self.load(sample.topology, sample.column, sample.first_n, sample.text)
            if kept is not None:
                return kept
            try:
                os.link(handle.name, path)  # fails if another writer got there first
            except FileExistsError:  # another writer, or a sample for an older spec
                kept = self.load(sample.topology, sample.column, sample.first_n, sample.text)
                if kept is not None:
                    return kept
                os.replace(handle.name, path)  # the old spec's sample: replace it
        finally:
            Path(handle.name).unlink(missing_ok=True)
        return sample
