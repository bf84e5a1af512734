"""Fallback ladders: which failures move a request down a rung, how rungs are labelled, and
where the ladders of a plan are. The executor climbs them (they span stages); the rules live
here so that the guard, the ladders and, later, hedging and quorum share one notion of "the
machinery failed"."""

from __future__ import annotations

from typing import Literal

from .. import plan as p
from ..errors import InvalidInput, RequestError

__all__ = ["DEFAULT_RUNG", "ladders", "moves_down", "primaries"]

DEFAULT_RUNG = "default"  # the label of a ladder's static answer


def moves_down(exc: RequestError, on: Literal["machinery", "any"] | str) -> bool:
    """Does ``exc`` move a ladder to its next rung? ``on="machinery"``: crashes, timeouts,
    overload, open circuits, upstream errors; ``on="any"``: also the model's own errors.
    An invalid input never does (every rung would refuse it the same way)."""
    if on == "any":
        return not isinstance(exc, InvalidInput)
    return exc.is_machinery


def ladders(step: p.PlanStep) -> list[p.Ladder]:
    """Every fallback ladder in a plan tree, outermost first."""
    found: list[p.Ladder] = []
    if isinstance(step, p.Ladder):
        found.append(step)
        for _, s in step.rungs:
            found += ladders(s)
    elif isinstance(step, p.Seq | p.Par):
        for s in step.steps:
            found += ladders(s)
    elif isinstance(step, p.Route):
        for _, s in step.cases:
            found += ladders(s)
        if step.default is not None:
            found += ladders(step.default)
    elif isinstance(step, p.Vote):
        for s in step.members:
            found += ladders(s)
    elif isinstance(step, p.Scope):
        found += ladders(step.step)
    return found


def primaries(root: p.PlanStep) -> dict[str, str]:
    """Per ladder name, the label of its primary rung (an answer from any other is degraded)."""
    return {lad.name: lad.rungs[0][0] for lad in ladders(root)}
