"""Metric names in PromQL expressions, and the series names the worker exports.

Used by the tests of the alerting rules and of the Grafana dashboards: a typo in a
metric name makes a query silently empty, so both check every name they use against
:data:`weave_stream.metrics.REGISTRY`.
"""

from __future__ import annotations

import re
import shutil
from pathlib import Path

import pytest

from weave_stream.metrics import REGISTRY

_STRING = re.compile(r'"(?:[^"\\]|\\.)*"|\'(?:[^\'\\]|\\.)*\'')
_MATCHERS = re.compile(r"\{[^{}]*\}")
_LABEL_LIST = re.compile(
    r"\b(?:by|without|on|ignoring|group_left|group_right)\s*\([^()]*\)", re.IGNORECASE
)
_VARIABLE = re.compile(r"\$\{?\w+(?::\w+)?\}?")
_RANGE = re.compile(r"\[[^\[\]]*\]")
_IDENTIFIER = re.compile(r"(?<![\w:.])([A-Za-z_:][A-Za-z0-9_:]*)(\s*\()?")
_KEYWORDS = frozenset(
    {
        "and", "or", "unless", "by", "without", "on", "ignoring", "group_left",
        "group_right", "offset", "bool", "inf", "nan", "atan2",
    }
)  # fmt: skip
_SUFFIXES = {
    "counter": ("_total",),
    "histogram": ("_bucket", "_sum", "_count"),
    "summary": ("", "_sum", "_count"),
    "gauge": ("",),
    "info": ("_info",),
}


def metric_names(expression: str) -> set[str]:
    """The metric (or recording rule) names an expression selects.

    >>> sorted(metric_names('sum by (le) (rate(a_bucket{x="y"}[5m])) / on () b:rec'))
    ['a_bucket', 'b:rec']
    """
    text = _STRING.sub('""', expression)
    text = _VARIABLE.sub("1", text)
    text = _MATCHERS.sub("", text)
    text = _RANGE.sub("", text)
    text = _LABEL_LIST.sub("", text)
    names = set()
    for match in _IDENTIFIER.finditer(text):
        name, call = match.group(1), match.group(2)
        if call or name.lower() in _KEYWORDS:
            continue
        names.add(name)
    return names


def exported_series() -> set[str]:
    """Every sample name a worker's ``/metrics`` can carry (``_total``, ``_bucket`` ...)."""
    names = set()
    for family in REGISTRY.collect():
        for suffix in _SUFFIXES[family.type]:
            names.add(family.name + suffix)
    return names


def promtool() -> str:
    """The promtool executable; fails the test (never skips) when it is missing."""
    found = shutil.which("promtool") or (
        "/usr/bin/promtool" if Path("/usr/bin/promtool").exists() else None
    )
    if found is None:
        pytest.fail("promtool is missing: install Debian's prometheus package (make prometheus)")
    return found
