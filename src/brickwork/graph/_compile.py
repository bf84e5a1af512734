"""compile(): type-check every edge of a graph, insert safe adapters, refuse the rest.

The walk carries the tensors visible at each point (``Scope``): their specs and who produced
them, so that every refusal can name both ends, both specs and the fix.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

import numpy as np

from .. import plan as p
from ..adapters import fit
from ..errors import GraphError, InterfaceMismatch
from ..options import Batching
from ..spec import TensorSpec, to_numpy_dtype

if TYPE_CHECKING:  # the walk dispatches on the step's class name, so _steps (which calls
    # compile_plan from Step.compile) is not imported at run time: no import cycle
    from ._steps import Ensemble, Fallback, Graph, Node, Parallel, Sequence_, Step, Switch

__all__ = ["compile_plan"]


@dataclass(frozen=True, slots=True)
class _Tensor:
    spec: TensorSpec
    origin: str  # "pipeline input" or "brick 'ocr' output 'text'"


@dataclass
class _Env:
    """Tensors visible at one point of the walk."""

    tensors: dict[str, _Tensor]
    infer_inputs: bool  # may unknown names become pipeline inputs here?
    inferred: dict[str, TensorSpec] = field(default_factory=dict)

    def child(self) -> _Env:
        return _Env(dict(self.tensors), self.infer_inputs, self.inferred)


class _Compiler:
    def __init__(self, default_batching: Batching) -> None:
        self.default_batching = default_batching
        self.stages: dict[str, p.StagePlan] = {}
        self.nodes: dict[str, Node] = {}
        self.active: set[int] = set()
        self.counter = 0

    def auto_name(self, kind: str, given: str | None) -> str:
        if given:
            return given
        self.counter += 1
        return f"{kind}{self.counter}"

    # -- the walk --------------------------------------------------------------------
    def walk(self, step: Step, env: _Env) -> tuple[p.PlanStep, dict[str, _Tensor]]:
        """Compile ``step`` against ``env``; returns its plan and what it publishes.
        ``env`` is updated with the published tensors."""
        if id(step) in self.active:
            raise GraphError(f"cycle: {step!r} contains itself")
        self.active.add(id(step))
        try:
            method = getattr(self, f"_walk_{type(step).__name__.rstrip('_').lower()}", None)
            if method is None:
                raise GraphError(f"{step!r} is not a brick or graph step")
            plan, published = method(step, env)
        finally:
            self.active.discard(id(step))
        for name, t in published.items():
            env.tensors[name] = t
        return plan, published

    def _walk_node(self, node: Node, env: _Env) -> tuple[p.PlanStep, dict[str, _Tensor]]:
        known = self.nodes.get(node.name)
        if known is not None and known is not node and known.brick is not node.brick:
            raise GraphError(
                f"duplicate brick name {node.name!r}: two different bricks share it; "
                "give one another name"
            )
        bind = getattr(node.brick, "bind", None)
        if callable(bind):  # a brick whose ports follow the edge (bw.cast): show it the specs
            bind(lambda port: _spec_here(env, node.reads(port)))
        sig = node.brick.signature
        bindings = []
        for port in sig.inputs:
            source = node.reads(port.name)
            have = env.tensors.get(source)
            if have is None:
                have = self._missing(node, port, source, env)
            adapters = fit(have.spec, port)
            if isinstance(adapters, str):
                raise InterfaceMismatch(
                    f"{have.origin} {have.spec} does not fit brick {node.name!r} input "
                    f"{port.name!r} {port}: {adapters}"
                )
            bindings.append(p.Binding(port.name, source, adapters))
        self.nodes[node.name] = node
        if node.name not in self.stages:
            self.stages[node.name] = p.StagePlan(
                name=node.name, brick=node.brick, signature=sig, options=node.options,
                batching=node.options.batching or self.default_batching,
                worker=node.options.worker
                or ("thread" if getattr(node.brick, "blocking", True) else "inline"),
            )
        published: dict[str, _Tensor] = {}
        # a brick that replaces the tensors it reads (bw.cast) may republish their names
        replaced = ({node.reads(i.name) for i in sig.inputs}
                    if getattr(node.brick, "replaces_inputs", False) else set())
        for port in sig.outputs:
            name = node.publishes(port.name)
            if name not in replaced:
                self._check_new(name, env, f"brick {node.name!r} output {port.name!r}")
            published[name] = _Tensor(port.renamed(name), f"brick {node.name!r} output {port.name!r}")
        publish = tuple((o.name, node.publishes(o.name)) for o in sig.outputs)
        return p.Call(node.name, tuple(bindings), publish), published

    def _missing(self, node: Node, port: TensorSpec, source: str, env: _Env) -> _Tensor:
        if source in env.inferred:  # a pipeline input first read inside another branch
            return _Tensor(env.inferred[source], "pipeline input")
        if env.infer_inputs:
            spec = port.renamed(source)
            first = env.inferred.setdefault(source, spec)
            t = _Tensor(first, "pipeline input")
            env.tensors[source] = t
            return t
        available = sorted(env.tensors)
        renamed = f" (renamed from port {port.name!r})" if source != port.name else ""
        raise GraphError(
            f"dangling input: brick {node.name!r} input {port.name!r}{renamed} reads tensor "
            f"{source!r}, which no earlier step publishes and the pipeline does not take as "
            f"input. Available here: {available}. Fix: .rename(inputs={{{port.name!r}: "
            f"'<one of those>'}}) or declare it in graph(inputs=[...])"
        )

    def _check_new(self, name: str, env: _Env, origin: str) -> None:
        if name in env.tensors:
            raise GraphError(
                f"duplicate tensor name {name!r}: published by {origin} and already by "
                f"{env.tensors[name].origin}; rename one with .rename(outputs={{...}})"
            )

    def _walk_sequence(self, seq: Sequence_, env: _Env) -> tuple[p.PlanStep, dict[str, _Tensor]]:
        # every step's outputs stay visible to the steps after it (walk() adds them to env);
        # what the sequence itself publishes, as a branch or a pipeline, is its last step's
        plans: list[p.PlanStep] = []
        out: dict[str, _Tensor] = {}
        for i, step in enumerate(seq.steps):
            plan, out = self.walk(step, env)
            plans.append(plan)
            if i == 0 and out:
                env.infer_inputs = False
        return p.Seq(tuple(plans)), out

    def _walk_parallel(self, par: Parallel, env: _Env) -> tuple[p.PlanStep, dict[str, _Tensor]]:
        plans: list[p.PlanStep] = []
        published: dict[str, _Tensor] = {}
        per_branch: list[tuple[str, ...]] = []
        for branch in par.branches:
            child = env.child()
            plan, out = self.walk(branch, child)
            for name, t in out.items():
                if name in published:
                    raise GraphError(
                        f"duplicate tensor name {name!r}: published by {t.origin} and by "
                        f"{published[name].origin} in parallel branches; rename one"
                    )
                published[name] = t
            env.tensors.update({k: v for k, v in child.tensors.items() if v.origin == "pipeline input"})
            plans.append(plan)
            per_branch.append(tuple(out))
        return p.Par(tuple(plans), tuple(per_branch)), published

    def _walk_switch(self, sw: Switch, env: _Env) -> tuple[p.PlanStep, dict[str, _Tensor]]:
        name = self.auto_name("group" if sw.each else "switch", sw.name)
        key = env.tensors.get(sw.on)
        if key is None and env.infer_inputs:
            key = _Tensor(TensorSpec(sw.on, "BYTES", (-1,)), "pipeline input")
            env.inferred.setdefault(sw.on, key.spec)
            env.tensors[sw.on] = key
        if key is None:
            raise GraphError(f"switch {name!r} routes on tensor {sw.on!r}, which nothing publishes; "
                             f"available: {sorted(env.tensors)}")
        if key.spec.rank != 1:
            raise InterfaceMismatch(
                f"switch {name!r} routes on {key.origin} {key.spec}: it needs one value per item "
                "(rank 1, shape [-1]); squeeze or select the routing value first"
            )
        want = str if key.spec.dtype == "BYTES" else (bool if key.spec.dtype == "BOOL" else int)
        branches: list[tuple[Any, Step]] = list(sw.cases.items())
        for value, _ in branches:
            if not isinstance(value, want) and not (want is str and isinstance(value, bytes)):
                raise GraphError(
                    f"switch {name!r} case {value!r} is a {type(value).__name__}, but {sw.on!r} "
                    f"holds {key.spec.dtype}; use {want.__name__} keys"
                )
        cases, outputs = [], None
        all_steps = [*branches, *([("<default>", sw.default)] if sw.default is not None else [])]
        for value, step in all_steps:
            plan, out = self.walk(step, env.child())
            outputs = _same_outputs(name, f"case {value!r}", outputs, out)
            cases.append((value, plan))
        default_plan = cases.pop()[1] if sw.default is not None else None
        assert outputs is not None
        for n in outputs:
            self._check_new(n, env, f"switch {name!r}")
        return (p.Route(name, sw.on, tuple(cases), default_plan,
                        tuple(t.spec for t in outputs.values()), sw.each),
                {n: _Tensor(t.spec, f"switch {name!r} output {n!r}") for n, t in outputs.items()})

    def _walk_ensemble(self, ens: Ensemble, env: _Env) -> tuple[p.PlanStep, dict[str, _Tensor]]:
        name = self.auto_name("ensemble", ens.name)
        plans, spec = [], None
        for i, member in enumerate(ens.members):
            plan, out = self.walk(member, env.child())
            got = out.get(ens.on)
            if got is None:
                raise GraphError(
                    f"ensemble {name!r} member {i} publishes {sorted(out)}, not {ens.on!r}; "
                    f"rename its output with .rename(outputs={{'<port>': {ens.on!r}}})"
                )
            if spec is not None and (got.spec.dtype != spec.dtype or not _dims_agree(got.spec, spec)):
                raise InterfaceMismatch(
                    f"ensemble {name!r}: member {i} {got.origin} {got.spec} does not match "
                    f"member 0's {spec}; every member must publish the same spec"
                )
            spec = spec or got.spec
            plans.append(plan)
        assert spec is not None
        if ens.combiner == "mean" and spec.dtype not in ("FP16", "FP32", "FP64"):
            raise InterfaceMismatch(f"ensemble {name!r}: combiner 'mean' needs float "
                                    f"probabilities, but {ens.on!r} is {spec}")
        if ens.combiner != "mean" and spec.rank != 1:
            raise InterfaceMismatch(f"ensemble {name!r}: combiner {ens.combiner!r} votes on one "
                                    f"label per item (rank 1), but {ens.on!r} is {spec}")
        published = {ens.output: _Tensor(spec.renamed(ens.output), f"ensemble {name!r}")}
        if ens.label:
            published[ens.label] = _Tensor(TensorSpec(ens.label, "INT64", (-1,)), f"ensemble {name!r}")
        for n in published:
            self._check_new(n, env, f"ensemble {name!r}")
        return p.Vote(name, tuple(plans), ens.combiner, ens.on, ens.output, ens.weights,
                      ens.label, ens.k, ens.deadline_s, ens.min_members or 1,
                      tuple(getattr(m, "name", None) or f"member{i}"
                            for i, m in enumerate(ens.members))), published

    def _walk_fallback(self, fb: Fallback, env: _Env) -> tuple[p.PlanStep, dict[str, _Tensor]]:
        name = fb.name or _label(fb.primary, 0)
        rungs, outputs = [], None
        for i, step in enumerate((fb.primary, *fb.rungs)):
            plan, out = self.walk(step, env.child())
            if outputs is None:
                outputs = out
            else:
                missing = sorted(set(outputs) - set(out))
                if missing:
                    raise GraphError(f"fallback {name!r} rung {i} does not publish {missing}, "
                                     f"which the primary does; it publishes {sorted(out)}")
                for n, t in outputs.items():
                    if out[n].spec.dtype != t.spec.dtype or not _dims_agree(out[n].spec, t.spec):
                        raise InterfaceMismatch(
                            f"fallback {name!r} rung {i}: {out[n].origin} {out[n].spec} does not "
                            f"match the primary's {t.spec}"
                        )
            rungs.append((_label(step, i), plan))
        assert outputs is not None
        default = None
        if fb.default is not None:
            default = _default_answer(name, fb.default, {n: t.spec for n, t in outputs.items()})
        for n in outputs:
            self._check_new(n, env, f"fallback {name!r}")
        return (p.Ladder(name, tuple(rungs), default, fb.on, tuple(t.spec for t in outputs.values())),
                {n: _Tensor(t.spec, f"fallback {name!r} output {n!r}") for n, t in outputs.items()})

    def _walk_graph(self, g: Graph, env: _Env) -> tuple[p.PlanStep, dict[str, _Tensor]]:
        inner = _Env(dict(env.tensors), env.infer_inputs, env.inferred)
        plan, out = self.walk(g.root, inner)
        names = g.outputs or tuple(out)
        published = {}
        for n in names:
            t = inner.tensors.get(n)
            if t is None:
                raise GraphError(f"graph {g.name!r} output {n!r} is not published by any of its "
                                 f"steps; they publish {sorted(out)}")
            published[n] = _Tensor(t.spec, f"graph {g.name!r} output {n!r}")
        for n in published:
            self._check_new(n, env, f"graph {g.name!r}")
        return p.Scope(g.name, plan, tuple(names)), published


def _spec_here(env: _Env, name: str) -> TensorSpec | None:
    t = env.tensors.get(name)
    if t is not None:
        return t.spec.renamed(name)
    return env.inferred.get(name)


def _label(step: Step, index: int) -> str:
    """A rung's label: its node's, graph's or combinator's name, else its position."""
    return getattr(step, "name", None) or f"rung{index}"


def _dims_agree(a: TensorSpec, b: TensorSpec) -> bool:
    return a.rank == b.rank and all(x == -1 or y == -1 or x == y for x, y in zip(a.shape, b.shape))


def _same_outputs(owner: str, what: str, outputs: dict[str, _Tensor] | None,
                  out: dict[str, _Tensor]) -> dict[str, _Tensor]:
    if outputs is None:
        return out
    if set(out) != set(outputs):
        raise GraphError(
            f"switch {owner!r} {what} publishes {sorted(out)} but an earlier case publishes "
            f"{sorted(outputs)}; every case must publish the same tensors (add a default brick "
            "for the missing ones)"
        )
    for n, t in outputs.items():
        if out[n].spec.dtype != t.spec.dtype or not _dims_agree(out[n].spec, t.spec):
            raise InterfaceMismatch(f"switch {owner!r} {what}: {out[n].origin} {out[n].spec} does "
                                    f"not match {t.origin} {t.spec}")
    return outputs


def _default_answer(owner: str, default: Mapping[str, Any],
                    specs: Mapping[str, TensorSpec]) -> dict[str, np.ndarray]:
    unknown = sorted(set(default) - set(specs))
    missing = sorted(set(specs) - set(default))
    if unknown or missing:
        raise GraphError(f"fallback {owner!r} default answer must give exactly {sorted(specs)}; "
                         f"unknown {unknown}, missing {missing}")
    answer = {}
    for n, value in default.items():
        spec = specs[n]
        dtype = object if spec.dtype == "BYTES" else to_numpy_dtype(spec.dtype)
        arr = np.asarray(value, dtype=dtype)
        item_rank = spec.rank - 1
        if arr.ndim == item_rank + 1 and arr.shape[0] == 1:
            arr = np.asarray(arr[0], dtype=dtype)
        if arr.ndim != item_rank or not all(
            d == -1 or d == s for d, s in zip(spec.shape[1:], arr.shape)
        ):
            raise InterfaceMismatch(f"fallback {owner!r} default {n!r} has shape {list(arr.shape)}, "
                                    f"but one item of {spec} has shape {list(spec.shape[1:])}")
        answer[n] = arr
    return answer


def compile_plan(graph: Graph, *, batching: Batching | None = None) -> p.Plan:
    """Validate ``graph`` and build its :class:`Plan`. Raises a BuildError subclass naming the
    problem and its fix; nothing runs."""
    compiler = _Compiler(batching or Batching())
    declared = {t.name: t for t in graph.inputs or ()}
    tensors = {n: _Tensor(t, "pipeline input") for n, t in declared.items()}
    env = _Env(tensors, infer_inputs=graph.inputs is None)
    root, out = compiler.walk(graph.root, env)
    names = graph.outputs or tuple(out)
    outputs = []
    for n in names:
        t = env.tensors.get(n)
        if t is None or t.origin == "pipeline input":
            raise GraphError(f"pipeline {graph.name!r} output {n!r} is not published by any step; "
                             f"published: {sorted(k for k, v in env.tensors.items() if v.origin != 'pipeline input')}")
        outputs.append(t.spec)
    inputs = [*declared.values(), *(s for n, s in env.inferred.items() if n not in declared)]
    if not compiler.stages:
        raise GraphError(f"pipeline {graph.name!r} has no bricks")
    plan = p.Plan(graph.name, tuple(inputs), tuple(outputs), dict(compiler.stages), root)
    p.stream_split(plan)  # refuses a shape that cannot stream (a no-op when nothing streams)
    return plan
