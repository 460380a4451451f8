"""Folders of small files kept beside a local call store: topic maps, calibration samples.

Both live under the store's folder (``<store>/topic_maps``, ``<store>/calibrations``),
named by topology and column, so every worker and the CLI find the same files.

>>> side_folder("/data/store", "topic_maps", ValueError, "topic maps", "use a folder")
PosixPath('/data/store/topic_maps')
>>> file_name("column", "doc embedding", ValueError, "a topic map folder")
Traceback (most recent call last):
...
ValueError: column name 'doc embedding' cannot name a topic map folder
"""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

__all__ = ["file_name", "side_folder"]

_NAME = re.compile(r"^[A-Za-z0-9_.-]+$")


def side_folder(store: Any, folder: str, error: type[Exception], kept: str, fix: str) -> Path:
    """``folder`` beside ``store`` (a Store, or its folder); ``error`` when the store is not
    a local folder, saying what is ``kept`` there and the ``fix``."""
    location = getattr(store, "location", store)
    if getattr(store, "is_local", True) is False:
        raise error(f"{kept} are kept in a local store folder; the store is {location!r}. {fix}")
    return Path(str(location)) / folder


def file_name(what: str, name: str, error: type[Exception], use: str) -> str:
    """``name`` (of a topology or column) when it can name a file or folder, else ``error``."""
    if not _NAME.match(name):
        raise error(f"{what} name {name!r} cannot name {use}")
    return name
