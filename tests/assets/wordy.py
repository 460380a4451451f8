"""A cheap topology for streaming tests: a column, a column that depends on it, failures.

``size`` fails (a value with an error) for documents of exactly 13 words.
"""

from weave_stream.ops import op
from weave_stream.topology.spec import Column, Source, Topology


@op
def word_count(text: str) -> int:
    return len(text.split())


@op
def size_class(words: int) -> str:
    if words == 13:
        raise ValueError("13 words: unlucky document")
    return "long" if words > 20 else "short"


topology = Topology(
    name="wordy",
    source=Source(op_name="text-extract"),
    columns=[
        Column(name="words", op=word_count, args={"text": "inputs.document"}),
        Column(name="size", op=size_class, args={"words": "columns.words"}),
    ],
)
