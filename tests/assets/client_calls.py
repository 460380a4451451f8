"""A cheap topology over every call, for the tests with real clients: its op's short name."""

from weave_stream.ops import op
from weave_stream.topology.spec import Column, Source, Topology


@op
def short_op_name(op_name: str) -> str:
    return op_name.rsplit("/op/", 1)[-1].split(":", 1)[0]


topology = Topology(
    name="client_calls",
    source=Source(),
    columns=[Column(name="op", op=short_op_name, args={"op_name": "op_name"})],
)
