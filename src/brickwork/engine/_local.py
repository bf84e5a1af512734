"""The local backend: every stage in this process, on the event loop (``inline``) or on a
worker thread per replica (``thread``)."""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Mapping
from concurrent.futures import ThreadPoolExecutor
from typing import Any

from ..errors import DeadlineExceeded, ModelError, RequestError
from ..graph._plan import Plan, StagePlan
from ..spec import Tensors

__all__ = ["LocalBackend", "call_brick", "warm_up"]

log = logging.getLogger("brickwork.engine")


def call_brick(stage: StagePlan, inputs: Tensors) -> Tensors:
    """Call a stage's brick, translating anything it raises into a RequestError."""
    try:
        return stage.brick(inputs)
    except RequestError:
        raise
    except Exception as exc:
        raise ModelError(f"brick {stage.name!r} raised {type(exc).__name__}: {exc}") from exc


def warm_up(stage: StagePlan) -> str | None:
    """Run the brick's warm-up. A brick that rejects the generated sample (zeros, empty
    strings) still serves: the failure is logged and returned, not raised. Load failures,
    by contrast, are fatal (they happen in ``load()``)."""
    try:
        stage.brick.warmup()
    except Exception as exc:  # noqa: BLE001 - any failure of the sample call is reported
        message = f"{type(exc).__name__}: {exc}"
        log.warning("warm-up of stage %r failed (it will still serve): %s", stage.name, message)
        return message
    return None


class DirectStage:
    """One call of the brick per request, no batching across requests."""

    def __init__(self, stage: StagePlan) -> None:
        self.name = stage.name
        self.stage = stage
        self._pool = (
            ThreadPoolExecutor(stage.options.replicas, thread_name_prefix=f"bw-{stage.name}")
            if stage.worker != "inline" else None
        )
        self._calls = 0
        self._busy_s = 0.0

    async def submit(self, inputs: Tensors, deadline: float | None) -> Tensors:
        start = time.perf_counter()
        timeout = self.stage.policy.timeout_s
        if deadline is not None:
            left = deadline - time.monotonic()
            if left <= 0:
                raise DeadlineExceeded(f"deadline passed before stage {self.name!r}")
            timeout = left if timeout is None else min(timeout, left)
        try:
            if self._pool is None:
                return call_brick(self.stage, inputs)
            fut = asyncio.get_running_loop().run_in_executor(self._pool, call_brick, self.stage, inputs)
            try:
                return await asyncio.wait_for(fut, timeout)
            except TimeoutError:
                raise DeadlineExceeded(f"stage {self.name!r} took longer than {timeout:.3f} s") from None
        finally:
            self._calls += 1
            self._busy_s += time.perf_counter() - start

    def stats(self) -> Mapping[str, Any]:
        return {"calls": self._calls, "busy_s": self._busy_s}

    def live_replicas(self) -> int:
        return self.stage.options.replicas

    def close(self) -> None:
        if self._pool is not None:
            self._pool.shutdown(wait=False, cancel_futures=True)


class LocalBackend:
    name = "local"

    def __init__(self) -> None:
        self._stages: dict[str, DirectStage] = {}

    async def start(self, plan: Plan) -> Mapping[str, DirectStage]:
        for stage in plan.stages.values():
            stage.brick.load()
            warm_up(stage)
            self._stages[stage.name] = DirectStage(stage)
        return self._stages

    async def stop(self) -> None:
        for stage in self._stages.values():
            stage.close()
        self._stages.clear()
