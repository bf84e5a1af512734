"""Fault policy around a stage: timeouts, retries within a budget, and a circuit breaker.

:class:`GuardedStage` wraps any backend's :class:`~brickwork.engine.StageRunner`, so the same
policy holds on every backend. Fallback ladders live in the executor (they span stages).

Only machinery failures (crash, timeout, overload, upstream error) count against the breaker
and are retried by default: a model that raised on a bad input is reported, not retried, and
does not make a healthy model look sick.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections import deque
from collections.abc import Callable, Mapping
from typing import Any, Literal

from .engine import StageRunner
from .errors import DeadlineExceeded, InvalidInput, Overloaded, RequestError, WorkerCrashed
from .options import Breaker, FaultPolicy
from .spec import Tensors

__all__ = ["CircuitBreaker", "GuardedStage", "RetryBudget", "retryable"]

log = logging.getLogger("brickwork.engine")

Clock = Callable[[], float]
State = Literal["closed", "open", "half_open"]


class CircuitBreaker:
    """closed → (``failures`` consecutive failures, or failure ratio over the last ``window``
    calls ≥ ``failure_ratio``) → open → (after ``reset_after_s``) → half-open, letting
    ``half_open_probes`` calls through → closed when they all succeed, open again on a failure."""

    def __init__(self, config: Breaker, *, clock: Clock = time.monotonic, name: str = "?") -> None:
        self.config = config
        self.name = name
        self.clock = clock
        self.state: State = "closed"
        self.opened_at = 0.0
        self.consecutive = 0
        self.window: deque[bool] = deque(maxlen=config.window)
        self.probes_out = 0
        self.probes_ok = 0
        self.opened_count = 0

    def allow(self) -> bool:
        """May a call go through now? (A half-open breaker admits a limited number of probes.)"""
        if self.state == "open":
            if self.clock() - self.opened_at < self.config.reset_after_s:
                return False
            self.state, self.probes_out, self.probes_ok = "half_open", 0, 0
            log.info("circuit breaker of stage %r: open -> half_open (probing)", self.name)
        if self.state == "half_open":
            if self.probes_out >= self.config.half_open_probes:
                return False
            self.probes_out += 1
        return True

    def retry_after_s(self) -> float:
        if self.state != "open":
            return 0.0
        return max(0.0, self.config.reset_after_s - (self.clock() - self.opened_at))

    def record(self, ok: bool) -> None:
        if self.state == "half_open":
            if not ok:
                self._open()
                return
            self.probes_ok += 1
            if self.probes_ok >= self.config.half_open_probes:
                self.state = "closed"
                log.info("circuit breaker of stage %r: half_open -> closed", self.name)
                self.consecutive = 0
                self.window.clear()
            return
        self.window.append(ok)
        self.consecutive = 0 if ok else self.consecutive + 1
        if self.state == "closed" and (self.consecutive >= self.config.failures or self._ratio_tripped()):
            self._open()

    def _ratio_tripped(self) -> bool:
        ratio = self.config.failure_ratio
        if ratio is None or len(self.window) < self.window.maxlen:  # type: ignore[operator]
            return False
        return self.window.count(False) / len(self.window) >= ratio

    def _open(self) -> None:
        log.warning("circuit breaker of stage %r: %s -> open for %g s", self.name, self.state,
                    self.config.reset_after_s)
        self.state = "open"
        self.opened_at = self.clock()
        self.opened_count += 1


class RetryBudget:
    """Retries may add at most ``ratio`` of the calls (Finagle's retry budget): every call
    deposits ``ratio`` tokens, every retry spends one; a small reserve (``min_retries``) lets a
    quiet stage retry at all. Tokens are capped so a long quiet spell cannot store a storm."""

    def __init__(self, ratio: float, *, min_retries: float = 3.0, cap: float = 100.0) -> None:
        self.ratio = ratio
        self.tokens = min_retries
        self.cap = max(cap, min_retries)

    def deposit(self) -> None:
        self.tokens = min(self.cap, self.tokens + self.ratio)

    def withdraw(self) -> bool:
        if self.tokens >= 1.0:
            self.tokens -= 1.0
            return True
        return False


def retryable(exc: RequestError, retry_on: str) -> bool:
    if isinstance(exc, InvalidInput) or (isinstance(exc, WorkerCrashed) and exc.poison):
        return False  # a poison request has taken down two workers already
    return exc.is_machinery or retry_on == "any"


class GuardedStage:
    """A stage runner with its fault policy applied: per-call timeout, retries within the
    budget, circuit breaker. Implements the StageRunner protocol itself."""

    def __init__(self, inner: StageRunner, policy: FaultPolicy, *, clock: Clock = time.monotonic) -> None:
        self.inner = inner
        self.name = inner.name
        self.policy = policy
        self.clock = clock
        self.breaker = CircuitBreaker(policy.breaker, clock=clock, name=self.name) if policy.breaker else None
        self.budget = RetryBudget(policy.retry_budget)
        self.retries = 0
        self.retries_denied = 0
        self.rejected = 0
        self.timeouts = 0

    async def submit(self, inputs: Tensors, deadline: float | None) -> Tensors:
        attempt = 0
        self.budget.deposit()
        while True:
            if self.breaker is not None and not self.breaker.allow():
                self.rejected += 1
                raise Overloaded(f"circuit breaker of stage {self.name!r} is open",
                                 retry_after_s=max(self.breaker.retry_after_s(), 0.1))
            try:
                out = await self._attempt(inputs, deadline)
            except RequestError as exc:
                if self.breaker is not None:
                    self.breaker.record(not exc.is_machinery)
                if (attempt >= self.policy.retries or not retryable(exc, self.policy.retry_on)
                        or (deadline is not None and time.monotonic() >= deadline)):
                    raise
                if not self.budget.withdraw():
                    self.retries_denied += 1
                    raise
                attempt += 1
                self.retries += 1
                continue
            if self.breaker is not None:
                self.breaker.record(True)
            return out

    async def _attempt(self, inputs: Tensors, deadline: float | None) -> Tensors:
        timeout = self.policy.timeout_s
        if timeout is None:
            return await self.inner.submit(inputs, deadline)
        call_deadline = time.monotonic() + timeout
        if deadline is not None:
            call_deadline = min(call_deadline, deadline)
        try:
            return await asyncio.wait_for(self.inner.submit(inputs, call_deadline), timeout)
        except TimeoutError:
            self.timeouts += 1
            raise DeadlineExceeded(f"stage {self.name!r} did not answer within timeout_s={timeout}") from None

    def stats(self) -> Mapping[str, Any]:
        out = dict(self.inner.stats())
        # "retries" counts every re-run: the engine's own (a crashed worker's batch, a failed
        # batch split item by item) plus the policy's; "policy_retries" the policy's alone
        out.update({"retries": int(out.get("retries", 0)) + self.retries, "policy_retries": self.retries,
                    "retries_denied": self.retries_denied,
                    "timeouts": self.timeouts, "rejected_open_circuit": self.rejected})
        if self.breaker is not None:
            out["breaker"] = {"state": self.breaker.state, "opened": self.breaker.opened_count}
        return out

    def live_replicas(self) -> int:
        return self.inner.live_replicas()

    def available(self) -> bool:
        """Can this stage take a call now (a live replica and a circuit that is not open)?"""
        if self.breaker is not None and self.breaker.state == "open" and self.breaker.retry_after_s() > 0:
            return False
        return self.inner.live_replicas() > 0

    def __getattr__(self, name: str) -> Any:  # close(), and whatever else a backend's runner has
        return getattr(self.inner, name)
