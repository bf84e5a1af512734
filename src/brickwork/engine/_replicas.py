"""Where a stage's batches run: the ``Replica`` seam and the in-process replicas.

A replica takes the requests of one batch (a list of tensor dicts, merged by the replica so a
process replica can concatenate straight into shared memory) and returns a future of a
:class:`RunResult`. ``inline`` replicas run the brick on the event loop (bricks that do not
block); ``thread`` replicas own one worker thread each (ONNX Runtime and torch release the GIL,
so replicas run truly in parallel). Process replicas live in ``_process.py``; a Ray replica
would be one more class with the same five members, each an actor.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from typing import Any, Protocol

import numpy as np

from .. import tracing as _tracing
from ..errors import DeadlineExceeded, ModelError, RequestError
from ..plan import StagePlan
from ..spec import Tensors

__all__ = ["InlineReplica", "Replica", "RunResult", "ThreadReplica", "call_brick", "merge", "split"]


MERGE_ON_LOOP_BYTES = 1 << 20  # thread replicas merge batches up to this size on the event loop


@dataclass(slots=True)
class RunResult:
    """One batch's outputs, the brick's own compute time, and the bytes copied on the way."""

    outputs: Tensors
    compute_s: float
    copied: dict[str, int] = field(default_factory=dict)


class Replica(Protocol):
    """One copy of a stage's brick. ``inflight``: batches running on it now; the stage sends a
    batch only while ``inflight < capacity`` and ``alive``."""

    index: int
    inflight: int
    capacity: int

    @property
    def alive(self) -> bool: ...

    async def start(self) -> None: ...

    def run(self, parts: Sequence[Tensors], wanted: Callable[[], bool] | None = None,
            ) -> asyncio.Future[RunResult]:
        """Run one batch. ``wanted`` (optional) says, just before compute, whether any caller
        still waits for it; a batch nobody wants is skipped with DeadlineExceeded."""
        ...

    async def stop(self) -> None: ...

    def info(self) -> dict[str, Any]: ...


def call_brick(stage: StagePlan, inputs: Tensors) -> Tensors:
    """Call a stage's brick, translating anything it raises into a RequestError."""
    try:
        return stage.brick(inputs)
    except RequestError:
        raise
    except Exception as exc:
        raise ModelError(f"brick {stage.name!r} raised {type(exc).__name__}: {exc}") from exc


def _nbytes(a: np.ndarray) -> int:
    return int(a.nbytes)  # object arrays: the pointers copied, not the strings they point to


def merge(parts: Sequence[Tensors]) -> tuple[Tensors, int]:
    """Concatenate requests along axis 0; returns the batch and the bytes copied (0 for one
    request, which is passed through untouched)."""
    if len(parts) == 1:
        return dict(parts[0]), 0
    out: Tensors = {}
    copied = 0
    for name in parts[0]:
        out[name] = np.concatenate([p[name] for p in parts], axis=0)
        copied += _nbytes(out[name])
    return out, copied


def split(outputs: Tensors, rows: Sequence[int], stage: str) -> list[Tensors]:
    """Cut a batch's outputs back into one dict per request (views, no copy)."""
    if len(rows) == 1:
        return [outputs]
    total = sum(rows)
    for name, value in outputs.items():
        if value.ndim == 0 or value.shape[0] != total:
            got = "a scalar" if value.ndim == 0 else f"{value.shape[0]} rows"
            raise ModelError(
                f"brick {stage!r} returned {got} of {name!r} for a batch of {total} items; a brick "
                "whose output count differs from its input's must set rowwise=False"
            )
    out: list[Tensors] = []
    start = 0
    for n in rows:
        out.append({name: value[start:start + n] for name, value in outputs.items()})
        start += n
    return out


def _timed_call(stage: StagePlan, parts: Sequence[Tensors],
                wanted: Callable[[], bool] | None = None) -> RunResult:
    inputs, copied = merge(parts)
    return _run_merged(stage, inputs, copied, wanted)


def _run_merged(stage: StagePlan, inputs: Tensors, copied: int,
                wanted: Callable[[], bool] | None = None) -> RunResult:
    if wanted is not None and not wanted():
        raise DeadlineExceeded(f"stage {stage.name!r}: every request of the batch expired before compute")
    t0 = time.perf_counter()
    out = call_brick(stage, inputs)
    return RunResult(out, time.perf_counter() - t0, {"merge": copied} if copied else {})


def load_local(stage: StagePlan) -> None:
    """Load and warm the stage's brick in this process, on the stage's device."""
    brick = stage.brick
    try:
        brick.device = stage.options.device  # type: ignore[attr-defined]
    except AttributeError:  # a read-only attribute on a third-party brick
        pass
    brick.load()
    brick.warmup()


class InlineReplica:
    """Runs the brick on the event loop: for bricks that do not block (plain Python glue)."""

    capacity = 1

    def __init__(self, stage: StagePlan, index: int = 0) -> None:
        self.stage = stage
        self.index = index
        self.inflight = 0
        self.batches = 0

    @property
    def alive(self) -> bool:
        return True

    async def start(self) -> None:
        load_local(self.stage)

    def run_now(self, parts: Sequence[Tensors]) -> RunResult:
        self.batches += 1
        return _timed_call(self.stage, parts)

    def run(self, parts: Sequence[Tensors], wanted: Callable[[], bool] | None = None,
            ) -> asyncio.Future[RunResult]:
        fut: asyncio.Future[RunResult] = asyncio.get_running_loop().create_future()
        try:
            fut.set_result(self.run_now(parts))
        except Exception as exc:
            fut.set_exception(exc)
        return fut

    async def stop(self) -> None:
        self.stage.brick.close()

    def info(self) -> dict[str, Any]:
        return {"index": self.index, "kind": "inline", "alive": True, "batches": self.batches}


class ThreadReplica:
    """Owns one worker thread; replicas of a stage share the one loaded brick (ONNX Runtime
    sessions and torch modules in eval mode are safe to call from several threads).
    ``capacity`` 2: while one batch runs, one *full* batch may wait in the thread's own queue,
    so the brick starts it without a round trip through the event loop."""

    capacity = 2

    def __init__(self, stage: StagePlan, index: int = 0, *, load: bool = True) -> None:
        self.stage = stage
        self.index = index
        self.inflight = 0
        self.batches = 0
        self._load = load
        self._pool = ThreadPoolExecutor(1, thread_name_prefix=f"bw-{stage.name}-{index}")

    @property
    def alive(self) -> bool:
        return True

    async def start(self) -> None:
        if self._load:
            await asyncio.get_running_loop().run_in_executor(self._pool, load_local, self.stage)

    def run(self, parts: Sequence[Tensors], wanted: Callable[[], bool] | None = None,
            ) -> asyncio.Future[RunResult]:
        self.batches += 1
        loop = asyncio.get_running_loop()
        if _tracing.TRACER is not None:  # the worker thread runs in the batch span's context
            return loop.run_in_executor(self._pool, _tracing.in_context(_timed_call), self.stage, parts, wanted)
        if len(parts) > 1 and len(parts) * sum(v.nbytes for v in parts[0].values()) > MERGE_ON_LOOP_BYTES:
            return loop.run_in_executor(self._pool, _timed_call, self.stage, parts, wanted)
        # A small batch is merged here, on the event loop, not on the worker thread: numpy lets
        # go of the GIL while it copies, and getting it back on the worker meant waiting for the
        # busy loop to go idle (0.75 ms a batch of 32 digits images measured, for a 25 us copy:
        # thread-worker throughput 50 -> 84 % of raw ORT). The brick's call then gives the GIL
        # up once, for the compute. A big batch is still merged on the worker, where the copy
        # does not stall the loop.
        inputs, copied = merge(parts)
        return loop.run_in_executor(self._pool, _run_merged, self.stage, inputs, copied, wanted)

    async def stop(self) -> None:
        self._pool.shutdown(wait=False, cancel_futures=True)
        if self._load:
            self.stage.brick.close()

    def info(self) -> dict[str, Any]:
        return {"index": self.index, "kind": "thread", "alive": True, "batches": self.batches}
