"""Capped exponential backoff with full jitter (AWS Architecture Blog, "Exponential Backoff
And Jitter"): the n-th wait is drawn uniformly from ``[0, min(max_s, base_s * 2**n)]``, so
callers that failed together do not come back together."""

from __future__ import annotations

import random
from collections.abc import Callable
from dataclasses import dataclass

__all__ = ["Backoff"]


@dataclass(frozen=True, slots=True)
class Backoff:
    """``base_s``: the first wait's ceiling; doubled per attempt up to ``max_s``.
    ``jitter`` False gives the ceiling itself (for supervision, where nobody else collides)."""

    base_s: float
    max_s: float
    jitter: bool = True

    def ceiling_s(self, attempt: int) -> float:
        """The longest wait before attempt ``attempt`` (0 = the first retry)."""
        return min(self.max_s, self.base_s * 2.0 ** min(attempt, 62))

    def delay_s(self, attempt: int, rand: Callable[[], float] = random.random) -> float:
        ceiling = self.ceiling_s(attempt)
        return ceiling * rand() if self.jitter else ceiling
