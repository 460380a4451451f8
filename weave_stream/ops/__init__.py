"""Ops: versioned computations applied to calls as derived columns.

::

    @op function / class ──► Op (name, version, ref = name:version, policy, signature)
                                 │
    built-ins: Embed, Classify, Judge, Explain registry: "embed" / "pkg.mod:fn" ──► Op
                                 │
    run_op(op, inputs) ──► batches, timeout, retries with backoff ──► [OpResult per input]

``base`` holds the protocol and records, ``versioning`` the digests, ``decorator``
the ``@op`` decorator, ``execute`` the executor, ``registry`` the names YAML uses;
``subops`` finds the ops an op calls (its version covers theirs) and ``nested`` routes
those calls, in a run, to the run's cache and batches. The embedding model behind
``embed`` and ``classify`` runs on ``embed_engine`` (device and batching from
``embed_device``, cut by ``embed_batches``, the model in ``embed_model``), in this
process or in a worker's ``embed_service``.
"""

from __future__ import annotations

from weave_stream.ops.base import CostEstimate, Op, OpPolicy, OpResult, Signature
from weave_stream.ops.classify import Classify
from weave_stream.ops.decorator import FunctionOp, OpClass, op
from weave_stream.ops.embed import Embed
from weave_stream.ops.execute import run_op
from weave_stream.ops.explain import Explain
from weave_stream.ops.judge import Judge
from weave_stream.ops.resolve import BUILTIN_OPS, op_spec, register_op, resolve_op

__all__ = [
    "BUILTIN_OPS",
    "Classify",
    "CostEstimate",
    "Embed",
    "Explain",
    "FunctionOp",
    "Judge",
    "Op",
    "OpClass",
    "OpPolicy",
    "OpResult",
    "Signature",
    "op",
    "op_spec",
    "register_op",
    "resolve_op",
    "run_op",
]
