"""Versions of ops that call ops: an op's ref covers the refs of every op it reaches.

Editing a sub-op (its code, its parameters, its learned state) changes the ref of every
op above it, however it is reached (a module global, an import, a closure, a helper, a
constructor argument, ``calls=``); an unrelated edit does not; cycles are safe and the
ref does not depend on which op is asked first.
"""

from __future__ import annotations

import importlib.util
import logging
import sys
import textwrap
import uuid
from pathlib import Path
from typing import Any

import pytest

from weave_stream import Column, Topology, run_local
from weave_stream.errors import OpDefinitionError
from weave_stream.ops import op

SUBS = """
from weave_stream.ops import op


@op
def clean(text):
    return text.strip()


class PrefixOp:
    def __init__(self, tag):
        self.tag = tag

    def __call__(self, text):
        return self.tag + text


Prefix = op(name="prefix")(PrefixOp)
prefix = Prefix(tag="a:")


def unrelated(text):
    return text * 2
"""

PARENT = """
from {subs} import clean, prefix


def _tidy(text):
    return clean(text)  # a helper of this module calls the op


@op
def summarise(document):
    return prefix(text=_tidy(document))
"""


def load_pair(tmp_path: Path, subs: str) -> Any:
    """Write the sub-ops' module and a parent importing them; the parent module."""
    folder = tmp_path / uuid.uuid4().hex
    folder.mkdir()
    subs_name, parent_name = f"subs_{uuid.uuid4().hex}", f"parent_{uuid.uuid4().hex}"
    (folder / f"{subs_name}.py").write_text(subs)
    parent_source = "from weave_stream.ops import op\n" + PARENT.format(subs=subs_name)
    (folder / f"{parent_name}.py").write_text(parent_source)
    sys.path.insert(0, str(folder))
    try:
        spec = importlib.util.spec_from_file_location(parent_name, folder / f"{parent_name}.py")
        assert spec is not None and spec.loader is not None
        module = importlib.util.module_from_spec(spec)
        spec.loader.exec_module(module)
        return module
    finally:
        sys.path.remove(str(folder))
        sys.modules.pop(subs_name, None)


@pytest.fixture
def base_ref(tmp_path: Path) -> str:
    return str(load_pair(tmp_path, SUBS).summarise.ref)


def test_the_parent_finds_the_ops_its_code_calls(tmp_path: Path) -> None:
    summarise = load_pair(tmp_path, SUBS).summarise
    assert sorted(sub.name for sub in summarise.sub_ops) == ["clean", "prefix"]
    assert summarise.version != summarise.own_version  # the calls are folded in


@pytest.mark.parametrize(
    ("change", "old", "new"),
    [
        ("a sub-op's code", "return text.strip()", "return text.strip().lower()"),
        ("a sub-op's parameter", 'Prefix(tag="a:")', 'Prefix(tag="b:")'),
        ("a class sub-op's code", "return self.tag + text", "return text + self.tag"),
    ],
)
def test_editing_a_sub_op_changes_the_parent_ref(
    tmp_path: Path, base_ref: str, change: str, old: str, new: str
) -> None:
    assert load_pair(tmp_path, SUBS.replace(old, new)).summarise.ref != base_ref, change


@pytest.mark.parametrize(
    ("change", "old", "new"),
    [
        ("an unrelated function", "return text * 2", "return text * 3"),
        ("a comment in a sub-op", "return text.strip()", "return text.strip()  # why"),
        ("a sub-op's run options", "@op\ndef clean", "@op(timeout=5)\ndef clean"),
    ],
)
def test_edits_that_cannot_change_results_keep_the_parent_ref(
    tmp_path: Path, base_ref: str, change: str, old: str, new: str
) -> None:
    assert load_pair(tmp_path, SUBS.replace(old, new)).summarise.ref == base_ref, change


def test_an_op_that_calls_nothing_keeps_the_version_it_had() -> None:
    @op
    def words(text: str) -> int:
        return len(text.split())

    assert words.sub_ops == () and words.version == words.own_version


def test_sub_ops_reached_through_closures_and_constructor_arguments_count() -> None:
    @op(name="prefix")
    class PrefixOp:
        def __init__(self, tag: str) -> None:
            self.tag = tag

        def __call__(self, text: str) -> str:
            return self.tag + text

    def make(tag: str) -> Any:
        sub = PrefixOp(tag=tag)

        @op(name="parent")
        def parent(document: str) -> str:
            return str(sub(text=document))

        return parent

    assert make("a").ref == make("a").ref
    assert make("a").ref != make("b").ref  # the closure's op changed

    class Holder:
        def __init__(self, inner: Any) -> None:
            self.inner = inner

        def __call__(self, text: str) -> str:
            return str(self.inner(text=text))

    HolderOp = op(name="holder")(Holder)

    first, second = HolderOp(inner=PrefixOp(tag="a")), HolderOp(inner=PrefixOp(tag="b"))
    assert first.params == {"inner": "op:prefix"}  # the op is versioned as a call
    assert first.ref != second.ref
    assert [sub.name for sub in first.sub_ops] == ["prefix"]


def test_the_whole_chain_counts_and_learned_state_too() -> None:
    @op(name="leaf")
    class LeafOp:
        def __init__(self) -> None:
            self.learned = 0

        def version_state(self) -> int:
            return self.learned

        def learn(self) -> None:
            self.learned += 1

        def __call__(self, text: str) -> str:
            return text

    leaf = LeafOp()

    @op
    def middle(text: str) -> str:
        return str(leaf(text=text))

    @op
    def top(text: str) -> str:
        return str(middle(text))

    before = (top.ref, middle.ref)
    leaf.learn()  # e.g. a classifier that learned from feedback
    assert top.ref != before[0] and middle.ref != before[1]


def test_cycles_are_safe_and_refs_do_not_depend_on_who_is_asked_first(tmp_path: Path) -> None:
    source = textwrap.dedent(
        """
        from weave_stream.ops import op

        @op
        def ping(n):
            return pong(n - 1) if n > 0 else 0

        @op
        def pong(n):
            return ping(n - 1) if n > 0 else 1

        @op
        def countdown(n):
            return countdown(n - 1) if n > 0 else "done"
        """
    )

    def load(text: str) -> Any:
        name = f"cycle_{uuid.uuid4().hex}"
        path = tmp_path / f"{name}.py"
        path.write_text(text)
        spec = importlib.util.spec_from_file_location(name, path)
        assert spec is not None and spec.loader is not None
        module = importlib.util.module_from_spec(spec)
        spec.loader.exec_module(module)
        return module

    first, second = load(source), load(source)
    ping_first = first.ping.ref
    pong_second = second.pong.ref  # asked in the other order
    assert (ping_first, first.pong.ref) == (second.ping.ref, pong_second)
    assert first.countdown.ref == second.countdown.ref  # an op that calls itself
    edited = load(source.replace("else 1", "else 2"))
    assert edited.ping.ref != ping_first and edited.pong.ref != pong_second
    assert edited.countdown.ref == first.countdown.ref


def test_calls_declares_ops_picked_at_run_time() -> None:
    @op(name="judge_like")
    class Scorer:
        def __init__(self, strictness: float) -> None:
            self.strictness = strictness

        def __call__(self, text: str) -> float:
            return len(text) * self.strictness

    def make(strictness: float, declare: bool) -> Any:
        scorers = {"default": Scorer(strictness=strictness)}

        @op(name="grade", calls=list(scorers.values()) if declare else None)
        def grade(text: str, scorer: str = "default") -> float:
            return float(scorers[scorer](text=text))  # looked up by a value: not a name

        return grade

    assert make(1.0, declare=True).ref != make(2.0, declare=True).ref
    assert make(1.0, declare=False).ref == make(2.0, declare=False).ref  # what calls= fixes


def test_an_undeclared_sub_op_is_recorded_and_warned_about_once(
    caplog: pytest.LogCaptureFixture,
) -> None:
    registry: dict[str, Any] = {}

    @op(name="hidden")
    def hidden(text: str) -> str:
        return text.upper()

    registry["hidden"] = hidden

    @op(name="dispatch")
    def dispatch(text: str) -> str:
        return str(registry["hidden"](text))

    topology = Topology("t", [Column("d", dispatch, args={"text": "inputs.document"})])
    calls = [
        {"id": f"c{i}", "started_at": 1795662000, "inputs": {"document": f"d{i}"}} for i in range(3)
    ]
    with caplog.at_level(logging.WARNING, logger="weave_stream.ops.subops"):
        table = run_local(topology, calls)
    assert table.to_pandas()["d"].tolist() == ["D0", "D1", "D2"]
    assert dispatch.undeclared_calls == {hidden.ref}
    warnings = [r for r in caplog.records if "does not cover" in r.getMessage()]
    assert len(warnings) == 1 and "calls=[hidden]" in warnings[0].getMessage()
    assert all(sub.details.get("undeclared") for sub in table.sub_calls)


def test_calls_refuses_what_is_not_an_op() -> None:
    with pytest.raises(OpDefinitionError, match="'embed', which is not an op"):
        op(calls=["embed"])(lambda text: text)

    @op
    class Scorer:
        def __call__(self, text: str) -> str:
            return text

    with pytest.raises(OpDefinitionError, match=r"pass the op it makes, e\.g\. Judge"):
        op(calls=[Scorer])(lambda text: text)
    with pytest.raises(OpDefinitionError, match="give a number >= 0"):
        op(calls={Scorer(): -1})(lambda text: text)
