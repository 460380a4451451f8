"""Topic maps in the store's folder: every version kept, one of them current.

::

    <store>/topic_maps/<topology>/<column>/<digest>.json   every map fitted (immutable)
    <store>/topic_maps/<topology>/<column>/CURRENT         the ref assignment uses now

Writes go to a temporary file and are renamed into place, so a reader (a worker
starting, the CLI) never sees half a map; a worker restart reads CURRENT and keeps
assigning with the same map — it is stored, never recomputed.

>>> import tempfile
>>> from weave_stream.store.topic_map import TopicMap
>>> maps = MapStore(tempfile.mkdtemp())
>>> m = TopicMap(topology="t", column="c", embedding_ref="embed:1", ref="topicmap:ab12", topics=())
>>> maps.save(m, current=True).name
'ab12.json'
>>> maps.current("t", "c").ref, maps.refs("t", "c")
('topicmap:ab12', ['topicmap:ab12'])
"""

from __future__ import annotations

import os
import tempfile
from pathlib import Path
from typing import Any

from weave_stream.errors import TopicError
from weave_stream.store.side_files import file_name, side_folder
from weave_stream.store.topic_map import TopicMap

__all__ = ["MapStore"]


class MapStore:
    """The topic maps kept beside a call store (a local folder)."""

    def __init__(self, store: Any) -> None:
        fix = "Point store_url at a folder (or mount the bucket) to fit topics"
        self.root = side_folder(store, "topic_maps", TopicError, "topic maps", fix)

    def _folder(self, topology: str, column: str) -> Path:
        for what, name in (("topology", topology), ("column", column)):
            file_name(what, name, TopicError, "a topic map folder")
        return self.root / topology / column

    def save(self, topic_map: TopicMap, *, current: bool = True) -> Path:
        """Write ``topic_map`` (and make it current); returns its file."""
        folder = self._folder(topic_map.topology, topic_map.column)
        folder.mkdir(parents=True, exist_ok=True)
        path = folder / f"{topic_map.ref.removeprefix('topicmap:')}.json"
        _write_atomically(path, topic_map.to_json())
        if current:
            _write_atomically(folder / "CURRENT", topic_map.ref.encode())
        return path

    def refs(self, topology: str, column: str) -> list[str]:
        """The refs of every stored map of this column, oldest first."""
        folder = self._folder(topology, column)
        files = sorted(folder.glob("*.json"), key=lambda p: (p.stat().st_mtime, p.name))
        return [f"topicmap:{path.stem}" for path in files]

    def load(self, topology: str, column: str, ref: str) -> TopicMap:
        """The stored map ``ref`` (:class:`TopicError` naming what is there if absent)."""
        path = self._folder(topology, column) / f"{ref.removeprefix('topicmap:')}.json"
        if not path.is_file():
            known = ", ".join(self.refs(topology, column)) or "none"
            raise TopicError(
                f"no topic map {ref} for {topology}.{column} in {self.root}; stored: {known}"
            )
        return TopicMap.from_json(path.read_bytes())

    def current(self, topology: str, column: str) -> TopicMap:
        """The current map of ``topology.column``; :class:`TopicError` if none was fitted."""
        pointer = self._folder(topology, column) / "CURRENT"
        if not pointer.is_file():
            raise TopicError(
                f"no topic map for {topology}.{column} in {self.root}: run "
                f"`weave-stream topics fit {topology} --column {column}` first"
            )
        return self.load(topology, column, pointer.read_text().strip())

    def current_ref(self, topology: str, column: str) -> str | None:
        """The ref CURRENT points at (one small read), or None when none was fitted yet."""
        try:
            return (self._folder(topology, column) / "CURRENT").read_text().strip() or None
        except FileNotFoundError:
            return None

    def current_or_none(self, topology: str, column: str) -> TopicMap | None:
        """The current map, or None when none was fitted yet."""
        if not (self._folder(topology, column) / "CURRENT").is_file():
            return None
        return self.current(topology, column)


def _write_atomically(path: Path, data: bytes) -> None:
    handle, temporary = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.")
    try:
        with os.fdopen(handle, "wb") as file:
            file.write(data)
            file.flush()
            os.fsync(file.fileno())
        os.replace(temporary, path)
    except BaseException:
        Path(temporary).unlink(missing_ok=True)
        raise
