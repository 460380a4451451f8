"""A cheap topology whose op calls an op: each document's two halves counted by a sub-op.

Its sub-calls go to ``<prefix>.subcalls.halves`` and the store's ``subcalls`` table.
"""

from weave_stream.ops import op
from weave_stream.topology.spec import Column, Source, Topology


@op
def count_words(text: str) -> int:
    return len(text.split())


@op
async def halves(text: str) -> int:
    """Words in the first half of the document minus words in the second."""
    words = text.split()
    middle = len(words) // 2
    first = await count_words.acall(text=" ".join(words[:middle]))
    second = await count_words.acall(text=" ".join(words[middle:]))
    return int(first) - int(second)


topology = Topology(
    name="halves",
    source=Source(op_name="text-extract"),
    columns=[Column(name="balance", op=halves, args={"text": "inputs.document"})],
)
