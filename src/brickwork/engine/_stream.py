"""Streaming through the engine, kept apart from the executor's hot path.

A plan streams when one of its top-level steps is a streaming brick (see
:func:`brickwork.plan.stream_split`): the steps before it run once, as in ``Executor.run``;
the streaming brick's ``stream(inputs, parameters)`` yields partial outputs (chunks); every
chunk goes through the per-chunk bricks after it and out to the caller. Closing the iterator
(a consumer that stops, a client that hangs up) closes the brick's stream, which is how a
generation stops and frees its slot.
"""

from __future__ import annotations

import time
from collections.abc import AsyncGenerator, Mapping
from typing import Any

from ..errors import DeadlineExceeded, ModelError
from ..plan import StreamSplit, stream_split
from ..spec import Tensors
from ._executor import Executor, InferResult, _Request

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
    call = split.call
    args: Tensors = {}
    for b in call.bindings:
        value = env[b.source]
        for adapter in b.adapters:
            value = adapter.apply(value)
        args[b.port] = value
    brick: Any = executor.plan.stages[call.stage].brick
    outputs = tuple(s.name for s in executor.plan.outputs)
    chunks = brick.stream(args, parameters or {})
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
            yield InferResult({n: part[n] for n in outputs}, request.rungs)
    finally:
        await chunks.aclose()


_UNSET = object()


def _split(executor: Executor) -> StreamSplit | None:
    split = getattr(executor, "_stream_split", _UNSET)
    if split is _UNSET:
        split = stream_split(executor.plan)
        executor._stream_split = split  # type: ignore[attr-defined]
    return split  # type: ignore[return-value]
