"""Autoscaling a stage's replicas between ``min`` and ``max`` from its measured load.

The rule (:class:`~brickwork.options.Autoscale` documents the fields): load = batches waiting
(queued items / max_batch_size) + batches in flight; wanted = ceil(load / target_batches),
clamped to [min, max]. Up when wanted stayed above the current count for ``up_after_s``; down,
one idle replica at a time, when it stayed below for ``down_after_s``. The decision is a pure
function of the samples and an injectable clock, so it is unit-tested without sleeping; the
loop around it adds replicas through the backend's factory (a thread, a process, a Ray actor)
and removes the newest idle one.
"""

from __future__ import annotations

import asyncio
import logging
import math
import time
from collections.abc import Callable
from typing import Any

from ..options import Autoscale
from ._replicas import Replica
from ._stage import Stage

__all__ = ["Autoscaler", "ScaleDecision"]

log = logging.getLogger("brickwork.engine")


class ScaleDecision:
    """The hysteresis: remembers since when the wanted count has been above or below."""

    def __init__(self, policy: Autoscale) -> None:
        self.policy = policy
        self._above_since: float | None = None
        self._below_since: float | None = None

    def wanted(self, waiting_items: int, max_batch_size: int, inflight_batches: int) -> int:
        p = self.policy
        load = waiting_items / max(max_batch_size, 1) + inflight_batches
        return min(max(math.ceil(load / p.target_batches), p.min), p.max)

    def decide(self, now: float, current: int, wanted: int) -> int:
        """The replica count to move to now (``current`` when nothing changes yet)."""
        if wanted > current:
            self._below_since = None
            if self._above_since is None:
                self._above_since = now
            if now - self._above_since >= self.policy.up_after_s:
                self._above_since = None
                return wanted
        elif wanted < current:
            self._above_since = None
            if self._below_since is None:
                self._below_since = now
            if now - self._below_since >= self.policy.down_after_s:
                self._below_since = now  # one step down, then wait out down_after_s again
                return current - 1
        else:
            self._above_since = self._below_since = None
        return current


class Autoscaler:
    """Runs :class:`ScaleDecision` on a stage every ``interval_s``."""

    def __init__(self, stage: Stage, policy: Autoscale, make: Callable[[int], Replica], *,
                 clock: Callable[[], float] = time.monotonic) -> None:
        self.stage = stage
        self.policy = policy
        self.make = make
        self.clock = clock
        self.decision = ScaleDecision(policy)
        self.scaled_up = 0
        self.scaled_down = 0
        self._task: asyncio.Task[None] | None = None
        self._next_index = len(stage.replicas)

    def start(self) -> None:
        self._task = asyncio.ensure_future(self._loop())

    async def stop(self) -> None:
        if self._task is not None:
            self._task.cancel()
            await asyncio.gather(self._task, return_exceptions=True)

    def info(self) -> dict[str, Any]:
        return {"min": self.policy.min, "max": self.policy.max, "scaled_up": self.scaled_up,
                "scaled_down": self.scaled_down}

    async def _loop(self) -> None:
        while True:
            await asyncio.sleep(self.policy.interval_s)
            try:
                await self.step()
            except asyncio.CancelledError:
                raise
            except Exception:
                log.exception("stage %r: autoscaling step failed", self.stage.name)

    async def step(self) -> None:
        stage = self.stage
        current = len(stage.replicas)
        wanted = self.decision.wanted(stage.queue.rows, stage.max_batch_size,
                                      sum(r.inflight for r in stage.replicas))
        target = self.decision.decide(self.clock(), current, wanted)
        if target > current:
            await self._add(target - current)
        elif target < current:
            replica = stage.remove_idle_replica()
            if replica is not None:
                self.scaled_down += 1
                log.info("stage %r: scaled down to %d replicas", stage.name, len(stage.replicas))
                await replica.stop()

    async def _add(self, n: int) -> None:
        new = []
        for _ in range(n):
            new.append(self.make(self._next_index))
            self._next_index += 1
        started = await asyncio.gather(*(r.start() for r in new), return_exceptions=True)
        for replica, outcome in zip(new, started, strict=True):
            if isinstance(outcome, BaseException):
                log.warning("stage %r: a new replica failed to start: %s", self.stage.name, outcome)
                await replica.stop()
                continue
            self.stage.add_replica(replica)
            self.scaled_up += 1
        log.info("stage %r: scaled up to %d replicas", self.stage.name, len(self.stage.replicas))
