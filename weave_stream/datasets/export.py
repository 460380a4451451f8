"""A dataset's rows to a file and back: JSONL (Weave's dataset row shape), CSV, Parquet.

Each row is one object ``{"id", <fields>..., "source_call", "source_ref"}`` — in
JSONL exactly as a ``weave.Dataset(rows=...)`` takes it. CSV and Parquet hold one
column per field; a field holding lists or objects is written as JSON text there,
and Parquet names those columns in its metadata, so :func:`read_export` gives back
exactly what was exported (CSV gives back scalars as text).

>>> import pandas as pd, tempfile, pathlib
>>> frame = pd.DataFrame([{"id": "r-1", "text": "hi", "tags": ["a"], "score": 0.5,
...                        "source_call": "c1", "source_ref": None}])
>>> folder = pathlib.Path(tempfile.mkdtemp())
>>> for suffix in (".jsonl", ".parquet"):
...     back = read_export(export_rows(frame, folder / f"rows{suffix}"))
...     print(suffix, back.to_dict(orient="records") == frame.to_dict(orient="records"))
.jsonl True
.parquet True
"""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Any

import orjson

from weave_stream.errors import DatasetError

if TYPE_CHECKING:
    import pandas as pd

__all__ = ["FORMATS", "export_rows", "read_export"]

FORMATS = {".jsonl": "jsonl", ".json": "jsonl", ".csv": "csv", ".parquet": "parquet"}
_JSON_COLUMNS = b"weave_stream.json_columns"


def _format(path: Path) -> str:
    found = FORMATS.get(path.suffix.lower())
    if found is None:
        raise DatasetError(
            f"cannot export to {path}: name a .jsonl, .csv or .parquet file "
            "(the suffix picks the format)"
        )
    return found


def _nested(frame: pd.DataFrame) -> list[str]:
    return [
        name
        for name in frame.columns
        if frame[name].map(lambda v: isinstance(v, dict | list | tuple)).any()
    ]


def _as_text(value: Any) -> Any:
    if isinstance(value, dict | list | tuple):
        return orjson.dumps(value, option=orjson.OPT_NON_STR_KEYS).decode()
    return value


def export_rows(frame: pd.DataFrame, path: Path) -> Path:
    """Write ``frame`` (a dataset's rows) to ``path``; its format from the suffix."""
    kind = _format(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    if kind == "jsonl":
        with path.open("wb") as out:
            for record in frame.to_dict(orient="records"):
                clean = {k: (None if _missing(v) else v) for k, v in record.items()}
                out.write(orjson.dumps(clean, option=orjson.OPT_SERIALIZE_NUMPY) + b"\n")
        return path
    nested = _nested(frame)
    flat = frame.copy()
    for name in nested:
        flat[name] = flat[name].map(_as_text)
    if kind == "csv":
        flat.to_csv(path, index=False)
        return path
    import pyarrow as pa
    import pyarrow.parquet as pq

    table = pa.Table.from_pandas(flat, preserve_index=False)
    metadata = {**(table.schema.metadata or {}), _JSON_COLUMNS: orjson.dumps(nested)}
    pq.write_table(table.replace_schema_metadata(metadata), path)
    return path


def _missing(value: Any) -> bool:
    try:
        return bool(value != value)  # NaN
    except (TypeError, ValueError):
        return False


def read_export(path: str | Path) -> pd.DataFrame:
    """The rows a file written by :func:`export_rows` holds."""
    import pandas as pd

    path = Path(path)
    kind = _format(path)
    if kind == "jsonl":
        lines = path.read_bytes().splitlines()
        return pd.DataFrame([orjson.loads(line) for line in lines if line.strip()])
    if kind == "csv":
        return pd.read_csv(path)
    import pyarrow.parquet as pq

    table = pq.read_table(path)
    nested = orjson.loads((table.schema.metadata or {}).get(_JSON_COLUMNS, b"[]"))
    frame = table.to_pandas()
    for name in nested:
        frame[name] = frame[name].map(lambda v: None if v is None else orjson.loads(v))
    return frame
