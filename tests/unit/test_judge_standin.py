"""The demo's stand-in judge answers the real judge op like an OpenAI endpoint would."""

from __future__ import annotations

import asyncio

from weave_stream.demo.judge_standin import StandInJudge
from weave_stream.ops import Judge, run_op

PROMPT = "Document:\n{document}\n\nExtraction:\n{extraction}\n\nScore the extraction."


def test_the_judge_op_gets_scores_in_its_range_from_the_stand_in() -> None:
    with StandInJudge() as standin:
        judge = Judge(prompt=PROMPT, base_url=standin.base_url, score_range=(0, 10), retries=0)
        results = asyncio.run(
            run_op(
                judge,
                [
                    {"document": "The invoice total is 42 dollars", "extraction": "invoice total"},
                    {"document": "The invoice total is 42 dollars", "extraction": "pizza recipe"},
                ],
            )
        )
    faithful, invented = (result.value for result in results)
    assert all(result.error is None for result in results)
    assert faithful["score"] == 10.0 and invented["score"] == 0.0
    assert "not an LLM" in faithful["reason"]
