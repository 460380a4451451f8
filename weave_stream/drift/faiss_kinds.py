"""FAISS index kinds: how each is built, tuned and searched.

``exact``  a flat L2 index: every search compares with every vector (BLAS batched).
``hnsw``   a graph (``hnsw_m`` links per node): fast single queries, no training,
           costly to build at millions of vectors.
``ivf``    an inverted file of ``nlist`` k-means lists holding 8-bit scalar-quantized
           vectors; a search scans ``nprobe`` lists. Trained on a sample; the index
           re-ranks its best ``ivf_rerank`` candidates with exact distances.
"""

from __future__ import annotations

import math
from typing import Any

import faiss as faiss_stubbed

from weave_stream.drift.index import ConcreteKind
from weave_stream.topology.monitors import IndexSpec

__all__ = [
    "IVF_POINTS_PER_LIST",
    "empty_faiss_index",
    "faiss",
    "ivf_lists",
    "search_parameters",
    "tune_faiss",
]

# The wheel's type stubs lack the search-parameter classes and SWIG attributes.
faiss: Any = faiss_stubbed
IVF_POINTS_PER_LIST = 39  # FAISS warns below 39 training points per list
_tuned = False


def tune_faiss() -> None:
    """Let batched searches use BLAS (once per process)."""
    # This wheel only uses BLAS for batches of 128k+ queries; with 20, batched exact
    # search (and IVF's coarse quantizer) ran 5-8x faster (shared/PACKAGES.md).
    global _tuned
    if not _tuned:
        faiss.cvar.distance_compute_blas_threshold = 20
        _tuned = True


def empty_faiss_index(kind: ConcreteKind, dim: int, spec: IndexSpec, nlist: int) -> Any:
    """An empty FAISS index of ``kind`` (IVF: untrained, ``nlist`` lists)."""
    if kind == "exact":
        return faiss.IndexFlatL2(dim)
    if kind == "hnsw":
        index = faiss.IndexHNSWFlat(dim, spec.hnsw_m)
        index.hnsw.efConstruction = spec.hnsw_ef_construction
        return index
    quantizer = faiss.IndexFlatL2(dim)
    index = faiss.IndexIVFScalarQuantizer(
        quantizer, dim, nlist, faiss.ScalarQuantizer.QT_8bit, faiss.METRIC_L2
    )
    index.own_fields = True
    quantizer.this.disown()  # the IVF index frees its quantizer
    index.cp.seed = 1234
    return index


def ivf_lists(size: int, spec: IndexSpec) -> int:
    """The number of IVF lists for ``size`` vectors: the spec's, or about 4 * sqrt(size)."""
    if spec.ivf_nlist is not None:
        wanted = spec.ivf_nlist
    else:
        wanted = 1 << max(0, round(math.log2(max(1.0, 4 * math.sqrt(size)))))
    return max(1, min(wanted, size // IVF_POINTS_PER_LIST))


def search_parameters(kind: ConcreteKind, spec: IndexSpec, selector: Any | None) -> Any:
    """FAISS search parameters for ``kind``: the spec's effort, and the ids to consider."""
    if kind == "hnsw":
        return faiss.SearchParametersHNSW(sel=selector, efSearch=spec.hnsw_ef_search)
    if kind == "ivf":
        return faiss.SearchParametersIVF(sel=selector, nprobe=spec.ivf_nprobe)
    return faiss.SearchParameters(sel=selector) if selector is not None else None
