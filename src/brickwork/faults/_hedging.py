"""Hedged requests (Dean & Barroso, "The Tail at Scale", 2013): when a call has not answered
after ``hedge_after_s``, send a second copy; the first answer wins and the other is cancelled.

:class:`HedgedStage` wraps a stage runner, like the fault guard does. The copy goes through
the same stage, whose dispatcher hands it to a free replica (the stalled one is busy), and for
a remote brick with several URLs each replica keeps to its own URL, so the copy reaches another
server. ``hedge_after_s="auto"`` hedges at the stage's measured p95 latency (no hedging until
``min_samples`` calls have been measured). A :class:`HedgeBudget` caps the extra load:
hedges may add at most ``hedge_budget`` of the calls (0.1 = 10 %).

A copy that is already computing on a thread or in a process finishes on its own; its answer
is dropped. A copy still queued leaves the queue.
"""

from __future__ import annotations

import asyncio
import time
from collections import deque
from collections.abc import Mapping
from typing import Any

import numpy as np

from ..spec import Tensors

__all__ = ["HedgeBudget", "HedgedStage", "LatencyWindow", "hedged"]


class HedgeBudget:
    """Every call deposits ``ratio`` tokens, every hedge spends one; a small reserve lets a
    quiet stage hedge at all, and a cap stops a quiet spell from storing a storm."""

    def __init__(self, ratio: float, *, reserve: float = 2.0, cap: float = 20.0) -> None:
        self.ratio = ratio
        self.tokens = reserve
        self.cap = max(cap, reserve)

    def deposit(self) -> None:
        self.tokens = min(self.cap, self.tokens + self.ratio)

    def withdraw(self) -> bool:
        if self.tokens >= 1.0 - 1e-9:  # ten deposits of 0.1 make one token
            self.tokens -= 1.0
            return True
        return False


class LatencyWindow:
    """The last ``size`` answer latencies; ``p95()`` is recomputed every ``every`` samples."""

    def __init__(self, *, size: int = 512, every: int = 32, min_samples: int = 20) -> None:
        self.samples: deque[float] = deque(maxlen=size)
        self.every = every
        self.min_samples = min_samples
        self._since = 0
        self._p95: float | None = None

    def add(self, seconds: float) -> None:
        self.samples.append(seconds)
        self._since += 1
        if (self._p95 is None and len(self.samples) >= self.min_samples) or self._since >= self.every:
            self._since = 0
            self._p95 = float(np.percentile(np.fromiter(self.samples, float), 95))

    def p95(self) -> float | None:
        return self._p95 if len(self.samples) >= self.min_samples else None


class HedgedStage:
    """A stage runner that hedges slow calls. Implements the StageRunner protocol."""

    def __init__(self, inner: Any, *, after_s: float | str, budget: float = 0.1,
                 min_samples: int = 20) -> None:
        self.inner = inner
        self.name = inner.name
        self.after_s = after_s
        self.budget = HedgeBudget(budget)
        self.window = LatencyWindow(min_samples=min_samples)
        self.calls = 0
        self.hedges = 0
        self.hedge_wins = 0
        self.hedges_denied = 0

    def delay_s(self) -> float | None:
        """How long a call waits before it is hedged now (None: not hedged)."""
        if self.after_s == "auto":
            return self.window.p95()
        return float(self.after_s)

    async def submit(self, inputs: Tensors, deadline: float | None) -> Tensors:
        self.calls += 1
        self.budget.deposit()
        delay = self.delay_s()
        t0 = time.monotonic()
        first = asyncio.ensure_future(self.inner.submit(inputs, deadline))
        tasks = {first}
        try:
            if delay is not None:
                done, _ = await asyncio.wait(tasks, timeout=delay)
                late = not done and (deadline is None or time.monotonic() < deadline)
                if late and self.budget.withdraw():
                    self.hedges += 1
                    tasks.add(asyncio.ensure_future(self.inner.submit(inputs, deadline)))
                elif late:
                    self.hedges_denied += 1
            error: BaseException | None = None
            while tasks:
                done, tasks = await asyncio.wait(tasks, return_when=asyncio.FIRST_COMPLETED)
                for task in done:
                    exc = task.exception()
                    if exc is None:
                        if task is not first:
                            self.hedge_wins += 1
                        self.window.add(time.monotonic() - t0)
                        return task.result()
                    error = exc
            assert error is not None
            raise error
        finally:
            for task in tasks:
                task.cancel()

    def stats(self) -> Mapping[str, Any]:
        out = dict(self.inner.stats())
        out.update({"hedges": self.hedges, "hedge_wins": self.hedge_wins,
                    "hedges_denied": self.hedges_denied, "hedged_calls": self.calls})
        delay = self.delay_s()
        if delay is not None:
            out["hedge_after_s"] = delay
        return out

    def reset_stats(self) -> None:
        self.calls = self.hedges = self.hedge_wins = self.hedges_denied = 0
        reset = getattr(self.inner, "reset_stats", None)
        if reset is not None:
            reset()

    def live_replicas(self) -> int:
        return int(self.inner.live_replicas())

    def __getattr__(self, name: str) -> Any:  # close(), start(), whatever the runner has
        return getattr(self.inner, name)


def hedged(runner: Any, policy: Any) -> Any:
    """``runner`` wrapped in a :class:`HedgedStage` when ``policy.hedge_after_s`` is set."""
    after = getattr(policy, "hedge_after_s", None)
    if after is None:
        return runner
    return HedgedStage(runner, after_s=after, budget=policy.hedge_budget)

