"""A backfill (and the reconciler, which writes through the same ``write_missing``) writes
the trees of ops that call ops to ``<prefix>.subcalls.<topology>``,
marked with its writer; what the cache already holds is written again with no new tree."""

from __future__ import annotations

import asyncio
from collections.abc import Callable

import orjson

from tests.support.records import read_all
from tests.support.topologies import documents
from weave_stream.broker.kafka import ensure_topics
from weave_stream.columns.cache import MemoryCache
from weave_stream.columns.values import derived_key
from weave_stream.config import Settings
from weave_stream.ingest.call import parse_call_object
from weave_stream.ops.base import OpResult
from weave_stream.ops.decorator import op
from weave_stream.runners.backfill import WRITER_HEADER, write_missing
from weave_stream.topology.spec import Column, Topology


@op(name="shout", batched=True)
def shout(text: list[str]) -> list[OpResult]:
    return [OpResult(value=t.upper()) for t in text]


@op(name="summarise")
def summarise(document: str) -> str:
    return str(shout.call(text=document))[:10] + str(shout.call(text=document[-5:]))


def test_a_backfill_writes_the_tree_of_each_value_it_computes(
    make_settings: Callable[..., Settings],
) -> None:
    settings = make_settings()
    topology = Topology("trees", [Column("s", summarise, args={"document": "inputs.document"})])
    topics = settings.topics
    asyncio.run(ensure_topics(settings, [topics.subcalls("trees"), topics.derived("trees", "s")]))
    calls = [parse_call_object(c) for c in documents(["food"], "trees", 6)]
    cache = MemoryCache()

    written = asyncio.run(write_missing(settings, topology, calls, cache, set()))
    assert len(written) == 6
    trees = read_all(settings, topics.subcalls("trees"))
    assert sorted(r.key for r in trees) == sorted(derived_key(c.id, 0) for c in calls)
    assert all(dict(r.headers)[WRITER_HEADER] == b"backfill" for r in trees)
    for record in trees:
        tree = orjson.loads(record.value)
        assert tree["column_ref"] == summarise.ref
        subs = tree["sub_calls"]
        assert [s["op_ref"] for s in subs] == [shout.ref, shout.ref]
        assert sorted(s["position"] for s in subs) == ["0", "1"]
        assert all(s["parent_ref"] == summarise.ref and s["error"] is None for s in subs)

    # The same calls again, their values lost downstream: written from the cache, no tree.
    again = asyncio.run(write_missing(settings, topology, calls, cache, set(), writer="reconciler"))
    assert len(again) == 6 and all(v.cached for v in again)
    assert len(read_all(settings, topics.subcalls("trees"))) == 6
