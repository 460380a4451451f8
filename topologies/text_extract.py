"""The text-extract story in Python: the same topology as text_extract.yaml.

Ops given as objects are used as they are; an op given by name (the judge here)
is built by the registry with the settings of the command that loads the file,
so ``--config`` and ``WEAVE_STREAM_JUDGE_*`` apply to it.
"""

from __future__ import annotations

from weave_stream.ops import Classify, Embed
from weave_stream.topology.spec import Column, Source, Topology

LABELS = {
    "technology": "computers, software, programming and technical support",
    "money": "money, banking, finance and the economy",
    "science": "science, physics, chemistry, biology and history",
    "culture": "movies, books, literature, humor and sports",
    "food": "food, cooking and drinks",
    "chat": "small talk, greetings, feelings and questions about the bot itself",
}

FAITHFULNESS_PROMPT = """\
An app read the document below and extracted its topic and a one-line
summary. Our classifier files the document under "{doc_class}".

Document:
{document}

Extraction:
{extraction}

Score how faithful the extraction is to the document, from 0 (wrong or
invented) to 1 (accurate and complete).
"""

topology = Topology(
    name="text_extract",
    description=(
        "Classify each input document by topic, judge whether the extracted topic and "
        "summary are faithful to it, and embed the document.\n"
    ),
    # A failed call has no extraction to judge, nor has a call that has not ended yet.
    source=Source(
        op_name="text-extract",
        filter={"exception": {"exists": False}, "output": {"exists": True}},
        sample=1.0,
    ),
    columns=[
        Column("doc_class", Classify(labels=LABELS), args={"text": "inputs.document"}),
        Column(
            "faithfulness",
            "judge",
            params={"score_range": [0, 1], "prompt": FAITHFULNESS_PROMPT},
            args={
                "document": "inputs.document",
                "extraction": "output",
                "doc_class": "columns.doc_class.label",
            },
        ),
        Column("doc_embedding", Embed(), args={"text": "inputs.document"}),
    ],
    aggregates=[
        {
            "name": "quality_by_class",
            "window": {"size": "10m", "step": "5m"},
            "grace": "10m",
            "retention": "2d",
            "group_by": ["doc_class"],
            "metrics": {
                "faithfulness": [
                    "count",
                    "mean",
                    "std",
                    "ci95",
                    "p50",
                    "p90",
                    "p99",
                    "error_rate",
                    "cost_sum",
                ],
                "doc_class.confidence": ["mean", "ci95"],
                "doc_class": ["counts"],
                "duration_seconds": ["mean", "p90"],
            },
            "drill_down": {
                "sample_size": 20,
                "worst_k": 5,
                "score": "faithfulness",
                "worst": "lowest",
            },
        }
    ],
    monitors=[
        {
            "name": "doc_drift",
            "column": "doc_embedding",
            "text": "inputs.document",
            "reference": {"first_n": 150},
            "calibration_quantile": 0.95,
            "cooldown": "1m",
            "shift": {"calls": 40},
        }
    ],
    topics=[
        {
            "column": "doc_embedding",
            "refit": "1d",
            "max_topics": 12,
            "watch": {"window": "2m", "grace": "30s"},
        }
    ],
    datasets=[
        {
            "name": "low-faithfulness",
            "filter": {"columns.faithfulness.score": {"lt": 0.4}},
            "sample": 1.0,
            "cap": {"rows": 50, "per": "1d"},
            "mapping": {
                "document": "inputs.document",
                "extraction": "output",
                "class": "columns.doc_class.label",
                "score": "columns.faithfulness.score",
            },
        }
    ],
)
