"""``@op``: make an op of a function, or of a class whose instances hold parameters.

A decorated function stays callable as before and gains ``name``, ``version``
and ``ref``. By default it is called once per input (sync functions run in a
worker thread, async ones concurrently); with ``batched=True`` it receives each
argument as a list and returns a list. It may return :class:`OpResult` items to
report cost, audit details or retriable failures itself.

An op may call ops (``await embed.acall(text=t)``): its version covers theirs, and in
a run the calls are cached, batched and recorded (:mod:`weave_stream.ops.nested`).

A decorated class becomes a factory of ops: calling it with parameters returns an
op whose version covers the class's code and those parameters. The instance may
define ``estimate(inputs) -> CostEstimate``, ``version_state() -> JSON`` (state
folded into the version, e.g. what a classifier learned), ``op_policy`` and
``op_signature`` (when ``__call__`` takes ``**arguments``).

>>> @op
... def word_count(text: str) -> int:
...     return len(text.split())
>>> word_count("two words"), word_count.name, word_count.ref == f"word_count:{word_count.version}"
(2, 'word_count', True)
>>> import asyncio
>>> [r.value for r in asyncio.run(word_count.run_batch([{"text": "a b c"}, {"text": ""}]))]
[3, 0]
"""

from __future__ import annotations

import asyncio
import functools
import importlib.metadata
import inspect
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, overload

from weave_stream.durations import parse_duration
from weave_stream.errors import DurationError, OpDefinitionError
from weave_stream.ops.base import CostEstimate, OpPolicy, OpResult, Signature
from weave_stream.ops.nested import (
    acall_one,
    bind_input,
    call_one,
    current_frame,
    current_router,
    routed_call,
    run_inputs,
)
from weave_stream.ops.subops import (
    covers,
    declared_calls,
    ops_in_params,
    static_sub_ops,
    unique_ops,
    version_with_calls,
)
from weave_stream.ops.versioning import code_digest, imported_distributions, version_digest

__all__ = ["FunctionOp", "OpClass", "OpDecorator", "OpOptions", "op"]

DEFAULT_RETRY_ON: tuple[type[BaseException], ...] = (TimeoutError, ConnectionError)


@dataclass(frozen=True)
class OpOptions:
    """What ``@op(...)`` was told."""

    name: str | None = None
    deterministic: bool = True
    batched: bool = False
    policy: OpPolicy = field(default_factory=OpPolicy)
    cost: CostEstimate = field(default_factory=CostEstimate)
    depends: tuple[Any, ...] = ()
    retry_on: tuple[type[BaseException], ...] = DEFAULT_RETRY_ON
    unversioned: tuple[str, ...] = ()
    calls: tuple[tuple[Any, float | None], ...] = ()  # declared sub-ops, calls per input
    version: str | None = None  # the user's label, in place of the distributions
    distributions: tuple[str, ...] | None = None  # None: those the op's module imports
    higher_is_worse: bool | None = None  # for drill-downs: which scores are the worst


class FunctionOp:
    """An op made of a callable (a function, or the ``__call__`` of a parameterised instance)."""

    def __init__(
        self,
        function: Callable[..., Any],
        options: OpOptions,
        *,
        code_target: Any,
        name: str,
        params: Mapping[str, Any] | None = None,
        instance: Any = None,
        factory: OpClass | None = None,
        arguments: Mapping[str, Any] | None = None,
        param_ops: Sequence[Any] = (),
    ) -> None:
        self._function = function
        self._options = options
        self._code_target = code_target
        self._name = name
        self._params = dict(params or {})
        self._instance = instance
        self._factory = factory
        self._arguments = dict(arguments or {})  # every constructor argument, versioned or not
        self._code: str | None = None
        self._dependencies: dict[str, str] | None = None
        self._version: tuple[Any, str] | None = None  # (state, version): params never change
        self._signature = _signature_of(function)
        self._param_ops = tuple(param_ops)  # constructor arguments that are ops
        self._sub_ops: tuple[Any, ...] | None = None
        self.undeclared_calls: set[str] = set()  # refs called in runs that the version misses
        self.__wrapped_op__ = code_target
        functools.update_wrapper(self, function, updated=())

    # -- the Op protocol -------------------------------------------------------------
    @property
    def name(self) -> str:
        """Short name (the function's or class's unless ``name=`` was given)."""
        return self._name

    @property
    def version(self) -> str:
        """Its own version folded with those of the ops it calls (see :mod:`.subops`)."""
        return version_with_calls(self, self.own_version)

    @property
    def own_version(self) -> str:
        """Digest of code, parameters, learned state and the installed distributions the
        op's module imports, or its ``version=`` label (see :mod:`.versioning`)."""
        if self._code is None:
            self._code = code_digest(self._code_target, self._options.depends)
        state_hook = getattr(self._instance, "version_state", None)
        state = state_hook() if callable(state_hook) else None
        if self._version is None or self._version[0] != state:
            dependencies = dict(self.distributions)
            if self._options.version is not None:
                dependencies = {"version": self._options.version}
            digest = version_digest(self._name, self._code, self._params, state, dependencies)
            self._version = (state, digest)
        return self._version[1]

    @property
    def higher_is_worse(self) -> bool | None:
        """Whether a higher value is worse (drill-downs list the worst first); None: unsaid."""
        return self._options.higher_is_worse

    @property
    def distributions(self) -> dict[str, str]:
        """``{distribution: version}`` this op's version covers (empty with ``version=``)."""
        if self._dependencies is None:
            options = self._options
            if options.version is not None:
                self._dependencies = {}
            elif options.distributions is not None:
                self._dependencies = {
                    name: _installed_version(name) for name in options.distributions
                }
            else:
                targets = [self._code_target, *options.depends]
                self._dependencies = imported_distributions(targets)
        return dict(self._dependencies)

    @property
    def ref(self) -> str:
        """``name:version``."""
        return f"{self._name}:{self.version}"

    @property
    def sub_ops(self) -> tuple[Any, ...]:
        """The ops its version covers: used by name in its code, passed to it, or declared."""
        if self._sub_ops is None:
            declared = [sub for sub, _ in self._options.calls]
            found = static_sub_ops(self._code_target, self._instance)
            self._sub_ops = unique_ops([*found, *self._param_ops, *declared], self)
        return self._sub_ops

    @property
    def calls_per_input(self) -> dict[str, float]:
        """Calls per input declared with ``calls={op: n}``, by op name (cost plans read it)."""
        return {sub.name: n for sub, n in self._options.calls if n is not None}

    def covers(self, sub: Any) -> bool:
        """Whether this op's version covers calls of ``sub``; warns once when it does not."""
        return covers(self, sub, self.undeclared_calls)

    @property
    def deterministic(self) -> bool:
        """As declared with ``deterministic=``."""
        return self._options.deterministic

    @property
    def policy(self) -> OpPolicy:
        """The instance's ``op_policy`` if it has one, else the decorator's."""
        own = getattr(self._instance, "op_policy", None)
        return own if isinstance(own, OpPolicy) else self._options.policy

    @property
    def signature(self) -> Signature:
        """The instance's ``op_signature`` if it has one, else the function's arguments."""
        own = getattr(self._instance, "op_signature", None)
        return own if isinstance(own, Signature) else self._signature

    @property
    def params(self) -> Mapping[str, Any]:
        """The versioned parameters the op was made with (empty for a function)."""
        return dict(self._params)

    def with_params(self, **changes: Any) -> FunctionOp:
        """The same op class built with ``changes`` to its parameters (a new version).

        Raises :class:`~weave_stream.errors.OpDefinitionError` naming the parameters the op takes
        when one is unknown, or when the op is a function (it has no parameters).

        >>> from weave_stream.ops.classify import Classify
        >>> two = Classify(labels=["a", "b"]).with_params(temperature=0.1)
        >>> two.params["temperature"], two.params["labels"]
        (0.1, ['a', 'b'])
        >>> two.with_params(temprature=0.2)  # doctest: +ELLIPSIS
        Traceback (most recent call last):
        ...
        weave_stream.errors.OpDefinitionError: op 'classify' has no parameter 'temprature'; ...
        """
        if self._factory is None:
            raise OpDefinitionError(
                f"op {self._name!r} is a function: it has no parameters to vary "
                f"(changes asked: {sorted(changes)}); vary the op itself, or make it a class "
                "whose constructor takes them"
            )
        return self._factory.rebuild(self._arguments, changes)

    def estimate(self, inputs: Sequence[Mapping[str, Any]]) -> CostEstimate:
        """The instance's own estimate, or the declared per-input cost times ``len(inputs)``."""
        own = getattr(self._instance, "estimate", None)
        if callable(own):
            result = own(inputs)
            if isinstance(result, CostEstimate):
                return result
        return self._options.cost.times(len(inputs))

    async def run_batch(self, inputs: Sequence[Mapping[str, Any]]) -> list[OpResult]:
        """Call the function on ``inputs``; exceptions become failed results."""
        if not inputs:
            return []
        if self._options.batched:
            return await self._run_batched(inputs)
        if current_router() is not None:  # in a run: each input in a frame
            is_async = inspect.iscoroutinefunction(self._function)
            compute = self._call_async if is_async else self._call_sync
            return await run_inputs(self, inputs, compute, is_async, bool(self.sub_ops))
        if inspect.iscoroutinefunction(self._function):
            return list(await asyncio.gather(*(self._call_async(item) for item in inputs)))
        return await asyncio.to_thread(lambda: [self._call_sync(item) for item in inputs])

    @property
    def fans_out(self) -> bool:
        """An op that calls ops: in a run, many of its inputs run at once (all of an
        async op's; a sync op's on threads, :data:`~weave_stream.ops.execute.SYNC_FAN_OUT`
        at a time), so that their sub-calls meet in full batches."""
        return not self._options.batched and bool(self.sub_ops)

    @property
    def runs_on_threads(self) -> bool:
        """A sync function: each input of a run takes a thread while it runs."""
        return not inspect.iscoroutinefunction(self._function)

    @property
    def frames_inputs(self) -> bool:
        """True: it runs each input in a frame of its own (the executor frames the others)."""
        return not self._options.batched

    def call(self, *args: Any, **kwargs: Any) -> Any:
        """The value on one input, blocking (see :mod:`~weave_stream.ops.nested`)."""
        return call_one(self, bind_input(self, self._function, args, kwargs))

    async def acall(self, *args: Any, **kwargs: Any) -> Any:
        """The value on one input (see :mod:`~weave_stream.ops.nested`)."""
        return await acall_one(self, bind_input(self, self._function, args, kwargs))

    # -- plumbing --------------------------------------------------------------------
    def __call__(self, *args: Any, **kwargs: Any) -> Any:
        """Call the underlying function directly (no batching, no retries); inside an op
        in a run, a sub-call through the run's cache and batches (see
        :mod:`~weave_stream.ops.nested`)."""
        if current_frame() is None:
            return self._function(*args, **kwargs)
        return routed_call(self, self._function, self._options.batched, args, kwargs)

    def __getattr__(self, attribute: str) -> Any:
        # Public methods of a parameterised instance (e.g. Classify.learn) stay reachable.
        instance = self.__dict__.get("_instance")
        if instance is None or attribute.startswith("_"):
            raise AttributeError(attribute)
        return getattr(instance, attribute)

    def __repr__(self) -> str:
        return f"<op {self.ref}>"

    def _call_sync(self, item: Mapping[str, Any]) -> OpResult:
        try:
            return _as_result(self._function(**item))
        except Exception as exc:  # the user's code failed on this input: a failed value
            return self._failure(exc)

    async def _call_async(self, item: Mapping[str, Any]) -> OpResult:
        try:
            return _as_result(await self._function(**item))
        except Exception as exc:  # as in _call_sync
            return self._failure(exc)

    async def _run_batched(self, inputs: Sequence[Mapping[str, Any]]) -> list[OpResult]:
        columns = {name: [item.get(name) for item in inputs] for name in _names(inputs)}
        try:
            if inspect.iscoroutinefunction(self._function):
                outputs = await self._function(**columns)
            else:
                outputs = await asyncio.to_thread(self._function, **columns)
        except Exception as exc:
            if len(inputs) == 1:
                return [self._failure(exc)]
            # One bad input must not fail its neighbours: isolate it.
            return [result for item in inputs for result in await self._run_batched([item])]
        outputs = list(outputs)
        if len(outputs) != len(inputs):
            error = (
                f"op {self.ref} returned {len(outputs)} results for a batch of {len(inputs)}; "
                "a batched op must return one result per input, in order"
            )
            return [OpResult.failure(error) for _ in inputs]
        return [_as_result(output) for output in outputs]

    def _failure(self, exc: Exception) -> OpResult:
        retriable = isinstance(exc, self._options.retry_on)
        return OpResult.failure(f"{type(exc).__name__}: {exc}", retriable=retriable)


class OpClass:
    """A class decorated with ``@op``: call it with parameters to get an op."""

    def __init__(self, cls: type, options: OpOptions) -> None:
        self._cls = cls
        self._options = options
        self.__wrapped_op__ = cls
        functools.update_wrapper(self, cls, updated=())

    def __call__(self, *args: Any, **kwargs: Any) -> FunctionOp:
        """Instantiate the class and wrap the instance as an op versioned by its parameters."""
        bound = inspect.signature(self._cls).bind(*args, **kwargs)
        bound.apply_defaults()
        params: dict[str, Any] = {}
        for key, value in bound.arguments.items():
            kind = inspect.signature(self._cls).parameters[key].kind
            if kind is inspect.Parameter.VAR_KEYWORD:
                params.update(value)
            elif kind is not inspect.Parameter.VAR_POSITIONAL or value:
                params[key] = value
        params = {k: v for k, v in params.items() if k not in self._options.unversioned}
        # An op passed as a parameter is a sub-op: its ref enters the version as a call.
        param_ops, params = ops_in_params(params)
        instance = self._cls(*args, **kwargs)
        name = self._options.name or self._cls.__name__
        return FunctionOp(
            instance.__call__,
            self._options,
            code_target=self._cls,
            name=name,
            params=params,
            instance=instance,
            factory=self,
            arguments=_keyword_arguments(bound),
            param_ops=param_ops,
        )

    def rebuild(self, arguments: Mapping[str, Any], changes: Mapping[str, Any]) -> FunctionOp:
        """An op of this class from ``arguments`` (by keyword) with ``changes`` applied."""
        parameters = inspect.signature(self._cls).parameters
        takes_any = any(p.kind is inspect.Parameter.VAR_KEYWORD for p in parameters.values())
        named = [
            name
            for name, p in parameters.items()
            if p.kind not in (inspect.Parameter.VAR_KEYWORD, inspect.Parameter.VAR_POSITIONAL)
        ]
        unknown = sorted(name for name in changes if name not in named and not takes_any)
        if unknown:
            name = self._options.name or self._cls.__name__
            listed = ", ".join(repr(u) for u in unknown)
            raise OpDefinitionError(
                f"op {name!r} has no parameter {listed}; its parameters: {', '.join(named)}"
            )
        return self(**{**arguments, **changes})

    def __repr__(self) -> str:
        return f"<op class {self._options.name or self._cls.__name__}>"


class OpDecorator:
    """What ``op(...)`` with options returns: apply it to a function or a class."""

    def __init__(self, options: OpOptions) -> None:
        self.options = options

    @overload
    def __call__(self, item: type) -> OpClass: ...  # type: ignore[overload-overlap]
    @overload
    def __call__(self, item: Callable[..., Any]) -> FunctionOp: ...
    def __call__(self, item: Any) -> FunctionOp | OpClass:
        if inspect.isclass(item):
            return OpClass(item, self.options)
        if not callable(item):
            raise OpDefinitionError(f"@op decorates a function or a class, not {item!r:.80}")
        name = self.options.name or item.__name__
        return FunctionOp(item, self.options, code_target=item, name=name)


@overload
def op(target: type) -> OpClass: ...  # type: ignore[overload-overlap]
@overload
def op(target: Callable[..., Any]) -> FunctionOp: ...
@overload
def op(
    target: None = None,
    *,
    name: str | None = None,
    deterministic: bool = True,
    batched: bool = False,
    timeout: float | str = 60.0,
    retries: int = 2,
    backoff: float | str = 0.5,
    max_backoff: float | str = 30.0,
    batch_size: int = 64,
    cost: CostEstimate | None = None,
    depends: Sequence[Any] = (),
    retry_on: tuple[type[BaseException], ...] = DEFAULT_RETRY_ON,
    unversioned: Sequence[str] = (),
    calls: Sequence[Any] | Mapping[Any, float] | None = None,
    version: str | None = None,
    distributions: Sequence[str] | None = None,
    higher_is_worse: bool | None = None,
) -> OpDecorator: ...
def op(
    target: Any = None,
    *,
    name: str | None = None,
    deterministic: bool = True,
    batched: bool = False,
    timeout: float | str = 60.0,
    retries: int = 2,
    backoff: float | str = 0.5,
    max_backoff: float | str = 30.0,
    batch_size: int = 64,
    cost: CostEstimate | None = None,
    depends: Sequence[Any] = (),
    retry_on: tuple[type[BaseException], ...] = DEFAULT_RETRY_ON,
    unversioned: Sequence[str] = (),
    calls: Sequence[Any] | Mapping[Any, float] | None = None,
    version: str | None = None,
    distributions: Sequence[str] | None = None,
    higher_is_worse: bool | None = None,
) -> FunctionOp | OpClass | OpDecorator:
    """Make an op of a function or class; usable bare (``@op``) or with options (``@op(...)``).

    ``timeout``, ``retries``, ``backoff``, ``max_backoff`` and ``batch_size`` make its
    :class:`~weave_stream.ops.base.OpPolicy` (durations in seconds or as text, ``"30s"``).
    ``cost`` is the estimate per input; ``depends`` lists further code (functions,
    classes, modules) whose changes must change the version; ``retry_on`` the
    exception types worth retrying; ``unversioned`` the class parameters that do not
    change results (an HTTP client, settings) and so stay out of the version.
    ``calls`` lists ops its code calls that its names do not show (or maps them to
    calls per input, ``{judge: 3}``, for plans): see :mod:`.subops`.
    ``version`` is a label of yours that stands for what the code uses (bump it when
    the model behind an endpoint changes): it replaces the installed distributions the
    version otherwise covers; ``distributions`` names exactly which distributions count
    (default: those the op's module imports). ``higher_is_worse`` says which of the
    op's values are the worst (a toxicity: higher; a quality score: lower), for
    drill-downs of columns that do not say it themselves.

    mypy does not apply class decorators to types: for a typed class op, write
    ``Keyword = op(name="keyword")(KeywordOp)`` rather than decorating the class.
    """
    decorator = OpDecorator(
        OpOptions(
            name=name,
            deterministic=deterministic,
            batched=batched,
            policy=_policy(timeout, retries, backoff, max_backoff, batch_size),
            cost=cost or CostEstimate(),
            depends=tuple(depends),
            retry_on=retry_on,
            unversioned=tuple(unversioned),
            calls=declared_calls(calls, str(name or getattr(target, "__name__", "op"))),
            version=version,
            distributions=None if distributions is None else tuple(distributions),
            higher_is_worse=higher_is_worse,
        )
    )
    return decorator(target) if target is not None else decorator


def _installed_version(distribution: str) -> str:
    try:
        return importlib.metadata.version(distribution)
    except importlib.metadata.PackageNotFoundError:
        return "not installed"  # installing it later is a change too


def _policy(
    timeout: float | str, retries: int, backoff: float | str, max_backoff: float | str, size: int
) -> OpPolicy:
    durations = {"timeout": timeout, "backoff": backoff, "max_backoff": max_backoff}
    try:
        seconds = {name: parse_duration(value) for name, value in durations.items()}
    except DurationError as exc:
        raise OpDefinitionError(f"@op options: {exc}") from None
    return OpPolicy(seconds["timeout"], retries, seconds["backoff"], seconds["max_backoff"], size)


def _signature_of(function: Callable[..., Any]) -> Signature:
    required, optional, open_ = [], [], False
    for parameter in inspect.signature(function).parameters.values():
        if parameter.kind is inspect.Parameter.VAR_KEYWORD:
            open_ = True
        elif parameter.kind in (
            inspect.Parameter.VAR_POSITIONAL,
            inspect.Parameter.POSITIONAL_ONLY,
        ):
            continue
        elif parameter.default is inspect.Parameter.empty:
            required.append(parameter.name)
        else:
            optional.append(parameter.name)
    return Signature(tuple(required), tuple(optional), open_)


def _keyword_arguments(bound: inspect.BoundArguments) -> dict[str, Any]:
    """The bound constructor arguments as keywords (``**kwargs`` spread out)."""
    arguments: dict[str, Any] = {}
    for name, value in bound.arguments.items():
        kind = bound.signature.parameters[name].kind
        if kind is inspect.Parameter.VAR_KEYWORD:
            arguments.update(value)
        elif kind is not inspect.Parameter.VAR_POSITIONAL:
            arguments[name] = value
    return arguments


def _names(inputs: Sequence[Mapping[str, Any]]) -> list[str]:
    names: dict[str, None] = {}
    for item in inputs:
        names.update(dict.fromkeys(item))
    return list(names)


def _as_result(output: Any) -> OpResult:
    return output if isinstance(output, OpResult) else OpResult(value=output)
