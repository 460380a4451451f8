"""Ops: versioning by code digest, the @op decorator, the executor (batches, timeouts, retries).

Versioning rule under test: a change of code changes the ref; a comment-only,
whitespace-only or docstring-only change does not (the digest is over the syntax
tree without docstrings), and neither do the decorator's run options.
"""

from __future__ import annotations

import asyncio
import importlib.util
import itertools
import subprocess
import sys
import textwrap
import time
import uuid
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import pytest

from weave_stream.errors import OpDefinitionError
from weave_stream.ops import OpResult, op, run_op
from weave_stream.ops.base import OpPolicy, Signature

REPO = Path(__file__).resolve().parents[2]

BASE = '''
from weave_stream.ops import op

THRESHOLD = 3


def helper(text):
    return text.strip()


@op
def shout(text: str) -> str:
    """Upper-case the text."""
    return helper(text).upper() if len(text) > THRESHOLD else text
'''


def load(tmp_path: Path, source: str) -> Any:
    """Import ``source`` as a fresh module and return its ``shout`` op."""
    name = f"versioned_{uuid.uuid4().hex}"
    path = tmp_path / f"{name}.py"
    path.write_text(textwrap.dedent(source))
    spec = importlib.util.spec_from_file_location(name, path)
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    sys.modules[name] = module
    spec.loader.exec_module(module)
    return module.shout


@pytest.fixture
def base_ref(tmp_path: Path) -> str:
    return str(load(tmp_path, BASE).ref)


def test_the_same_code_in_two_files_has_one_ref(tmp_path: Path, base_ref: str) -> None:
    assert load(tmp_path, BASE).ref == base_ref
    assert base_ref.startswith("shout:") and len(base_ref.split(":")[1]) == 12


@pytest.mark.parametrize(
    ("change", "old", "new"),
    [
        ("a comment", "    return helper", "    # upper-case long texts only\n    return helper"),
        ("blank lines and spacing", "if len(text) > THRESHOLD", "if len(text)  >  THRESHOLD"),
        ("the docstring", '"""Upper-case the text."""', '"""Shout it."""'),
        ("the decorator's run options", "@op\ndef shout", "@op(timeout=5, retries=0)\ndef shout"),
    ],
)
def test_changes_that_cannot_change_results_keep_the_ref(
    tmp_path: Path, base_ref: str, change: str, old: str, new: str
) -> None:
    assert old in BASE
    assert load(tmp_path, BASE.replace(old, new)).ref == base_ref, change


@pytest.mark.parametrize(
    ("change", "old", "new"),
    [
        ("the function's code", ".upper()", ".lower()"),
        ("a helper it calls", "text.strip()", "text.strip('!')"),
        ("a module constant it reads", "THRESHOLD = 3", "THRESHOLD = 4"),
        ("its name", "@op\ndef shout", '@op(name="yell")\ndef shout'),
    ],
)
def test_code_changes_change_the_ref(
    tmp_path: Path, base_ref: str, change: str, old: str, new: str
) -> None:
    assert old in BASE
    assert load(tmp_path, BASE.replace(old, new)).ref != base_ref, change


def test_module_state_is_not_code(tmp_path: Path) -> None:
    source = BASE.replace("THRESHOLD = 3", "THRESHOLD = 3\n_loaded = None") + (
        "\n\ndef load():\n    global _loaded\n    _loaded = object()\n    return _loaded\n"
    )
    source = source.replace("return helper(text)", "load()\n    return helper(text)")
    function = load(tmp_path, source).__wrapped__
    before = op(function).ref
    function.__globals__["load"]()  # the lazily loaded state changes ...
    assert op(function).ref == before  # ... the version does not


class PrefixOp:
    """A class op with parameters (``op(PrefixOp)``: the typed form of ``@op`` on a class)."""

    def __init__(self, prefix: str, upper: bool = False) -> None:
        self.prefix, self.upper = prefix, upper

    def __call__(self, text: str) -> str:
        out = self.prefix + text
        return out.upper() if self.upper else out


Prefix = op(PrefixOp)


def test_class_ops_are_versioned_by_their_parameters() -> None:
    assert Prefix("a: ").ref == Prefix(prefix="a: ", upper=False).ref  # defaults count as given
    assert Prefix("a: ").ref != Prefix("b: ").ref
    assert Prefix("a: ").ref != Prefix("a: ", upper=True).ref
    assert Prefix("a: ").params == {"prefix": "a: ", "upper": False}


@op
def word_count(text: str) -> int:
    """A function op, imported by another process below."""
    return len(text.split())


def test_refs_are_the_same_in_another_process() -> None:
    script = (
        "from tests.unit.test_ops_base import Prefix, word_count\n"
        "print(word_count.ref); print(Prefix('a: ').ref)"
    )
    out = subprocess.run(
        [sys.executable, "-c", script],
        cwd=REPO,
        capture_output=True,
        text=True,
        check=True,
        timeout=120,
    )
    assert out.stdout.split() == [word_count.ref, Prefix("a: ").ref]


def test_a_decorated_function_stays_callable_and_declares_its_arguments() -> None:
    @op
    def greet(name: str, punctuation: str = "!") -> str:
        return f"hi {name}{punctuation}"

    assert greet("ada") == "hi ada!"
    assert greet.signature == Signature(required=("name",), optional=("punctuation",))
    assert greet.signature.problems({"nam"}) == [
        "unknown argument 'nam' (the op takes: name, punctuation)",
        "missing argument 'name'",
    ]


def run(an_op: Any, inputs: Sequence[dict[str, Any]]) -> list[OpResult]:
    return asyncio.run(run_op(an_op, inputs))


def test_exceptions_become_failed_values_and_neighbours_still_run() -> None:
    @op
    def inverse(x: float) -> float:
        return 1 / x

    results = run(inverse, [{"x": 2}, {"x": 0}, {"x": 4}])
    assert [r.value for r in results] == [0.5, None, 0.25]
    assert results[1].error == "ZeroDivisionError: division by zero"
    assert results[1].attempts == 1  # a ValueError-like bug is not retried


def test_batched_ops_get_lists_in_batches_of_their_batch_size() -> None:
    seen: list[int] = []

    @op(batched=True, batch_size=4)
    def lengths(text: list[str]) -> list[int]:
        seen.append(len(text))
        return [len(t) for t in text]

    results = run(lengths, [{"text": "x" * i} for i in range(10)])
    assert [r.value for r in results] == list(range(10))
    assert seen == [4, 4, 2]


def test_one_bad_input_does_not_fail_its_batch() -> None:
    @op(batched=True, batch_size=8)
    def strict_lengths(text: list[Any]) -> list[int]:
        if any(not isinstance(t, str) for t in text):
            raise TypeError("text must be strings")
        return [len(t) for t in text]

    results = run(strict_lengths, [{"text": "ab"}, {"text": None}, {"text": "abc"}])
    assert [r.value for r in results] == [2, None, 3]
    assert results[1].error == "TypeError: text must be strings"


def test_async_ops_run_the_inputs_of_a_batch_concurrently() -> None:
    in_flight = 0
    peak = 0

    @op(batch_size=8)
    async def slow_echo(text: str) -> str:
        nonlocal in_flight, peak
        in_flight += 1
        peak = max(peak, in_flight)
        await asyncio.sleep(0.05)
        in_flight -= 1
        return text

    assert [r.value for r in run(slow_echo, [{"text": str(i)} for i in range(8)])] == [
        str(i) for i in range(8)
    ]
    assert peak == 8


def test_a_timeout_fails_the_batch_after_its_retries() -> None:
    calls = 0

    @op(timeout=0.1, retries=2, backoff=0.01)
    async def hang(text: str) -> str:
        nonlocal calls
        calls += 1
        await asyncio.sleep(10)
        return text

    started = time.monotonic()
    [result] = run(hang, [{"text": "x"}])
    assert time.monotonic() - started < 5
    assert (
        result.error is not None
        and "did not finish a batch of 1 within its 0.1s timeout" in result.error
    )
    assert result.retriable and result.attempts == 3 and calls == 3


def test_retriable_failures_are_retried_with_backoff_until_they_succeed() -> None:
    attempts: list[float] = []

    @op(retries=3, backoff=0.05)
    def flaky(text: str) -> str:
        attempts.append(time.monotonic())
        if len(attempts) < 3:
            raise ConnectionError("peer reset")
        return text

    [result] = run(flaky, [{"text": "ok"}])
    assert (result.value, result.error, result.attempts) == ("ok", None, 3)
    gaps = [b - a for a, b in itertools.pairwise(attempts)]
    assert gaps[0] >= 0.05 and gaps[1] >= 0.1  # backoff doubles


def test_only_failed_inputs_are_retried_and_retry_after_is_honoured() -> None:
    runs: list[tuple[float, list[str]]] = []

    @op(batched=True, retries=1, backoff=0.01)
    def limited(text: list[str]) -> list[OpResult]:
        runs.append((time.monotonic(), list(text)))
        if len(runs) == 1:
            return [
                OpResult(value=text[0]),
                OpResult.failure("busy", retriable=True, retry_after=0.3, cost=0.5),
            ]
        return [OpResult(value=t, cost=0.25) for t in text]

    first, second = run(limited, [{"text": "a"}, {"text": "b"}])
    assert [r[1] for r in runs] == [["a", "b"], ["b"]]
    assert runs[1][0] - runs[0][0] >= 0.3
    assert (first.value, first.attempts) == ("a", 1)
    assert (second.value, second.attempts, second.cost) == ("b", 2, 0.75)  # both attempts paid


def test_an_op_that_returns_the_wrong_number_of_results_gets_errors_not_gaps() -> None:
    @op(batched=True)
    def broken(text: list[str]) -> list[int]:
        return [1]

    results = run(broken, [{"text": "a"}, {"text": "b"}])
    assert len(results) == 2
    assert all(r.error and "returned 1 results for a batch of 2" in r.error for r in results)


def test_policies_refuse_nonsense() -> None:
    with pytest.raises(OpDefinitionError, match="timeout must be > 0"):
        OpPolicy(timeout=0)
    with pytest.raises(OpDefinitionError, match="batch_size must be >= 1"):
        OpPolicy(batch_size=0)
