"""Pure parts of the observability modules: lag arithmetic and bearer tokens.

Their docstring examples run with the suite (``--doctest-modules``).
"""

from __future__ import annotations

import pytest

from weave_stream.runners.streaming.admin_pages import bearer_token, token_matches
from weave_stream.runners.streaming.lag import partition_lags, topic_lags


def test_lag_is_highwater_minus_committed_per_partition_summed_per_topic() -> None:
    highwaters = {("calls", 0): 120, ("calls", 1): 80, ("valid", 0): 10, ("valid", 1): None}
    committed = {("calls", 0): 100, ("calls", 1): 80, ("valid", 0): None, ("valid", 1): 3}
    lags = partition_lags(highwaters, committed)
    # A partition with no high-water mark yet is unknown, not zero.
    assert lags == {("calls", 0): 20, ("calls", 1): 0, ("valid", 0): 10}
    assert topic_lags(lags) == {"calls": 20, "valid": 10}
    # A stale mark below the committed offset is no lag, never a negative one.
    assert partition_lags({("calls", 0): 5}, {("calls", 0): 9}) == {("calls", 0): 0}


@pytest.mark.parametrize(
    ("header", "token"),
    [
        (None, None),
        ("", None),
        ("Bearer", None),
        ("Bearer    ", None),
        ("Basic dXNlcjpwYXNz", None),
        ("Bearer abc", "abc"),
        ("bearer abc", "abc"),
        ("BEARER  abc  ", "abc"),
        ("Bearer a b", "a b"),
    ],
)
def test_bearer_token_parsing(header: str | None, token: str | None) -> None:
    assert bearer_token(header) == token


def test_tokens_match_only_when_equal_and_never_when_none_is_configured() -> None:
    assert token_matches("s3cret", "s3cret")
    assert not token_matches("s3cre", "s3cret")
    assert not token_matches("s3cretx", "s3cret")
    assert not token_matches("", "")
    assert not token_matches("anything", "")
    assert token_matches("ünïcode", "ünïcode")
