"""The user's picture: nodes and the combinators that connect them.

Tensors are wired by name. Every step reads the named tensors it needs from what the pipeline
inputs and earlier steps produced, and publishes its outputs under their names; ``rename``
maps a port to a different tensor name where two bricks disagree.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field, replace
from typing import TYPE_CHECKING, Any, Literal

from ..bricks import Brick
from ..errors import GraphError
from ..options import StageOptions

if TYPE_CHECKING:
    from ..pipeline import Pipeline

__all__ = [
    "Ensemble",
    "Fallback",
    "Graph",
    "Node",
    "Parallel",
    "Sequence_",
    "Step",
    "Switch",
]


class Step:
    """Anything that can be placed in a graph."""

    def __rshift__(self, other: Step) -> Sequence_:
        if not isinstance(other, Step):
            raise GraphError(f"cannot connect {self!r} >> {other!r}: right side is not a brick or graph")
        left = self.steps if isinstance(self, Sequence_) else (self,)
        right = other.steps if isinstance(other, Sequence_) else (other,)
        return Sequence_((*left, *right))

    def fallback(
        self,
        *rungs: Step,
        default: Mapping[str, Any] | None = None,
        on: Literal["machinery", "any"] = "machinery",
        name: str | None = None,
    ) -> Fallback:
        """Try this step; when it fails (by default: crash, timeout, overload, open circuit,
        upstream error) try each rung in turn, then answer ``default`` if given."""
        return Fallback(self, tuple(rungs), default=dict(default) if default else None, on=on,
                        name=name)

    def compile(self, *, batching: Any = None, backend: Any = "local",
                name: str | None = None) -> Pipeline:
        """Type-check the graph and return a runnable :class:`~brickwork.Pipeline`.
        ``batching`` is the default :class:`~brickwork.Batching` for stages that set none."""
        from ..pipeline import Pipeline
        from ._compile import compile_plan

        graph = self if isinstance(self, Graph) else Graph(self, name or "pipeline")
        if name and graph.name != name:
            graph = replace(graph, name=name)
        return Pipeline(compile_plan(graph, batching=batching), backend=backend)


@dataclass(frozen=True, eq=False)
class Node(Step):
    """One brick placed in a graph, with its port renames and stage options."""

    brick: Brick
    name: str
    inputs: Mapping[str, str] = field(default_factory=dict)  # port -> tensor read
    outputs: Mapping[str, str] = field(default_factory=dict)  # port -> tensor published
    options: StageOptions = field(default_factory=StageOptions)

    def rename(
        self, *, inputs: Mapping[str, str] | None = None, outputs: Mapping[str, str] | None = None
    ) -> Node:
        """``inputs={"port": "tensor"}`` reads port from another tensor name;
        ``outputs={"port": "tensor"}`` publishes a port under another name."""
        sig = self.brick.signature
        for port in inputs or {}:
            if port not in sig.input_names:
                raise GraphError(f"brick {self.name!r} has no input port {port!r}; ports are {list(sig.input_names)}")
        for port in outputs or {}:
            if port not in sig.output_names:
                raise GraphError(f"brick {self.name!r} has no output port {port!r}; ports are {list(sig.output_names)}")
        return replace(self, inputs={**self.inputs, **(inputs or {})},
                       outputs={**self.outputs, **(outputs or {})})

    def with_options(self, **options: Any) -> Node:
        """Stage options: replicas, batching, worker, device, timeout_s, retries, breaker…"""
        return replace(self, options=self.options.updated(**options))

    def reads(self, port: str) -> str:
        return self.inputs.get(port, port)

    def publishes(self, port: str) -> str:
        return self.outputs.get(port, port)

    def __repr__(self) -> str:
        return f"Node({self.name!r}, {self.brick.signature})"


@dataclass(frozen=True, eq=False)
class Sequence_(Step):
    """``a >> b >> c``: each step sees everything produced before it."""

    steps: tuple[Step, ...]


@dataclass(frozen=True, eq=False)
class Parallel(Step):
    """Fan-out: every branch sees the same tensors and runs concurrently; their outputs merge
    by name (two branches publishing one name is an error)."""

    branches: tuple[Step, ...]


@dataclass(frozen=True, eq=False)
class Switch(Step):
    """Route each *item* of the batch to the branch whose key equals the item's value of tensor
    ``on``; items matching no key go to ``default`` (or fail with InvalidInput). Branches
    must publish the same outputs; the batch is reassembled in the original order.

    ``each=True`` (built by :func:`group`; no cases): the items are grouped by their value of
    ``on`` and ``default`` runs once per distinct value, on that value's items only."""

    on: str
    cases: Mapping[Any, Step]
    default: Step | None = None
    name: str | None = None
    each: bool = False


@dataclass(frozen=True, eq=False)
class Ensemble(Step):
    """Members run on the same inputs concurrently; ``combiner`` merges their ``on`` tensors
    into ``output``: "majority" (labels), "weighted" (labels, with ``weights``) or "mean"
    (probabilities; also publishes ``label`` = argmax when ``label`` is set).

    A *deadline ensemble* (``k`` and/or ``deadline_s`` set) answers as soon as ``k`` members
    have answered, or at ``deadline_s`` with whoever has (at least ``min_members``); the rest
    are cancelled and counted, and ``result.members`` names who answered."""

    members: tuple[Step, ...]
    combiner: Literal["majority", "weighted", "mean"]
    on: str
    output: str
    weights: tuple[float, ...] | None = None
    label: str | None = None
    name: str | None = None
    k: int | None = None
    deadline_s: float | None = None
    min_members: int | None = None


@dataclass(frozen=True, eq=False)
class Fallback(Step):
    """A ladder: primary, then each rung, then the static ``default`` answer."""

    primary: Step
    rungs: tuple[Step, ...]
    default: dict[str, Any] | None = None
    on: Literal["machinery", "any"] = "machinery"
    name: str | None = None


@dataclass(frozen=True, eq=False)
class Graph(Step):
    """A named graph: the unit compile() takes, and a step usable inside another graph.

    ``outputs`` picks which tensors it returns (default: what its last step publishes);
    ``inputs`` declares its input specs (default: inferred from the bricks that read them).
    Inside another graph only its outputs are visible.
    """

    root: Step
    name: str = "pipeline"
    outputs: tuple[str, ...] | None = None
    inputs: tuple[Any, ...] | None = None  # TensorSpec


def parallel(*branches: Step) -> Parallel:
    if len(branches) < 2:
        raise GraphError(f"parallel() needs at least two branches, got {len(branches)}")
    return Parallel(tuple(branches))


def switch(on: str, cases: Mapping[Any, Step], *, default: Step | None = None,
           name: str | None = None) -> Switch:
    if not cases:
        raise GraphError("switch() needs at least one case")
    return Switch(on, dict(cases), default, name)


def group(on: str, step: Step, *, name: str | None = None) -> Switch:
    """Run ``step`` once per distinct value of tensor ``on``, each time on the items holding
    that value (concurrently), and reassemble the batch in order. Each group reaches the
    stages as its own request, so groups of different pipeline calls that share a value (and
    so a shape) are batched together: bucketing by a per-item size, such as a padded width."""
    return Switch(on, {}, step, name, each=True)


def ensemble(
    members: Sequence[Step],
    *,
    combiner: Literal["majority", "weighted", "mean"] = "majority",
    on: str | None = None,
    output: str | None = None,
    weights: Sequence[float] | None = None,
    label: str | None = None,
    name: str | None = None,
    k: int | None = None,
    deadline_s: float | None = None,
    min_members: int | None = None,
) -> Ensemble:
    """Members run on the same inputs; ``combiner`` merges their ``on`` tensors.

    ``k`` (count, default None = all): answer as soon as k members have answered.
    ``deadline_s`` (seconds, default None = no deadline): answer then with whoever has answered.
    ``min_members`` (count, default 1; only with k or deadline_s): fewer answers than this by
    the deadline is DeadlineExceeded (504), which a fallback ladder around the ensemble catches.
    """
    if len(members) < 2:
        raise GraphError(f"ensemble() needs at least two members, got {len(members)}")
    if combiner not in ("majority", "weighted", "mean"):
        raise GraphError(f"unknown combiner {combiner!r}; use 'majority', 'weighted' or 'mean'")
    if combiner == "weighted" and (weights is None or len(weights) != len(members)):
        raise GraphError(f"combiner 'weighted' needs one weight per member ({len(members)})")
    n = len(members)
    if k is not None and (isinstance(k, bool) or not isinstance(k, int) or not 1 <= k <= n):
        raise GraphError(f"ensemble k={k!r} must be a count from 1 to the {n} members")
    if deadline_s is not None and (isinstance(deadline_s, bool)
                                   or not isinstance(deadline_s, int | float) or not deadline_s > 0):
        raise GraphError(f"ensemble deadline_s={deadline_s!r} must be seconds > 0, e.g. 0.03")
    if min_members is not None:
        if k is None and deadline_s is None:
            raise GraphError("ensemble min_members needs k or deadline_s (a plain ensemble waits for all)")
        top = k or n
        if isinstance(min_members, bool) or not isinstance(min_members, int) or not 1 <= min_members <= top:
            raise GraphError(f"ensemble min_members={min_members!r} must be a count from 1 to k={top}")
    on = on or ("probabilities" if combiner == "mean" else "label")
    return Ensemble(tuple(members), combiner, on, output or on,
                    tuple(weights) if weights is not None else None, label, name,
                    k, float(deadline_s) if deadline_s is not None else None, min_members)


def fallback(primary: Step, *rungs: Step, default: Mapping[str, Any] | None = None,
             on: Literal["machinery", "any"] = "machinery", name: str | None = None) -> Fallback:
    return primary.fallback(*rungs, default=default, on=on, name=name)


def graph(root: Step, *, name: str = "pipeline", outputs: Sequence[str] | None = None,
          inputs: Sequence[Any] | None = None) -> Graph:
    return Graph(root, name, tuple(outputs) if outputs else None,
                 tuple(inputs) if inputs else None)
