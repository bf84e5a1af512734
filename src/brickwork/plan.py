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
           "StagePlan", "Vote"]


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
