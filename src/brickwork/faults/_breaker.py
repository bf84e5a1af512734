"""A circuit breaker and a retry budget, both driven by an injectable clock."""

from __future__ import annotations

import logging
import time
from collections import deque
from collections.abc import Callable
from typing import Literal

from ..options import Breaker

__all__ = ["CircuitBreaker", "Clock", "RetryBudget"]

log = logging.getLogger("brickwork.faults")

Clock = Callable[[], float]
State = Literal["closed", "open", "half_open"]


class CircuitBreaker:
    """closed → (``failures`` consecutive failures, or failure ratio over the last ``window``
    calls ≥ ``failure_ratio``) → open → (after ``reset_after_s``) → half-open, letting
    ``half_open_probes`` calls through → closed when they all succeed, open again on a failure."""

    def __init__(self, config: Breaker, *, clock: Clock = time.monotonic, name: str = "?") -> None:
        self.config = config
        self.name = name  # the stage's, for the transition log lines
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
        if ratio is None or len(self.window) < self.config.window:
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
