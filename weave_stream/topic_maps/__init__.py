"""Topics: cluster a column's embeddings, name the clusters with an LLM, assign new calls.

::

    store (calls + embedding column) ─► load_inputs ─► cluster (k-means, k by silhouette)
          ─► representative documents ─► TopicNamer op (judge endpoint, cached, priced)
          ─► TopicMap (versioned: ref = digest of calls, params, op refs) ─► MapStore
    refit: previous map's centres start the k-means; Hungarian matching carries ids,
           stability / ARI / born, gone, merged, split
    stream: AssignTopic column (FAISS over the centres; ``outlier`` beyond a radius)
    job.prepare_fit: the one set-up of ``topics fit|plan`` and the worker's scheduled refit

(A package of its own, not ``weave_stream.topics``: that module names Kafka topics.)
"""

from __future__ import annotations

from weave_stream.store.topic_map import OUTLIER, Naming, Refit, Topic, TopicMap, map_ref
from weave_stream.store.topic_map_files import MapStore
from weave_stream.topic_maps.cluster import ClusterParams, cluster, minimum_documents
from weave_stream.topic_maps.fit import FitPlan, TopicInputs, fit_map, plan_fit
from weave_stream.topic_maps.naming import TopicNamer, parse_name

__all__ = [
    "OUTLIER",
    "ClusterParams",
    "FitPlan",
    "MapStore",
    "Naming",
    "Refit",
    "Topic",
    "TopicInputs",
    "TopicMap",
    "TopicNamer",
    "cluster",
    "fit_map",
    "map_ref",
    "minimum_documents",
    "parse_name",
    "plan_fit",
]
