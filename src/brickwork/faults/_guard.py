"""The guard around one stage: per-call timeout, retries (capped exponential backoff with full
jitter, within the request's deadline and the stage's retry budget), and a circuit breaker.

:class:`GuardedStage` wraps any backend's stage runner (anything with the :class:`Runner`
shape), so the same policy holds on every backend. Only machinery failures (crash, timeout,
overload, upstream error) count against the breaker and are retried by default: a model that
raised on a bad input is reported, not retried, and does not make a healthy model look sick.

Seams for later: a per-attempt deadline (``_attempt``) and the retry decision
(:func:`retryable`, the backoff wait) are the places hedged requests and quorum calls will
plug in.
"""

from __future__ import annotations

import asyncio
import random
import time
from collections.abc import Awaitable, Callable, Mapping
from typing import Any, Protocol

from ..errors import DeadlineExceeded, InvalidInput, Overloaded, RequestError, WorkerCrashed
from ..options import FaultPolicy
from ..spec import Tensors
from ._backoff import Backoff
from ._breaker import CircuitBreaker, Clock, RetryBudget

__all__ = ["GuardedStage", "Runner", "guard", "retryable"]

Sleep = Callable[[float], Awaitable[None]]


class Runner(Protocol):
    """What the guard needs of a stage (the engine's ``StageRunner`` has this shape)."""

    name: str

    async def submit(self, inputs: Tensors, deadline: float | None) -> Tensors: ...

    def stats(self) -> Mapping[str, Any]: ...

    def live_replicas(self) -> int: ...


def retryable(exc: RequestError, retry_on: str) -> bool:
    """May the policy run a failed call again? Never an invalid input or a poison request."""
    if isinstance(exc, InvalidInput) or (isinstance(exc, WorkerCrashed) and exc.poison):
        return False  # a poison request has taken down two workers already
    return exc.is_machinery or retry_on == "any"


class GuardedStage:
    """A stage runner with its fault policy applied: per-call timeout, retries within the
    budget after a jittered backoff, circuit breaker. Implements the runner shape itself."""

    def __init__(self, inner: Runner, policy: FaultPolicy, *, clock: Clock = time.monotonic,
                 sleep: Sleep = asyncio.sleep, rand: Callable[[], float] = random.random) -> None:
        self.inner = inner
        self.name = inner.name
        self.policy = policy
        self.clock = clock
        self.sleep = sleep
        self.rand = rand
        self.breaker = CircuitBreaker(policy.breaker, clock=clock, name=self.name) if policy.breaker else None
        self.budget = RetryBudget(policy.retry_budget)
        self.backoff = (Backoff(policy.retry_backoff_s, policy.retry_backoff_max_s)
                        if policy.retry_backoff_s is not None else None)
        self.retries = 0
        self.retries_denied = 0
        self.rejected = 0
        self.timeouts = 0
        self.backoff_s = 0.0  # total time waited before retries

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
                if attempt >= self.policy.retries or not retryable(exc, self.policy.retry_on):
                    raise
                wait = self.backoff.delay_s(attempt, self.rand) if self.backoff is not None else 0.0
                if deadline is not None and time.monotonic() + wait >= deadline:
                    raise  # no time left for another attempt
                if not self.budget.withdraw():
                    self.retries_denied += 1
                    raise
                attempt += 1
                self.retries += 1
                if wait > 0:
                    self.backoff_s += wait
                    await self.sleep(wait)
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
                    "retries_denied": self.retries_denied, "retry_backoff_s": round(self.backoff_s, 6),
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


def guard(runner: Any, policy: FaultPolicy) -> Any:
    """The runner with ``policy`` applied; a stage with the default policy runs bare (nothing
    is added to its hot path). The default policy's retries are 0 and it has no timeout or
    breaker, so the guard would only count."""
    if policy.timeout_s is None and policy.retries == 0 and policy.breaker is None:
        return runner
    return GuardedStage(runner, policy)
