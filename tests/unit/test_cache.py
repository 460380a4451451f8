"""The result cache: keys, persistence, a bounded size with least-recently-used eviction."""

from __future__ import annotations

import asyncio
from collections.abc import Mapping
from pathlib import Path

from weave_stream.columns.cache import (
    CachedValue,
    CacheKey,
    MemoryCache,
    ResultCache,
    SqliteCache,
    WriteOnlyCache,
    cache_key,
    input_digest,
)


def put(cache: ResultCache, items: Mapping[CacheKey, CachedValue]) -> None:
    asyncio.run(cache.put_many(items))


def get(cache: ResultCache, keys: list[CacheKey]) -> dict[CacheKey, CachedValue]:
    return asyncio.run(cache.get_many(keys))


def test_a_key_is_the_op_ref_the_input_digest_and_the_trial() -> None:
    key = cache_key("judge:abc", {"b": 1, "a": [1, 2]}, 2)
    assert key.op_ref == "judge:abc" and key.trial == 2
    assert key.input_digest == input_digest({"a": [1, 2], "b": 1})  # key order does not matter
    assert key != cache_key("judge:abd", {"b": 1, "a": [1, 2]}, 2)
    assert key != cache_key("judge:abc", {"b": 1, "a": [1, 2]}, 3)
    assert key != cache_key("judge:abc", {"b": 2, "a": [1, 2]}, 2)


def test_values_round_trip_and_persist_across_opening(tmp_path: Path) -> None:
    key = cache_key("classify:1", {"text": "hello"}, 0)
    value = CachedValue(
        {"label": "greeting", "confidence": 0.9}, 1.5, 0.001, {"raw": "x"}, 1795662000.0
    )
    with SqliteCache(tmp_path / "cache.sqlite") as cache:
        put(cache, {key: value})
        assert get(cache, [key]) == {key: value}
    with SqliteCache(tmp_path / "cache.sqlite") as reopened:
        assert get(reopened, [key, cache_key("classify:1", {"text": "bye"}, 0)]) == {key: value}
        assert len(reopened) == 1


def test_many_keys_are_looked_up_in_one_call(tmp_path: Path) -> None:
    keys = [cache_key("embed:1", {"text": str(i)}, 0) for i in range(1200)]
    with SqliteCache(tmp_path / "cache.sqlite") as cache:
        put(cache, {k: CachedValue(i) for i, k in enumerate(keys[:1000])})
        found = get(cache, keys)
    assert len(found) == 1000 and found[keys[999]].value == 999


def test_the_cache_stays_under_its_size_and_evicts_the_least_recently_used(tmp_path: Path) -> None:
    limit = 1024 * 1024
    payload = "x" * 2000
    with SqliteCache(tmp_path / "cache.sqlite", max_bytes=limit) as cache:
        first = [cache_key("op:1", {"i": i}, 0) for i in range(100)]
        put(cache, {k: CachedValue(payload) for k in first})
        get(cache, first[:10])  # used again: now more recent than the other 90
        inserted = len(first)
        while len(cache) == inserted:  # add values until the limit makes the cache evict
            # Small batches: eviction (down to 90 % of the limit, ~50 values here) then
            # removes fewer than the 90 untouched values.
            batch = {
                cache_key("op:2", {"i": inserted + i}, 0): CachedValue(payload) for i in range(10)
            }
            put(cache, batch)
            inserted += len(batch)
            assert cache.total_bytes <= limit
            assert inserted < 2000, "the cache never evicted"
        kept = get(cache, first)
    assert set(first[:10]) <= set(kept)  # the recently used survived ...
    assert len(kept) < len(first)  # ... while untouched older values went first


def test_replacing_a_value_does_not_count_its_size_twice(tmp_path: Path) -> None:
    key = cache_key("op:1", {"i": 1}, 0)
    with SqliteCache(tmp_path / "cache.sqlite") as cache:
        put(cache, {key: CachedValue("a" * 100)})
        size = cache.total_bytes
        for _ in range(5):
            put(cache, {key: CachedValue("a" * 100)})
        assert cache.total_bytes == size and len(cache) == 1


def test_write_only_finds_nothing_but_refreshes_the_store() -> None:
    inner = MemoryCache()
    key = cache_key("op:1", {"i": 1}, 0)
    forced = WriteOnlyCache(inner)
    put(forced, {key: CachedValue(1)})
    assert get(forced, [key]) == {}
    assert get(inner, [key])[key].value == 1


def test_the_memory_cache_is_bounded_too() -> None:
    cache = MemoryCache(max_entries=3)
    keys = [cache_key("op:1", {"i": i}, 0) for i in range(5)]
    put(cache, {k: CachedValue(i) for i, k in enumerate(keys[:3])})
    get(cache, [keys[0]])
    put(cache, {k: CachedValue(9) for k in keys[3:]})
    assert set(get(cache, keys)) == {keys[0], keys[3], keys[4]} and len(cache) == 3
