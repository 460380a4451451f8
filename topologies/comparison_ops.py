"""User ops for the classifier comparison topology (``op: comparison_ops:same_label``).

A topology may name ops by import path; a module next to the topology file is
found without installing it.
"""

from __future__ import annotations

from typing import Any

from weave_stream.ops import op


@op
def same_label(first: dict[str, Any], second: dict[str, Any]) -> bool:
    """Whether two classifier values chose the same label."""
    return bool(first["label"] == second["label"])
