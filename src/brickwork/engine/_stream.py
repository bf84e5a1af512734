"""Streaming through the engine, kept apart from the executor's hot path.

A plan streams when one of its top-level steps is a streaming brick (see
:func:`brickwork.plan.stream_split`): the steps before it run once, as in ``Executor.run``;
the streaming brick's ``stream(inputs, parameters)`` yields partial outputs (chunks); every
chunk goes through the per-chunk bricks after it and out to the caller. Closing the iterator
(a consumer that stops, a client that hangs up) closes the brick's stream, which is how a
generation stops and frees its slot.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncGenerator, Mapping
from typing import Any

import numpy as np

from ..errors import DeadlineExceeded, InvalidInput, ModelError, RequestError
from ..plan import Call, Ladder, PlanStep, Seq, StreamSplit, is_streaming, stream_split
from ..spec import Tensors
from ._executor import Executor, InferResult, _Request, bind_args

__all__ = ["stream_plan"]


async def stream_plan(executor: Executor, inputs: Tensors, *, parameters: Mapping[str, Any] | None = None,
                      timeout_s: float | None = None) -> AsyncGenerator[InferResult, None]:
    """Run one request and yield its output tensors chunk by chunk (a plan with no streaming
    stage yields its whole answer as one chunk)."""
    split = _split(executor)
    if split is None:
        yield await executor.run(inputs, timeout_s=timeout_s)
        return
    request = _Request(time.monotonic() + timeout_s if timeout_s else None)
    env = dict(inputs)
    for step in split.prefix:
        await executor._run(step, env, request)
    outputs = tuple(s.name for s in executor.plan.outputs)
    if isinstance(split.call, Ladder):
        call, chunks = await _climb(executor, split.call, env, request, parameters or {})
    else:
        call = split.call
        chunks = _open(executor, call, env, parameters or {})
    try:
        async for chunk in chunks:
            if request.deadline is not None and time.monotonic() >= request.deadline:
                raise DeadlineExceeded(f"deadline passed while stage {call.stage!r} was streaming")
            part = dict(env)
            try:
                for port, name in call.publish:
                    part[name] = chunk[port]
            except KeyError as exc:
                raise ModelError(f"streaming brick {call.stage!r} yielded no output {exc.args[0]!r}; "
                                 f"it yielded {sorted(chunk)}") from None
            for step in split.suffix:
                await executor._run(step, part, request)
            yield InferResult({n: part[n] for n in outputs}, request.rungs, executor._primary)
    finally:
        await chunks.aclose()


def _open(executor: Executor, call: Call, env: Tensors, parameters: Mapping[str, Any]
          ) -> AsyncGenerator[Tensors, None]:
    args = bind_args(call, env)
    brick: Any = executor.plan.stages[call.stage].brick
    if is_streaming(brick):
        return brick.stream(args, parameters)

    async def whole() -> AsyncGenerator[Tensors, None]:  # a plain rung answers in one chunk
        yield await executor.stages[call.stage].submit(args, None)

    return whole()


async def _climb(executor: Executor, ladder: Ladder, env: Tensors, request: _Request,
                 parameters: Mapping[str, Any]) -> tuple[Call, AsyncGenerator[Tensors, None]]:
    """Try each rung until one yields its first chunk (a failure after that is the stream's):
    the stage's ``retries`` apply to the first chunk, and its ``timeout_s`` bounds the wait for
    it. The default answer is one chunk. Counts the rung as ``Executor`` does."""
    last: RequestError | None = None
    for label, step in ladder.rungs:
        call = _rung(step)
        policy = executor.plan.stages[call.stage].policy
        for _ in range(policy.retries + 1):
            chunks = _open(executor, call, env, parameters)
            try:
                first = await asyncio.wait_for(chunks.__anext__(), policy.timeout_s)
            except StopAsyncIteration:
                first = None
            except (TimeoutError, RequestError) as exc:
                await chunks.aclose()
                err = exc if isinstance(exc, RequestError) else DeadlineExceeded(
                    f"stage {call.stage!r} gave no first chunk within {policy.timeout_s} s")
                if not (err.is_machinery if ladder.on != "any" else not isinstance(err, InvalidInput)):
                    raise err from None
                last = err
                continue
            _count(executor, ladder, request, label)
            return call, _prepend(first, chunks)
    if ladder.default is not None:
        n = next((int(v.shape[0]) for v in env.values() if v.ndim), 1)
        answer = {k: np.repeat(v[np.newaxis, ...], n, axis=0) for k, v in ladder.default.items()}
        _count(executor, ladder, request, "default")
        publish = tuple((k, k) for k in answer)
        return Call("default", (), publish), _prepend(answer, None)
    assert last is not None
    raise last


def _rung(step: PlanStep) -> Call:
    while isinstance(step, Seq):
        step = step.steps[0]
    assert isinstance(step, Call)
    return step


def _count(executor: Executor, ladder: Ladder, request: _Request, label: str) -> None:
    request.rungs[ladder.name] = label
    counts = executor.rung_counts[ladder.name]
    counts[label] = counts.get(label, 0) + 1


async def _prepend(first: Tensors | None, rest: AsyncGenerator[Tensors, None] | None
                   ) -> AsyncGenerator[Tensors, None]:
    try:
        if first is not None:
            yield first
        if rest is not None:
            async for chunk in rest:
                yield chunk
    finally:
        if rest is not None:
            await rest.aclose()


_UNSET = object()


def _split(executor: Executor) -> StreamSplit | None:
    split = getattr(executor, "_stream_split", _UNSET)
    if split is _UNSET:
        split = stream_split(executor.plan)
        executor._stream_split = split  # type: ignore[attr-defined]
    return split  # type: ignore[return-value]
