"""``drill`` takes the direction of "worst" from the column, and says which it used.

An offensiveness score is worse when higher; a judge's faithfulness is worse when
lower. The drill-down used to list the lowest scores whatever the column meant.
"""

from __future__ import annotations

from weave_stream.aggregates.queries import drill
from weave_stream.demo.samples import corpus_documents, sample_calls
from weave_stream.ops import op
from weave_stream.runners.local import local_aggregates
from weave_stream.topology.loader import topology_from_dict


@op
def offensiveness(text: str) -> float:
    return len(text) / 1000


@op(higher_is_worse=True)
def toxicity(text: str) -> float:
    return len(text) / 1000


@op
def quality(text: str) -> float:
    return len(text) / 1000


def _topology(column: dict, score: str, **drill_down: str) -> dict:
    return {
        "name": "drilled",
        "source": {"op_name": "text-extract"},
        "columns": [column],
        "aggregates": [
            {
                "name": "by_window",
                "window": "1d",
                "metrics": {score: ["mean"]},
                "drill_down": {"worst_k": 3, "score": score, **drill_down},
            }
        ],
    }


def _worst(spec: dict) -> tuple[list[float], str]:
    topology = topology_from_dict(spec)
    calls = sample_calls(corpus_documents("english", ["movies"])[:20])
    plans, snapshots = local_aggregates(topology, calls)
    start = min(pane for pane, _ in snapshots["by_window"].panes)
    found = drill(plans, snapshots, window_start=start)
    scores = [ref.score for ref in found.worst]
    everything = sorted(len(c["inputs"]["document"]) / 1000 for c in calls)
    assert len(scores) == 3
    if found.direction == "highest":
        assert scores == everything[::-1][:3]
    else:
        assert scores == everything[:3]
    return scores, found.format("table")


def test_a_column_that_says_higher_is_worse_lists_the_highest_and_says_why() -> None:
    column = {
        "name": "offensiveness",
        "op": f"{__name__}:offensiveness",
        "args": {"text": "inputs.document"},
        "higher_is_worse": True,
    }
    scores, shown = _worst(_topology(column, "offensiveness"))
    assert scores == sorted(scores, reverse=True)
    assert "highest first: column offensiveness says higher_is_worse: true" in shown


def test_the_op_kind_decides_when_the_column_is_silent() -> None:
    column = {"name": "toxicity", "op": f"{__name__}:toxicity", "args": {"text": "inputs.document"}}
    _, shown = _worst(_topology(column, "toxicity"))
    assert "highest first: op toxicity says higher_is_worse: true" in shown
    plain = {"name": "quality", "op": f"{__name__}:quality", "args": {"text": "inputs.document"}}
    _, shown = _worst(_topology(plain, "quality"))
    assert "lowest first: the default" in shown and "higher_is_worse: true" in shown


def test_the_aggregate_may_still_say_it_itself() -> None:
    column = {
        "name": "offensiveness",
        "op": f"{__name__}:offensiveness",
        "args": {"text": "inputs.document"},
        "higher_is_worse": True,
    }
    _, shown = _worst(_topology(column, "offensiveness", worst="lowest"))
    assert "lowest first: aggregate by_window says worst: lowest" in shown
