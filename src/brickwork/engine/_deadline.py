"""Deadline ensembles: a ``Vote`` with ``k`` and/or ``deadline_s`` answers as soon as ``k``
members have answered, or at the deadline with whoever has.

Stragglers are cancelled (a thread or process already computing finishes on its own and its
late answer is dropped) and counted. A member that fails is counted and left out, as if late;
an invalid request still fails the request. Fewer answers than ``min_members`` is
``DeadlineExceeded`` (504, machinery: a fallback ladder around the ensemble catches it).

This is the Vote step's own path: the executor calls it only for ``vote.timed`` votes, so the
default path (wait for every member) is unchanged.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Awaitable, Callable
from dataclasses import replace
from typing import Any

from .. import plan as p
from ..errors import DeadlineExceeded, InvalidInput
from ..spec import Tensors
from ._combine import combine

__all__ = ["DeadlineVotes"]

RunStep = Callable[[p.PlanStep, Tensors, Any], Awaitable[None]]


class DeadlineVotes:
    """Runs deadline ensembles and keeps their counts, per ensemble name:
    ``answers`` (requests answered), ``short`` (too few members: DeadlineExceeded),
    ``deadline`` (answers given at the deadline rather than at k), ``stragglers`` (members
    cancelled or dropped), ``failed`` (members that raised) and ``member.<label>`` (answers
    each member contributed)."""

    def __init__(self, root: p.PlanStep) -> None:
        self.counts: dict[str, dict[str, int]] = {v.name: {} for v in _timed_votes(root)}

    def reset(self) -> None:
        for c in self.counts.values():
            c.clear()

    async def run(self, vote: p.Vote, env: Tensors, req: Any, run_step: RunStep) -> tuple[str, ...]:
        """Run ``vote`` into ``env``; return the labels of the members that answered."""
        n = len(vote.members)
        k = vote.k or n
        deadline = time.monotonic() + vote.deadline_s if vote.deadline_s is not None else None
        if req.deadline is not None and (deadline is None or req.deadline < deadline):
            deadline = req.deadline
        envs = [dict(env) for _ in vote.members]
        index: dict[asyncio.Future[None], int] = {
            asyncio.ensure_future(run_step(s, e, req)): i
            for i, (s, e) in enumerate(zip(vote.members, envs, strict=True))
        }
        pending: set[asyncio.Future[None]] = set(index)
        answered: list[int] = []
        failed: list[BaseException] = []
        timed_out = False
        try:
            while pending and len(answered) < k:
                wait_s = None if deadline is None else deadline - time.monotonic()
                if wait_s is not None and wait_s <= 0:
                    timed_out = True
                    break
                done, pending = await asyncio.wait(pending, timeout=wait_s,
                                                   return_when=asyncio.FIRST_COMPLETED)
                for task in done:
                    exc = task.exception()
                    if exc is None:
                        answered.append(index[task])
                    elif isinstance(exc, InvalidInput):
                        raise exc
                    else:
                        failed.append(exc)
        finally:
            for task in pending:
                task.cancel()
        counts = self.counts.setdefault(vote.name, {})
        _add(counts, "stragglers", len(pending))
        _add(counts, "failed", len(failed))
        if len(answered) < vote.min_members:
            _add(counts, "short", 1)
            if not pending and failed:  # everyone finished, too many failed: say why
                raise failed[0]
            late = [vote.labels[index[t]] for t in pending]
            raise DeadlineExceeded(
                f"ensemble {vote.name!r}: {len(answered)} of {n} members answered by the deadline "
                f"({vote.deadline_s}s), min_members is {vote.min_members}; late: {late}")
        answered.sort()  # member order: ties in a vote follow the earliest member, as always
        step = vote
        if vote.weights is not None and len(answered) < n:
            step = replace(vote, weights=tuple(vote.weights[i] for i in answered))
        env.update(combine(step, [envs[i][vote.on] for i in answered]))
        _add(counts, "answers", 1)
        if timed_out:
            _add(counts, "deadline", 1)
        labels = tuple(vote.labels[i] for i in answered)
        for label in labels:
            _add(counts, f"member.{label}", 1)
        return labels


def _add(counts: dict[str, int], key: str, n: int) -> None:
    if n:
        counts[key] = counts.get(key, 0) + n


def _timed_votes(step: p.PlanStep) -> list[p.Vote]:
    found: list[p.Vote] = []
    children: tuple[p.PlanStep, ...] = ()
    if isinstance(step, p.Vote):
        if step.timed:
            found.append(step)
        children = step.members
    elif isinstance(step, p.Seq | p.Par):
        children = step.steps
    elif isinstance(step, p.Route):
        children = tuple(s for _, s in step.cases) + ((step.default,) if step.default else ())
    elif isinstance(step, p.Ladder):
        children = tuple(s for _, s in step.rungs)
    elif isinstance(step, p.Scope):
        children = (step.step,)
    for c in children:
        found += _timed_votes(c)
    return found
