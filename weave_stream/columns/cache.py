"""The result cache: derived values keyed by (op ref, digest of the op's inputs, trial).

A key names exactly one computation: the op's code and parameters (its ref), the
arguments it was given (their digest), and which trial of a non-deterministic op.
So a re-run finds everything already computed, a changed op misses only its own
values, and more trials miss only the new trials. Only successful values are
cached: a failure is retried on the next run.

:class:`ResultCache` is the seam: the local runner uses :class:`SqliteCache` (on
disk, bounded, least-recently-used eviction), the streaming runner a Faust table,
tests may use :class:`MemoryCache`. Methods are batched and async so that a
remote or changelog-backed store fits behind them.

>>> import asyncio
>>> cache = MemoryCache()
>>> key = cache_key("embed:abc", {"text": "hi"}, 0)
>>> asyncio.run(cache.put_many({key: CachedValue(value=[1.0])}))
>>> asyncio.run(cache.get_many([key]))[key].value
[1.0]
"""

from __future__ import annotations

import hashlib
import sqlite3
import threading
import time
from collections import OrderedDict
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, NamedTuple, Protocol

import orjson

from weave_stream.config import Settings

__all__ = [
    "CacheKey",
    "CachedValue",
    "MemoryCache",
    "ResultCache",
    "SqliteCache",
    "WriteOnlyCache",
    "cache_key",
    "input_digest",
    "results_cache",
]

_CHUNK = 500  # keys per SQL statement, well under SQLite's variable limit


class CacheKey(NamedTuple):
    """What a cached value is the result of."""

    op_ref: str
    input_digest: str
    trial: int

    def encode(self) -> str:
        """The key as one string (how stores that want a scalar key keep it)."""
        return f"{self.op_ref}|{self.input_digest}|{self.trial}"


@dataclass(frozen=True)
class CachedValue:
    """A computed value and what it cost, as stored."""

    value: Any
    latency_ms: float | None = None
    cost: float | None = None
    details: Mapping[str, Any] = field(default_factory=dict)
    computed_at: float = 0.0  # epoch seconds

    def to_json(self) -> bytes:
        """Compact JSON."""
        return orjson.dumps(
            {
                "v": self.value,
                "l": self.latency_ms,
                "c": self.cost,
                "d": self.details,
                "t": self.computed_at,
            },
            option=orjson.OPT_SERIALIZE_NUMPY | orjson.OPT_NON_STR_KEYS,
        )

    @classmethod
    def from_json(cls, raw: bytes | str) -> CachedValue:
        """Inverse of :meth:`to_json`."""
        data = orjson.loads(raw)
        return cls(data["v"], data["l"], data["c"], data["d"] or {}, data["t"])


def input_digest(arguments: Mapping[str, Any]) -> str:
    """SHA-256 (128 bits, hex) of the arguments' canonical JSON (sorted keys).

    >>> input_digest({"b": 1, "a": "x"}) == input_digest({"a": "x", "b": 1})
    True
    """
    canonical = orjson.dumps(
        arguments,
        option=orjson.OPT_SORT_KEYS | orjson.OPT_NON_STR_KEYS | orjson.OPT_SERIALIZE_NUMPY,
        default=str,
    )
    return hashlib.sha256(canonical).hexdigest()[:32]


def cache_key(op_ref: str, arguments: Mapping[str, Any], trial: int) -> CacheKey:
    """The key of ``op_ref`` applied to ``arguments`` for ``trial``."""
    return CacheKey(op_ref, input_digest(arguments), trial)


class ResultCache(Protocol):
    """Batched lookups and stores of computed values."""

    async def get_many(self, keys: Sequence[CacheKey]) -> dict[CacheKey, CachedValue]:
        """The cached values among ``keys`` (missing keys are absent from the result)."""
        ...

    async def put_many(self, items: Mapping[CacheKey, CachedValue]) -> None:
        """Store values (replacing any under the same keys)."""
        ...


class MemoryCache:
    """A process-local cache of at most ``max_entries`` values, least recently used out first."""

    def __init__(self, max_entries: int = 100_000) -> None:
        self.max_entries = max_entries
        self._values: OrderedDict[CacheKey, CachedValue] = OrderedDict()

    def __len__(self) -> int:
        return len(self._values)

    async def get_many(self, keys: Sequence[CacheKey]) -> dict[CacheKey, CachedValue]:
        """See :class:`ResultCache`."""
        found = {}
        for key in keys:
            if key in self._values:
                self._values.move_to_end(key)
                found[key] = self._values[key]
        return found

    async def put_many(self, items: Mapping[CacheKey, CachedValue]) -> None:
        """See :class:`ResultCache`."""
        for key, value in items.items():
            self._values[key] = value
            self._values.move_to_end(key)
        while len(self._values) > self.max_entries:
            self._values.popitem(last=False)


class WriteOnlyCache:
    """Finds nothing but stores everything: ``--no-cache`` recomputes and refreshes the cache."""

    def __init__(self, inner: ResultCache) -> None:
        self.inner = inner

    async def get_many(self, keys: Sequence[CacheKey]) -> dict[CacheKey, CachedValue]:
        """Always empty."""
        return {}

    async def put_many(self, items: Mapping[CacheKey, CachedValue]) -> None:
        """Store in the inner cache."""
        await self.inner.put_many(items)


class SqliteCache:
    """A persistent cache in one SQLite file, kept under ``max_bytes`` of stored values.

    When a store takes it over the limit, the least recently used values are
    evicted until it is under 90 % of it. Lookups mark values as used. Several
    processes may share the file (WAL mode). Calls are short and run inline: a
    batch lookup is one indexed query.
    """

    def __init__(self, path: str | Path, max_bytes: int = 1024**3) -> None:
        self.path = Path(path)
        self.max_bytes = max_bytes
        self.path.parent.mkdir(parents=True, exist_ok=True)
        self._lock = threading.Lock()
        self._db = sqlite3.connect(
            self.path, check_same_thread=False, isolation_level=None, timeout=30
        )
        self._db.executescript(_SCHEMA)

    def close(self) -> None:
        """Close the database."""
        with self._lock:
            self._db.close()

    def __enter__(self) -> SqliteCache:
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.close()

    @property
    def total_bytes(self) -> int:
        """Bytes of stored values now."""
        with self._lock:
            return int(self._db.execute("SELECT total FROM size").fetchone()[0])

    def __len__(self) -> int:
        with self._lock:
            return int(self._db.execute("SELECT COUNT(*) FROM results").fetchone()[0])

    async def get_many(self, keys: Sequence[CacheKey]) -> dict[CacheKey, CachedValue]:
        """See :class:`ResultCache`."""
        by_text = {key.encode(): key for key in keys}
        found: dict[CacheKey, CachedValue] = {}
        texts = list(by_text)
        with self._lock:
            for start in range(0, len(texts), _CHUNK):
                chunk = texts[start : start + _CHUNK]
                marks = ",".join("?" * len(chunk))
                rows = self._db.execute(
                    f"SELECT key, payload FROM results WHERE key IN ({marks})", chunk
                )
                hits = [(text, payload) for text, payload in rows]
                for text, payload in hits:
                    found[by_text[text]] = CachedValue.from_json(payload)
                if hits:
                    used = [text for text, _ in hits]
                    self._db.execute(
                        f"UPDATE results SET used = ? WHERE key IN ({','.join('?' * len(used))})",
                        [time.time(), *used],
                    )
        return found

    async def put_many(self, items: Mapping[CacheKey, CachedValue]) -> None:
        """See :class:`ResultCache`; evicts least recently used values past ``max_bytes``."""
        if not items:
            return
        now = time.time()
        rows = []
        for key, value in items.items():
            text, payload = key.encode(), value.to_json()
            rows.append((text, key.op_ref, payload, len(payload) + len(text), now))
        with self._lock:
            self._db.execute("BEGIN IMMEDIATE")
            try:
                self._db.executemany(
                    "INSERT OR REPLACE INTO results (key, op_ref, payload, size, used) "
                    "VALUES (?, ?, ?, ?, ?)",
                    rows,
                )
                self._evict()
                self._db.execute("COMMIT")
            except BaseException:
                self._db.execute("ROLLBACK")
                raise

    def _evict(self) -> None:
        total = int(self._db.execute("SELECT total FROM size").fetchone()[0])
        if total <= self.max_bytes:
            return
        target = int(self.max_bytes * 0.9)
        while total > target:
            count, size = self._db.execute(
                "SELECT COUNT(*), COALESCE(AVG(size), 1) FROM results"
            ).fetchone()
            if not count:
                return
            batch = max(1, min(count, int((total - target) / max(size, 1)) + 1))
            self._db.execute(
                "DELETE FROM results WHERE key IN (SELECT key FROM results ORDER BY used LIMIT ?)",
                (batch,),
            )
            total = int(self._db.execute("SELECT total FROM size").fetchone()[0])


_SCHEMA = """
PRAGMA journal_mode = WAL;
PRAGMA synchronous = NORMAL;
PRAGMA recursive_triggers = ON;  -- so that INSERT OR REPLACE runs the delete trigger
CREATE TABLE IF NOT EXISTS results (
    key TEXT PRIMARY KEY,
    op_ref TEXT NOT NULL,
    payload BLOB NOT NULL,
    size INTEGER NOT NULL,
    used REAL NOT NULL
);
CREATE INDEX IF NOT EXISTS results_used ON results (used);
CREATE TABLE IF NOT EXISTS size (total INTEGER NOT NULL);
INSERT INTO size (total) SELECT 0 WHERE NOT EXISTS (SELECT 1 FROM size);
CREATE TRIGGER IF NOT EXISTS results_insert AFTER INSERT ON results
    BEGIN UPDATE size SET total = total + NEW.size; END;
CREATE TRIGGER IF NOT EXISTS results_delete AFTER DELETE ON results
    BEGIN UPDATE size SET total = total - OLD.size; END;
"""


RESULTS_FILE = "results.sqlite"


def results_cache(settings: Settings, directory: Path | None = None) -> SqliteCache:
    """The result cache the CLI's runs, plans, experiments and topic fits (the workers'
    refits too) share: ``results.sqlite`` in ``directory`` (default ``<data_dir>/cache``)."""
    folder = directory or settings.data_dir / "cache"
    return SqliteCache(folder / RESULTS_FILE, max_bytes=settings.cache_max_bytes)
