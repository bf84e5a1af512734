"""Faults: what a stage does when something breaks, in one place.

* **policy** — :class:`FaultPolicy` and :class:`Breaker` (defined in :mod:`brickwork.options`
  with the other stage options, re-exported here);
* **guard** — :class:`GuardedStage`: per-call timeout, retries after a capped, fully jittered
  exponential :class:`Backoff` within the request's deadline and a :class:`RetryBudget`, and a
  :class:`CircuitBreaker`;
* **ladders** — which failures move a request down a fallback rung (:func:`moves_down`), rung
  labels, where a plan's ladders are;
* **readiness** — :func:`unready` (``/v2/health/ready``) and :func:`unlive` (``/v2/health/live``,
  a stage down past ``max_down_s``);
* **supervision** — :class:`Supervisor`: watchdog, heartbeat, kill by pid, reaping off the
  loop, respawn with backoff for as long as the server runs.

Layering: this package sits beside the engine's worker pools and below the executor; it never
imports the engine. What it needs of a stage or a worker it states as Protocols
(:class:`Runner`, :class:`Supervised`). Request deadlines, quorum and hedged calls will live
here too: the guard's per-attempt call and retry decision are their seams.
"""

from ..options import Breaker, FaultPolicy
from ._backoff import Backoff
from ._breaker import CircuitBreaker, RetryBudget
from ._guard import GuardedStage, Runner, guard, retryable
from ._hedging import HedgeBudget, HedgedStage, LatencyWindow, hedged
from ._ladder import DEFAULT_RUNG, ladders, moves_down, primaries
from ._readiness import down_since, unlive, unready
from ._supervisor import RESPAWN_BACKOFF, Supervised, SupervisedFigures, Supervisor, kill_and_reap

__all__ = ["DEFAULT_RUNG", "RESPAWN_BACKOFF", "Backoff", "Breaker", "CircuitBreaker", "FaultPolicy",
           "GuardedStage", "HedgeBudget", "HedgedStage", "LatencyWindow", "RetryBudget", "Runner",
           "Supervised", "SupervisedFigures", "Supervisor", "down_since", "guard", "hedged", "kill_and_reap", "ladders",
           "moves_down", "primaries", "retryable", "unlive", "unready"]
