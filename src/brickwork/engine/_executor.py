"""Runs a plan for one request: interprets the plan tree on the event loop and submits each
``Call`` to its stage. Control flow (sequence, fan-out, routing, voting, fallback ladders) is
cheap Python here; compute happens behind the stages, where requests are batched."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Awaitable, Callable, Mapping
from typing import Any

import numpy as np

from .. import plan as p
from ..adapters import LOSSLESS_CASTS
from ..errors import DeadlineExceeded, InvalidInput, ModelError, RequestError
from ..faults import DEFAULT_RUNG, moves_down, unready
from ..faults import ladders as _ladders
from ..spec import Tensors, TensorSpec, dtype_of, to_numpy_dtype
from ._backend import StageRunner
from ._combine import combine
from ._deadline import DeadlineVotes
from ._stage import Stage

__all__ = ["Executor", "InferResult"]


class InferResult(dict[str, np.ndarray]):
    """The output tensors, plus ``rungs``: for each fallback ladder that ran, the label of the
    rung that produced the answer (the primary's name when nothing degraded, ``"default"``
    for the static answer), and ``members``: for each deadline ensemble that ran, the labels
    of the members whose answers were combined."""

    members: Mapping[str, tuple[str, ...]] = {}

    def __init__(self, tensors: Mapping[str, np.ndarray], rungs: dict[str, str],
                 primaries: Mapping[str, str] | None = None) -> None:
        super().__init__(tensors)
        self.rungs = rungs
        self._primaries = primaries if primaries is not None else {}  # read only

    @property
    def degraded(self) -> bool:
        """True when any fallback ladder answered from a rung other than its primary."""
        return any(self._primaries.get(k) != v for k, v in self.rungs.items())


class _Request:
    __slots__ = ("deadline", "members", "rungs", "visited")

    def __init__(self, deadline: float | None) -> None:
        self.deadline = deadline
        self.rungs: dict[str, str] = {}
        self.visited = 0  # bit i: the request reached stage i
        self.members: dict[str, tuple[str, ...]] | None = None  # deadline ensembles only


def bind_args(call: p.Call, env: Tensors) -> Tensors:
    """A call's arguments: each port's source tensor from ``env`` through its adapters (the
    interpreter's and the streaming path's form; the compiled single-call path precomputes it)."""
    args: Tensors = {}
    for b in call.bindings:
        value = env[b.source]
        for adapter in b.adapters:
            value = adapter.apply(value)
        args[b.port] = value
    return args


class Executor:
    def __init__(self, plan: p.Plan, stages: Mapping[str, StageRunner]) -> None:
        self.plan = plan
        self.stages = stages
        self._primary = {lad.name: lad.rungs[0][0] for lad in _ladders(plan.root)}
        # Who is still on the way to each stage: requests that entered minus those that reached
        # the stage or left without it. A stage's batch waits for company only while some are.
        self._bit = {name: 1 << i for i, name in enumerate(stages)}
        self._all = (1 << len(stages)) - 1
        self._entered = 0
        self._reached = [0] * len(stages)  # per stage: requests that reached it, or left without
        for i, runner in enumerate(stages.values()):
            target = getattr(runner, "inner", runner)  # under a fault-policy guard
            expect_from = getattr(target, "expect_from", None)
            if expect_from is not None:
                expect_from(self._coming_to(i))
        # per ladder, how often each rung answered (the primary's label included)
        self.rung_counts: dict[str, dict[str, int]] = {name: {} for name in self._primary}
        # zero items is a valid batch: a row-wise stage answers it with empty outputs of its
        # declared shapes, without a call (a brick need not handle a batch of 0)
        self._empty = {name: ({s.name: empty_like_spec(s) for s in st.signature.outputs}
                              if getattr(st.brick, "rowwise", True) else None)
                       for name, st in plan.stages.items()}
        self.deadline_votes = DeadlineVotes(plan.root)
        # the hot path: the plan tree turned into closures once, so a request does no dispatch
        self._entry = self._compile(plan.root)
        self._outputs = tuple(s.name for s in plan.outputs)
        # the server's hot path for a plan that is one call: the stage started without a coroutine
        self._direct = self._direct_call(plan.root)
        # validation fast path: (name, numpy dtype, rank, fixed dims) per input
        self._names = frozenset(s.name for s in plan.inputs)
        self._fast = tuple(
            (s.name, None if s.dtype == "BYTES" else to_numpy_dtype(s.dtype), len(s.shape),
             tuple((i, d) for i, d in enumerate(s.shape) if d != -1))
            for s in plan.inputs
        )

    def _direct_call(self, root: p.PlanStep) -> tuple[Any, ...] | None:
        if not isinstance(root, p.Call) or any(b.adapters for b in root.bindings):
            return None
        runner = self.stages[root.stage]
        # a bare Stage only: a fault policy's guard (or hedging) forwards attributes to it
        start = runner.start_nowait if isinstance(runner, Stage) else None
        names = {name for _, name in root.publish}
        sources = {s.name for s in self.plan.inputs}
        if (start is None or not set(self._outputs) <= names
                or not all(b.source in sources for b in root.bindings)):
            return None
        plain = tuple((b.port, b.source) for b in root.bindings)
        # the validated inputs are the call's arguments as they are (a fresh dict per request)
        same = all(port == source for port, source in plain) and len(plain) == len(sources)
        # the call's outputs are the plan's, under the same names
        port_of = {name: port for port, name in root.publish}
        renamed = tuple((port_of[name], name) for name in self._outputs)
        return (start, None if same else plain, renamed, root.stage,
                self._bit[root.stage].bit_length() - 1)

    def start(self, inputs: Tensors) -> Tensors | asyncio.Future[Tensors] | None:
        """The hot path of a plan that is one call, for a request without a deadline (``inputs``
        validated): start the stage's call with no coroutine in between. Returns the call's
        outputs, or their future (give either to :meth:`finish`); None: this plan or request
        takes :meth:`run`."""
        direct = self._direct
        if direct is None:
            return None
        start, plain, _, stage, index = direct
        args = inputs if plain is None else {port: inputs[source] for port, source in plain}
        if self._empty[stage] is not None and _no_items(args):  # run() answers them, no call
            return None
        self._entered += 1
        self._reached[index] += 1
        out: Tensors | asyncio.Future[Tensors] = start(args, None)
        return out

    def finish(self, out: Tensors) -> InferResult:
        """The answer of a request :meth:`start` began, from its call's outputs."""
        assert self._direct is not None
        try:
            return InferResult({name: out[port] for port, name in self._direct[2]}, {}, self._primary)
        except KeyError as exc:
            raise ModelError(f"brick {self._direct[3]!r} returned no output {exc.args[0]!r}; "
                             f"it returned {sorted(out)}") from None

    def validate(self, inputs: Mapping[str, Any]) -> Tensors:
        """Check the caller's tensors against the pipeline's inputs; lists become arrays and
        lossless casts are applied. Raises InvalidInput naming the problem."""
        if inputs.keys() == self._names:
            out: Tensors = {}
            rows = -1
            for name, dtype, rank, fixed in self._fast:
                value = inputs[name]
                if (type(value) is not np.ndarray or value.ndim != rank
                        or (value.dtype != dtype if dtype is not None else value.dtype.kind not in "OUS")
                        or any(value.shape[i] != d for i, d in fixed)
                        or (rows != -1 and rank and value.shape[0] != rows)):
                    return self._validate_slow(inputs)
                if rank:
                    rows = value.shape[0]
                out[name] = value
            return out
        return self._validate_slow(inputs)

    def _validate_slow(self, inputs: Mapping[str, Any]) -> Tensors:
        specs = {s.name: s for s in self.plan.inputs}
        unknown = sorted(set(inputs) - set(specs))
        if unknown:
            raise InvalidInput(f"unknown input(s) {unknown}; pipeline {self.plan.name!r} takes {sorted(specs)}")
        missing = sorted(set(specs) - set(inputs))
        if missing:
            raise InvalidInput(f"missing input(s) {missing} for pipeline {self.plan.name!r}")
        out: Tensors = {}
        for name, value in inputs.items():
            spec = specs[name]
            if not isinstance(value, np.ndarray):
                dtype = object if spec.dtype == "BYTES" else to_numpy_dtype(spec.dtype)
                try:
                    value = np.asarray(value, dtype=dtype)
                except (TypeError, ValueError) as exc:
                    raise InvalidInput(f"input {name!r} is not {spec.dtype}: {exc}") from exc
            else:
                have = dtype_of(value.dtype)
                if have != spec.dtype and (have, spec.dtype) in LOSSLESS_CASTS:
                    value = value.astype(to_numpy_dtype(spec.dtype))
            out[name] = spec.check(value)
        sizes = {v.shape[0] for v in out.values() if v.ndim}
        if len(sizes) > 1:
            raise InvalidInput(f"inputs disagree on the batch size (axis 0): {sorted(sizes)}")
        return out

    async def run(self, inputs: Tensors, *, timeout_s: float | None = None) -> InferResult:
        request = _Request(time.monotonic() + timeout_s if timeout_s else None)
        env = dict(inputs)
        self._entered += 1
        try:
            await self._entry(env, request)
        finally:
            if request.visited != self._all:
                self._left(request.visited)
        result = InferResult({name: env[name] for name in self._outputs}, request.rungs, self._primary)
        if request.members is not None:
            result.members = request.members
        return result

    def _coming_to(self, i: int) -> Callable[[], int]:
        reached = self._reached
        return lambda: self._entered - reached[i]

    def _reach(self, stage: str, req: _Request) -> None:
        bit = self._bit[stage]
        if not req.visited & bit:
            req.visited |= bit
            self._reached[bit.bit_length() - 1] += 1

    def _left(self, visited: int) -> None:
        """A request left without reaching some stages: it is no longer on its way to them."""
        reached = self._reached
        for i in range(len(reached)):
            if not visited >> i & 1:
                reached[i] += 1

    # -- the compiled hot path ---------------------------------------------------------
    def _compile(self, step: p.PlanStep) -> Callable[[Tensors, _Request], Awaitable[None]]:
        """Closures for the common steps (calls and sequences); the rest interpret ``step``."""
        if isinstance(step, p.Call):
            return self._compile_call(step)
        if isinstance(step, p.Seq):
            parts = tuple(self._compile(s) for s in step.steps)

            async def seq(env: Tensors, req: _Request) -> None:
                for part in parts:
                    await part(env, req)

            return seq

        async def interpret(env: Tensors, req: _Request) -> None:
            await self._run(step, env, req)

        return interpret

    def _compile_call(self, call: p.Call) -> Callable[[Tensors, _Request], Awaitable[None]]:
        submit = self.stages[call.stage].submit
        stage = call.stage
        empty = self._empty[stage]  # the answer to zero items, or None: call the brick anyway
        plain = tuple((b.port, b.source) for b in call.bindings if not b.adapters)
        adapted = tuple((b.port, b.source, b.adapters) for b in call.bindings if b.adapters)
        publish = call.publish
        bit = self._bit[stage]
        reached = self._reached
        index = bit.bit_length() - 1

        async def run_call(env: Tensors, req: _Request) -> None:
            if not req.visited & bit:
                req.visited |= bit
                reached[index] += 1
            deadline = req.deadline
            if deadline is not None and time.monotonic() >= deadline:
                raise DeadlineExceeded(f"deadline passed before stage {stage!r}")
            args = {port: env[source] for port, source in plain}
            for port, source, adapters in adapted:
                value = env[source]
                for adapter in adapters:
                    value = adapter.apply(value)
                args[port] = value
            out = empty if empty is not None and _no_items(args) else await submit(args, deadline)
            try:
                for port, name in publish:
                    env[name] = out[port]
            except KeyError as exc:
                raise ModelError(f"brick {stage!r} returned no output {exc.args[0]!r}; "
                                 f"it returned {sorted(out)}") from None

        return run_call

    # -- the interpreter ---------------------------------------------------------------
    async def _run(self, step: p.PlanStep, env: Tensors, req: _Request) -> None:
        if isinstance(step, p.Call):
            await self._call(step, env, req)
        elif isinstance(step, p.Seq):
            for s in step.steps:
                await self._run(s, env, req)
        elif isinstance(step, p.Par):
            envs = [dict(env) for _ in step.steps]
            await _all(self._run(s, e, req) for s, e in zip(step.steps, envs, strict=True))
            for names, e in zip(step.publishes, envs, strict=True):
                env.update({n: e[n] for n in names})
        elif isinstance(step, p.Scope):
            inner = dict(env)
            await self._run(step.step, inner, req)
            env.update({n: inner[n] for n in step.outputs})
        elif isinstance(step, p.Route):
            await self._route(step, env, req)
        elif isinstance(step, p.Vote):
            if step.timed:  # k-of-n by a deadline: its own path (engine/_deadline.py)
                answered = await self.deadline_votes.run(step, env, req, self._run)
                if req.members is None:
                    req.members = {}
                req.members[step.name] = answered
                return
            envs = [dict(env) for _ in step.members]
            await _all(self._run(s, e, req) for s, e in zip(step.members, envs, strict=True))
            env.update(combine(step, [e[step.on] for e in envs]))
        elif isinstance(step, p.Ladder):
            await self._ladder(step, env, req)
        else:  # pragma: no cover - compile() builds only the kinds above
            raise TypeError(f"unknown plan step {step!r}")

    async def _call(self, call: p.Call, env: Tensors, req: _Request) -> None:
        self._reach(call.stage, req)
        if req.deadline is not None and time.monotonic() >= req.deadline:
            raise DeadlineExceeded(f"deadline passed before stage {call.stage!r}")
        args = bind_args(call, env)
        empty = self._empty[call.stage]
        out = (empty if empty is not None and _no_items(args)
               else await self.stages[call.stage].submit(args, req.deadline))
        for port, name in call.publish:
            try:
                env[name] = out[port]
            except KeyError:
                raise ModelError(f"brick {call.stage!r} returned no output {port!r}; "
                                 f"it returned {sorted(out)}") from None

    async def _route(self, route: p.Route, env: Tensors, req: _Request) -> None:
        keys = env[route.on]
        n = len(keys)
        if n == 0:  # no items, no branch: empty outputs of the switch's declared shapes
            env.update({spec.name: empty_like_spec(spec) for spec in route.outputs})
            return
        values = [k.decode("utf-8", "replace") if isinstance(k, bytes) else k for k in keys.tolist()]
        branch_of: dict[Any, list[int]] = {}
        lookup = {v: i for i, (v, _) in enumerate(route.cases)}
        default_index = len(route.cases)
        for item, v in enumerate(values):
            if route.each:  # group(): one sub-request per distinct value, all to the default
                branch_of.setdefault(("each", v), []).append(item)
                continue
            b = lookup.get(v)
            if b is None:
                if route.default is None:
                    raise InvalidInput(f"switch {route.name!r}: item {item} has {route.on}={v!r}, "
                                       f"which matches no case {sorted(map(str, lookup))} and there is no default")
                b = default_index
            branch_of.setdefault(b, []).append(item)
        steps = [s for _, s in route.cases] + ([route.default] if route.default is not None else [])
        jobs, envs = [], []
        for b, items in branch_of.items():
            idx = np.asarray(items, dtype=np.intp)
            sub = {k: (v[idx] if v.ndim and v.shape[0] == n else v) for k, v in env.items()}
            envs.append((idx, sub))
            jobs.append(self._run(steps[default_index] if route.each else steps[b], sub, req))
        await _all(jobs)
        for spec in route.outputs:
            parts = [(idx, sub[spec.name]) for idx, sub in envs]
            first = parts[0][1]
            merged = np.empty((n, *first.shape[1:]), dtype=first.dtype)
            for idx, part in parts:
                if part.shape[0] != len(idx):
                    raise ModelError(f"switch {route.name!r}: branch returned {part.shape[0]} rows "
                                     f"of {spec.name!r} for {len(idx)} items")
                merged[idx] = part
            env[spec.name] = merged

    async def _ladder(self, ladder: p.Ladder, env: Tensors, req: _Request) -> None:
        last: RequestError | None = None
        for label, step in ladder.rungs:
            attempt = dict(env)
            try:
                await self._run(step, attempt, req)
            except RequestError as exc:
                if not moves_down(exc, ladder.on):
                    raise
                last = exc
                continue
            env.update({s.name: attempt[s.name] for s in ladder.outputs})
            req.rungs[ladder.name] = label
            counts = self.rung_counts[ladder.name]
            counts[label] = counts.get(label, 0) + 1
            return
        if ladder.default is not None:
            n = _batch_size(env)
            for name, item in ladder.default.items():
                env[name] = np.repeat(item[np.newaxis, ...], n, axis=0)
            req.rungs[ladder.name] = DEFAULT_RUNG
            counts = self.rung_counts[ladder.name]
            counts[DEFAULT_RUNG] = counts.get(DEFAULT_RUNG, 0) + 1
            return
        assert last is not None
        raise last


    # -- health -------------------------------------------------------------------------
    def unready(self) -> list[str]:
        """Why the pipeline cannot answer now (empty when it can): a required stage with no
        live replica (or an open circuit) that no fallback rung or default answer covers."""
        return unready(self.plan.root, self.stages)


def empty_like_spec(spec: TensorSpec) -> np.ndarray:
    """An answer of zero items for ``spec``: axis 0 is 0, other dynamic dimensions 0 too."""
    dtype = object if spec.dtype == "BYTES" else to_numpy_dtype(spec.dtype)
    shape = (0, *(max(d, 0) for d in spec.shape[1:])) if spec.shape else (0,)
    return np.empty(shape, dtype=dtype)


def _no_items(args: Tensors) -> bool:
    """Does this call carry zero items (axis 0 of length 0)?"""
    for value in args.values():
        if value.ndim:
            return value.shape[0] == 0
    return False


def _batch_size(env: Tensors) -> int:
    for v in env.values():
        if v.ndim:
            return int(v.shape[0])
    return 1


async def _all(coros: Any) -> None:
    """Run concurrently; on the first failure cancel the rest and raise that failure."""
    tasks = [asyncio.ensure_future(c) for c in coros]
    if len(tasks) == 1:
        await tasks[0]
        return
    try:
        await asyncio.gather(*tasks)
    except BaseException:
        for t in tasks:
            t.cancel()
        raise
