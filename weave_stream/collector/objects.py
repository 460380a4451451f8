"""Op code and the other objects a weave client stores: kept on ``<prefix>.objects``.

Before its first call of an op, the client sends the op's code: ``obj/create`` (an
object whose ``val`` names its files by digest) and ``file/create`` (each file's
bytes). The collector answers with the digests Weave's own server computes (so the
op ref the client then puts on its calls, ``weave:///<entity>/<project>/op/<name>:
<digest>``, is the ref W&B would give it) and keeps both on the compacted topic
``<prefix>.objects``, keyed ``obj/<project_id>/<object_id>:<digest>`` and
``file/<project_id>/<digest>``. :func:`read_op_code` finds a call's op code there
(``weave-stream op-code REF``). Tables (``table/create``) are kept the same way.

The digests of an op captured from weave 0.54.0 (the file's is the one the client
expected; the object's is the one in the op refs of its calls):

>>> code = b"import weave\\n\\n@weave.op\\ndef add(a: int, b: int) -> int:\\n    return a + b\\n"
>>> file_digest(code)
'svSmZ0SThCOhUXeZnG5cZbxe7cpO4NLXfarCU7UKoW4'
>>> val = {"_type": "CustomWeaveType", "weave_type": {"type": "Op"},
...        "files": {"obj.py": "svSmZ0SThCOhUXeZnG5cZbxe7cpO4NLXfarCU7UKoW4"}}
>>> record, answer = obj_create({"obj": {"project_id": "team/project", "object_id": "add",
...                                      "val": val}})
>>> answer["digest"]
'XYz4Gdyk0XWEwh0lNtczT76Dy92LdejNYiUxJ8jLckY'
>>> record[0].decode()
'obj/team/project/add:XYz4Gdyk0XWEwh0lNtczT76Dy92LdejNYiUxJ8jLckY'
"""

from __future__ import annotations

import base64
import hashlib
import json
import re
from dataclasses import dataclass
from typing import Any

import orjson

from weave_stream.broker.kafka import read_topic
from weave_stream.config import Settings
from weave_stream.errors import CollectorRequestError

__all__ = [
    "OpCode",
    "file_create",
    "file_digest",
    "obj_create",
    "read_op_code",
    "table_create",
]

Record = tuple[bytes, bytes]
_OP_REF = re.compile(r"^weave:///(?P<project>[^/]+/[^/]+)/op/(?P<name>[^:/]+):(?P<digest>[^/]+)$")


def file_digest(content: bytes) -> str:
    """Weave's digest: URL-safe base64 of SHA-256, ``-``/``_`` written ``X``/``Y``, unpadded."""
    encoded = base64.urlsafe_b64encode(hashlib.sha256(content).digest()).decode()
    return encoded.replace("-", "X").replace("_", "Y").rstrip("=")


def _json_digest(value: Any) -> str:
    return file_digest(json.dumps(value, sort_keys=True).encode())


def obj_create(body: Any) -> tuple[Record, dict[str, Any]]:
    """``POST /obj/create``: ``{"obj": {"project_id", "object_id", "val", ...}}``."""
    obj = body.get("obj") if isinstance(body, dict) else None
    if not isinstance(obj, dict) or not all(
        isinstance(obj.get(name), str) for name in ("project_id", "object_id")
    ):
        raise CollectorRequestError(
            400, 'obj/create: expected {"obj": {"project_id": ..., "object_id": ..., "val": ...}}'
        )
    digest = _json_digest(obj.get("val"))
    key = f"obj/{obj['project_id']}/{obj['object_id']}:{digest}".encode()
    return (key, orjson.dumps({**obj, "digest": digest})), {
        "digest": digest,
        "object_id": obj["object_id"],
    }


def file_create(project_id: str, content: bytes) -> tuple[Record, dict[str, Any]]:
    """``POST /file/create`` (multipart ``project_id`` and ``file``)."""
    digest = file_digest(content)
    return (f"file/{project_id}/{digest}".encode(), content), {"digest": digest}


def table_create(body: Any) -> tuple[Record, dict[str, Any]]:
    """``POST /table/create``: ``{"table": {"project_id", "rows": [...]}}``."""
    table = body.get("table") if isinstance(body, dict) else None
    if not isinstance(table, dict) or not isinstance(table.get("rows"), list):
        raise CollectorRequestError(
            400, 'table/create: expected {"table": {"project_id": ..., "rows": [...]}}'
        )
    row_digests = [_json_digest(row) for row in table["rows"]]
    digest = hashlib.sha256("".join(row_digests).encode()).hexdigest()
    key = f"table/{table.get('project_id')}/{digest}".encode()
    return (key, orjson.dumps({**table, "digest": digest})), {
        "digest": digest,
        "row_digests": row_digests,
    }


@dataclass(frozen=True)
class OpCode:
    """An op as the client stored it: its ref, its object, and its files' contents."""

    ref: str
    obj: dict[str, Any]
    files: dict[str, str]


async def read_op_code(settings: Settings, op_ref: str) -> OpCode | None:
    """The code of the op ``op_ref`` (a call's ``op_name``), from ``<prefix>.objects``.

    None when the collector never received that op. Raises ``ValueError`` for a
    string that is not an op ref.
    """
    match = _OP_REF.match(op_ref)
    if match is None:
        raise ValueError(
            f"{op_ref!r} is not an op ref; expected weave:///<entity>/<project>/op/<name>:<digest>"
        )
    project = match["project"]
    wanted = f"obj/{project}/{match['name']}:{match['digest']}".encode()
    obj: dict[str, Any] | None = None
    files: dict[bytes, bytes] = {}
    async for record in read_topic(settings, settings.topics.objects, idle_timeout=2.0):
        if record.key == wanted and record.value is not None:
            obj = orjson.loads(record.value)
        elif record.key is not None and record.key.startswith(f"file/{project}/".encode()):
            files[record.key] = record.value or b""
    if obj is None:
        return None
    named = (obj.get("val") or {}).get("files") or {}
    contents = {
        name: files.get(f"file/{project}/{digest}".encode(), b"").decode(errors="replace")
        for name, digest in named.items()
    }
    return OpCode(op_ref, obj, contents)
