"""The wordy topology with a "from now on" dataset: wordy documents, sampled, capped per day."""

from weave_stream.ops import op
from weave_stream.topology.spec import Column, Source, Topology


@op
def word_count(text: str) -> int:
    return len(text.split())


topology = Topology(
    name="wordy_sets",
    source=Source(op_name="text-extract"),
    columns=[Column(name="words", op=word_count, args={"text": "inputs.document"})],
    datasets=[
        {
            "name": "wordy-docs",
            "filter": {"columns.words": {"gt": 8}},
            "sample": 0.6,
            "cap": {"rows": 20, "per": "1d"},
            "mapping": {"document": "inputs.document", "words": "columns.words"},
        }
    ],
)
