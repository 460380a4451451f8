"""The Op protocol and its records: what every op is, whatever computes it.

An op has a ``name``, a ``version`` (a digest of its code and parameters, see
:mod:`weave_stream.ops.versioning`) and a ``ref`` ``name:version``. It runs on
batches (:meth:`Op.run_batch` returns one :class:`OpResult` per input, failures
included), declares how it is run (:class:`OpPolicy`: timeout, retries, backoff,
batch size), whether it is deterministic (non-deterministic ops support trials),
the arguments it takes (:class:`Signature`) and an estimate of its cost before
anything runs (:class:`CostEstimate`).

:func:`weave_stream.ops.op` makes an op of a function or a class;
:func:`weave_stream.ops.execute.run_op` runs any op with its policy.

>>> CostEstimate(tokens=10, usd=0.01, seconds=1.0) + CostEstimate(tokens=5, usd=None)
CostEstimate(tokens=15, usd=None, seconds=1.0)
>>> Signature(required=("text",), optional=("lang",)).problems({"text", "langue"})
["unknown argument 'langue' (the op takes: text, lang)"]
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, Protocol, runtime_checkable

from weave_stream.durations import parse_duration
from weave_stream.errors import DurationError, OpDefinitionError

__all__ = ["CostEstimate", "Op", "OpPolicy", "OpResult", "Signature"]


@dataclass(frozen=True)
class OpPolicy:
    """How an op is run: the options of ``@op(timeout=..., retries=..., backoff=...)``.

    ``timeout`` bounds one attempt of one batch; a failed or timed-out input is
    retried up to ``retries`` times, after ``backoff * 2**attempt`` (capped at
    ``max_backoff``), or after the ``retry_after`` the op reported, whichever is
    longer. Batches hold at most ``batch_size`` inputs. Durations are seconds or text
    (``"30s"``, ``"500ms"``, see :mod:`weave_stream.durations`); they are kept as seconds.

    >>> OpPolicy(timeout="2m", backoff="250ms").timeout, OpPolicy(backoff="250ms").backoff
    (120.0, 0.25)
    """

    timeout: float = 60.0
    retries: int = 2
    backoff: float = 0.5
    max_backoff: float = 30.0
    batch_size: int = 64

    def __post_init__(self) -> None:
        problems = []
        for name in ("timeout", "backoff", "max_backoff"):
            try:
                object.__setattr__(self, name, parse_duration(getattr(self, name)))
            except DurationError as exc:
                problems.append(f"{name}: {exc}")
        if not problems:
            if not self.timeout > 0:
                problems.append(f"timeout must be > 0, got {self.timeout!r}")
            if self.max_backoff < self.backoff:
                problems.append(
                    f"need backoff <= max_backoff, got {self.backoff!r} and {self.max_backoff!r}"
                )
        if isinstance(self.retries, bool) or not isinstance(self.retries, int) or self.retries < 0:
            problems.append(f"retries must be a whole number >= 0, got {self.retries!r}")
        if isinstance(self.batch_size, bool) or not isinstance(self.batch_size, int):
            problems.append(f"batch_size must be a whole number >= 1, got {self.batch_size!r}")
        elif self.batch_size < 1:
            problems.append(f"batch_size must be >= 1, got {self.batch_size!r}")
        if problems:
            raise OpDefinitionError(
                "invalid op policy: " + "; ".join(problems) + " (fix the @op(...) options)"
            )

    def backoff_before(self, attempt: int) -> float:
        """Seconds to wait before retry number ``attempt`` (0-based).

        >>> [OpPolicy(backoff=0.5, max_backoff=3).backoff_before(a) for a in range(4)]
        [0.5, 1.0, 2.0, 3.0]
        """
        return min(self.backoff * 2**attempt, self.max_backoff)


@dataclass(frozen=True)
class CostEstimate:
    """What running an op on some inputs is expected to cost, before it runs.

    ``usd`` is ``None`` when unknown (e.g. a model with no price); ``seconds`` is
    wall time on this machine, accounting for the op's own parallelism.
    """

    tokens: int = 0
    usd: float | None = 0.0
    seconds: float = 0.0

    def __add__(self, other: CostEstimate) -> CostEstimate:
        usd = None if self.usd is None or other.usd is None else self.usd + other.usd
        return CostEstimate(self.tokens + other.tokens, usd, self.seconds + other.seconds)

    def times(self, count: int) -> CostEstimate:
        """This estimate (per input) for ``count`` inputs.

        >>> CostEstimate(tokens=3, usd=0.5, seconds=0.1).times(4)
        CostEstimate(tokens=12, usd=2.0, seconds=0.4)
        """
        usd = None if self.usd is None else self.usd * count
        return CostEstimate(self.tokens * count, usd, self.seconds * count)


@dataclass(frozen=True)
class OpResult:
    """The outcome of an op on one input: a value, or an error (never both).

    ``details`` is the op's audit data (for the judge: prompt digest, raw answer,
    tokens, latency). ``retriable`` marks an error worth retrying (a timeout, HTTP
    429 or 5xx, a malformed answer); ``retry_after`` is the wait the op was told.
    ``attempts`` is set by the executor.
    """

    value: Any = None
    error: str | None = None
    cost: float | None = None
    latency_ms: float | None = None
    details: Mapping[str, Any] = field(default_factory=dict)
    retriable: bool = False
    retry_after: float | None = None
    attempts: int = 1

    @classmethod
    def failure(
        cls,
        error: str,
        *,
        retriable: bool = False,
        retry_after: float | None = None,
        details: Mapping[str, Any] | None = None,
        cost: float | None = None,
        latency_ms: float | None = None,
    ) -> OpResult:
        """A failed result."""
        return cls(
            error=error,
            retriable=retriable,
            retry_after=retry_after,
            details=details or {},
            cost=cost,
            latency_ms=latency_ms,
        )

    @property
    def ok(self) -> bool:
        """True when the op returned a value."""
        return self.error is None


@dataclass(frozen=True)
class Signature:
    """The arguments an op takes: required ones, optional ones, and whether it takes any."""

    required: tuple[str, ...] = ()
    optional: tuple[str, ...] = ()
    open: bool = False  # a function with **kwargs takes any argument

    def problems(self, given: Sequence[str] | set[str] | frozenset[str]) -> list[str]:
        """What is wrong with calling the op with arguments ``given``, as sentences."""
        known = (*self.required, *self.optional)
        problems = [
            f"unknown argument {name!r} (the op takes: {', '.join(known) or 'nothing'})"
            for name in sorted(given)
            if name not in known and not self.open
        ]
        problems += [f"missing argument {name!r}" for name in self.required if name not in given]
        return problems


@runtime_checkable
class Op(Protocol):
    """A versioned computation over batches of inputs (each input maps argument -> value)."""

    @property
    def name(self) -> str:
        """Short name, e.g. ``embed``."""
        ...

    @property
    def version(self) -> str:
        """Digest of the op's code and parameters (12 hex digits)."""
        ...

    @property
    def ref(self) -> str:
        """``name:version``, the key its results are cached and compared under."""
        ...

    @property
    def deterministic(self) -> bool:
        """False when the same input may give different values (then trials apply)."""
        ...

    @property
    def policy(self) -> OpPolicy:
        """Timeout, retries, backoff and batch size."""
        ...

    @property
    def signature(self) -> Signature:
        """The arguments the op takes."""
        ...

    def estimate(self, inputs: Sequence[Mapping[str, Any]]) -> CostEstimate:
        """Expected cost of running on ``inputs`` (all of them together)."""
        ...

    async def run_batch(self, inputs: Sequence[Mapping[str, Any]]) -> list[OpResult]:
        """Run on a batch; one result per input, in order; failures are results."""
        ...
