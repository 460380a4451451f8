"""A cheap topology with a ``topics:`` section: the embedding is the call's own vector.

Calls carry a 384-d vector in ``inputs.vector`` (seeded blobs of
``tests/support/topic_maps.py``) beside their document, so the topic column, its
alerts and their excerpts run in worker processes without the embedding model.
"""

from weave_stream.ops import op
from weave_stream.topology.spec import Column, Source, Topology


@op
def given_vector(text: str, vector: list[float]) -> list[float]:
    """The call's own vector (``text``, the document, is what topics name and excerpt)."""
    return vector


topology = Topology(
    name="topical",
    source=Source(op_name="text-extract"),
    columns=[
        Column(
            name="doc_embedding",
            op=given_vector,
            args={"text": "inputs.document", "vector": "inputs.vector"},
        )
    ],
    # one-hour windows of the calls' started_at, checked once the stream passes them
    topics=[{"column": "doc_embedding", "watch": {"window": "1h", "grace": 0, "min_calls": 40}}],
)
