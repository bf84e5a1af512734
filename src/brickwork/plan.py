"""The compiled, validated, immutable form of a graph: the contract between ``graph`` (which
produces it in ``compile()``) and the engine and backends (which run it). Public and stable:
a backend, a front or a tool reads a Plan without touching ``graph`` internals.

A :class:`Plan` holds the stages (one per brick, with resolved options) and a tree of plan
steps the executor interprets per request: ``Call`` a stage, run steps in ``Seq``/``Par``,
``Route`` items, ``Vote``, climb a fallback ``Ladder``, or run a nested graph in a ``Scope``.
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from typing import Any

import numpy as np

from .adapters import Adapter
from .bricks import Brick
from .options import Batching, FaultPolicy, StageOptions
from .spec import Signature, TensorSpec

__all__ = ["Binding", "Call", "Ladder", "Par", "Plan", "PlanStep", "Route", "Scope", "Seq",
           "StagePlan", "StreamSplit", "Vote", "is_streaming", "stream_split"]


@dataclass(frozen=True, slots=True)
class StagePlan:
    name: str
    brick: Brick
    signature: Signature
    options: StageOptions
    batching: Batching  # resolved: the node's, else the pipeline default
    worker: str  # resolved: inline | thread | process | ray

    @property
    def policy(self) -> FaultPolicy:
        return self.options.policy


@dataclass(frozen=True, slots=True)
class Binding:
    port: str
    source: str
    adapters: tuple[Adapter, ...] = ()


@dataclass(frozen=True, slots=True)
class Call:
    stage: str
    bindings: tuple[Binding, ...]
    publish: tuple[tuple[str, str], ...]  # (port, tensor name)


@dataclass(frozen=True, slots=True)
class Seq:
    steps: tuple[PlanStep, ...]


@dataclass(frozen=True, slots=True)
class Par:
    steps: tuple[PlanStep, ...]
    publishes: tuple[tuple[str, ...], ...]  # per branch, the names it contributes


@dataclass(frozen=True, slots=True)
class Route:
    name: str
    on: str
    cases: tuple[tuple[Any, PlanStep], ...]
    default: PlanStep | None
    outputs: tuple[TensorSpec, ...]
    each: bool = False  # group(): ``default`` runs once per distinct value of ``on``


@dataclass(frozen=True, slots=True)
class Vote:
    name: str
    members: tuple[PlanStep, ...]
    combiner: str
    on: str
    output: str
    weights: tuple[float, ...] | None
    label: str | None
    # deadline ensembles (None = off: wait for every member): answer once ``k`` members have
    # answered or at ``deadline_s`` with whoever has; fewer than ``min_members`` -> DeadlineExceeded
    k: int | None = None
    deadline_s: float | None = None
    min_members: int = 1
    labels: tuple[str, ...] = ()  # one per member, for ``result.members``

    @property
    def timed(self) -> bool:
        """True for a deadline ensemble (k and/or deadline_s set): it runs its own path."""
        return self.k is not None or self.deadline_s is not None


@dataclass(frozen=True, slots=True)
class Ladder:
    name: str
    rungs: tuple[tuple[str, PlanStep], ...]  # (label, step); the first is the primary
    default: Mapping[str, np.ndarray] | None  # one item per output, broadcast to the batch
    on: str
    outputs: tuple[TensorSpec, ...]


@dataclass(frozen=True, slots=True)
class Scope:
    name: str
    step: PlanStep
    outputs: tuple[str, ...]


PlanStep = Call | Seq | Par | Route | Vote | Ladder | Scope


@dataclass(frozen=True, slots=True)
class Plan:
    """A validated pipeline: what the backends run. Immutable."""

    name: str
    inputs: tuple[TensorSpec, ...]
    outputs: tuple[TensorSpec, ...]
    stages: Mapping[str, StagePlan]
    root: PlanStep

    @property
    def signature(self) -> Signature:
        return Signature(self.inputs, self.outputs)

    def calls(self) -> Iterator[Call]:
        yield from _calls(self.root)

    @property
    def adapters(self) -> list[tuple[str, Binding]]:
        """Every edge where compile() inserted an adapter: (stage, binding)."""
        return [(c.stage, b) for c in self.calls() for b in c.bindings if b.adapters]

    def describe(self) -> str:
        lines = [f"pipeline {self.name!r}: {self.signature}"]
        for stage in self.stages.values():
            b = stage.batching
            lines.append(
                f"  stage {stage.name}: {stage.signature} worker={stage.worker} "
                f"replicas={stage.options.replicas} max_batch_size={b.max_batch_size}"
            )
        for stage_name, binding in self.adapters:
            for a in binding.adapters:
                lines.append(f"  adapter before {stage_name}.{binding.port}: {a}")
        return "\n".join(lines)


def _calls(step: PlanStep) -> Iterator[Call]:
    if isinstance(step, Call):
        yield step
    elif isinstance(step, Seq | Par):
        for s in step.steps:
            yield from _calls(s)
    elif isinstance(step, Route):
        for _, s in step.cases:
            yield from _calls(s)
        if step.default is not None:
            yield from _calls(step.default)
    elif isinstance(step, Vote):
        for s in step.members:
            yield from _calls(s)
    elif isinstance(step, Ladder):
        for _, s in step.rungs:
            yield from _calls(s)
    elif isinstance(step, Scope):
        yield from _calls(step.step)


# -- streaming ---------------------------------------------------------------------------
@dataclass(frozen=True, slots=True)
class StreamSplit:
    """Where a plan streams: ``prefix`` steps run once per request, ``call`` is the streaming
    stage (its brick's ``stream`` yields chunks), ``suffix`` calls run on every chunk."""

    prefix: tuple[PlanStep, ...]
    call: Call | Ladder  # a Ladder: each rung one brick, tried in turn until one streams
    suffix: tuple[Call, ...]


def is_streaming(brick: object) -> bool:
    """A brick streams when it says so (``streaming = True``) and has ``stream(inputs,
    parameters)``, an async iterator of partial outputs."""
    return bool(getattr(brick, "streaming", False)) and callable(getattr(brick, "stream", None))


def _flat(step: PlanStep) -> list[PlanStep]:
    if isinstance(step, Seq):
        return [s for inner in step.steps for s in _flat(inner)]
    return [step]


def _rung_call(step: PlanStep) -> Call | None:
    flat = _flat(step)
    return flat[0] if len(flat) == 1 and isinstance(flat[0], Call) else None


def stream_split(plan: Plan) -> StreamSplit | None:
    """The plan's streaming shape, None when no stage streams. Raises GraphError for a shape
    that cannot stream. A streaming stage must be a top-level step (or a rung of a top-level
    fallback whose rungs are single bricks: remote model -> local model -> default answer), and
    only plain per-chunk bricks may follow it."""
    from .errors import GraphError

    streaming = [c.stage for c in plan.calls() if is_streaming(plan.stages[c.stage].brick)]
    if not streaming:
        return None
    steps = _flat(plan.root)
    at: int | None = None
    head: Call | Ladder | None = None
    for i, s in enumerate(steps):
        if isinstance(s, Call) and s.stage in streaming:
            at, head = i, s
            break
        if isinstance(s, Ladder):
            calls = [_rung_call(r) for _, r in s.rungs]
            if any(c is not None and c.stage in streaming for c in calls):
                if any(c is None for c in calls):
                    raise GraphError(f"fallback {s.name!r} has a streaming rung; every rung of a streaming "
                                     "fallback must be a single brick")
                at, head = i, s
                break
    covered: set[str] = set()
    if isinstance(head, Ladder):
        covered = {c.stage for c in (_rung_call(r) for _, r in head.rungs) if c is not None}
    elif isinstance(head, Call):
        covered = {head.stage}
    if head is None or set(streaming) - covered:
        if len(set(streaming)) > 1 and head is not None:
            raise GraphError(f"pipeline {plan.name!r} has more than one streaming stage ({streaming}); "
                             "a pipeline streams from one stage (or one fallback of streaming rungs)")
        raise GraphError(f"streaming stage {streaming[0]!r} sits inside a parallel, switch, ensemble, "
                         "fallback or nested graph; a streaming stage must be a top-level step of the "
                         "pipeline (last, or followed only by per-chunk bricks)")
    for stage in covered & set(streaming):
        if plan.stages[stage].worker not in ("inline", "thread"):
            raise GraphError(f"streaming stage {stage!r} asks for worker={plan.stages[stage].worker!r}; a "
                             "streaming brick runs in the serving process (worker: thread), it batches internally")
    assert at is not None
    suffix = steps[at + 1:]
    for s in suffix:
        if not isinstance(s, Call):
            raise GraphError(f"streaming stage {streaming[0]!r} is followed by {type(s).__name__.lower()} "
                             "step; after a streaming stage only plain bricks may follow (each runs "
                             "on every chunk), e.g. llm >> detokenize >> filter")
        if is_streaming(plan.stages[s.stage].brick):
            raise GraphError(f"pipeline {plan.name!r} has more than one streaming stage ({streaming}); "
                             "a pipeline streams from one stage")
        if not getattr(plan.stages[s.stage].brick, "rowwise", True):
            raise GraphError(f"brick {s.stage!r} after streaming stage {streaming[0]!r} is not rowwise "
                             "(it changes the number of items), so it cannot run per chunk")
    return StreamSplit(tuple(steps[:at]), head, tuple(s for s in suffix if isinstance(s, Call)))
