"""Readiness and liveness of a running plan.

*Ready* (``/v2/health/ready``): every stage the plan needs can take a call now (a live
replica, a circuit that is not open), or a fallback rung or default answer covers it.

*Live* (``/v2/health/live``): no stage has been down (no live replica) for longer than its
policy's ``max_down_s``. Supervision respawns dead workers for as long as the server runs; a
stage that stays down past that bound means the process cannot heal itself, and failing
liveness lets an orchestrator restart it.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterable, Mapping
from typing import Any, Protocol

from .. import plan as p

__all__ = ["Available", "Downtime", "down_since", "unlive", "unready"]


class Available(Protocol):
    def live_replicas(self) -> int: ...


class Downtime(Protocol):
    """What liveness reads of a replica: is it up, and since when has it been down."""

    @property
    def alive(self) -> bool: ...

    down_since: float | None


def _available(runner: Any) -> bool:
    available = getattr(runner, "available", None)
    return bool(available()) if available is not None else runner.live_replicas() > 0


def unready(step: p.PlanStep, stages: Mapping[str, Available]) -> list[str]:
    """Why the plan cannot answer now (empty when it can): a required stage with no live
    replica (or an open circuit) that no fallback rung or default answer covers."""
    if isinstance(step, p.Call):
        ok = _available(stages[step.stage])
        return [] if ok else [f"stage {step.stage!r} has no live replica or its circuit is open"]
    if isinstance(step, p.Ladder):
        reasons = []
        for _, rung in step.rungs:
            why = unready(rung, stages)
            if not why:
                return []
            reasons += why
        return [] if step.default is not None else reasons
    children: tuple[p.PlanStep, ...]
    if isinstance(step, p.Seq | p.Par):
        children = step.steps
    elif isinstance(step, p.Vote):
        children = step.members
    elif isinstance(step, p.Route):
        children = tuple(s for _, s in step.cases) + ((step.default,) if step.default else ())
    else:
        assert isinstance(step, p.Scope)
        children = (step.step,)
    return [r for c in children for r in unready(c, stages)]


def down_since(replicas: Iterable[Any]) -> float | None:
    """When a stage went down (its last live replica died; monotonic), or None while any
    replica is alive. Replicas that cannot die (threads, inline) have no ``down_since``."""
    since: float | None = None
    for r in replicas:
        if r.alive:
            return None
        at = getattr(r, "down_since", None)
        if at is None:
            return None  # not alive and not known to be down: starting or stopped
        since = at if since is None else max(since, at)
    return since


def unlive(plan: p.Plan, replicas_of: Callable[[str], Iterable[Any]],
           clock: Callable[[], float] = time.monotonic) -> list[str]:
    """Stages down for longer than their policy's ``max_down_s`` (empty: live)."""
    now = clock()
    reasons = []
    for name, stage in plan.stages.items():
        limit = stage.policy.max_down_s
        if limit is None:
            continue
        since = down_since(replicas_of(name))
        if since is not None and now - since > limit:
            reasons.append(f"stage {name!r} has had no live worker for {now - since:.0f} s "
                           f"(max_down_s={limit:g}); its respawns keep failing")
    return reasons
