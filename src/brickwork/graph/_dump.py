"""Graph → YAML (the inverse of ``_yaml``) and Plan → Mermaid / Graphviz dot."""

from __future__ import annotations

from dataclasses import fields
from typing import Any

import yaml

from .. import plan as p
from ..errors import ConfigError
from ..options import Batching, Breaker, FaultPolicy, StageOptions
from ._steps import Ensemble, Fallback, Graph, Node, Parallel, Sequence_, Step, Switch

__all__ = ["dump_graph", "render"]


def _non_default(obj: Any) -> dict[str, Any]:
    out = {}
    for f in fields(obj):
        value = getattr(obj, f.name)
        default = f.default_factory() if callable(f.default_factory) else f.default
        if value != default:
            out[f.name] = _plain(value)
    return out


def _plain(value: Any) -> Any:
    if isinstance(value, Batching | Breaker):
        return _non_default(value)
    if isinstance(value, tuple):
        return list(value)
    return value


def _stage_options(options: StageOptions) -> dict[str, Any]:
    out = {k: v for k, v in _non_default(options).items() if k != "policy"}
    if options.batching is not None:
        out["batching"] = _non_default(options.batching)
    out.update(_non_default(options.policy) if options.policy != FaultPolicy() else {})
    return out


class _Dumper:
    def __init__(self) -> None:
        self.bricks: dict[str, Any] = {}
        self.graphs: dict[str, Any] = {}

    def node(self, node: Node) -> str:
        if node.name not in self.bricks:
            make_spec = getattr(node.brick, "spec", None)
            if make_spec is None:
                raise ConfigError(f"brick {node.name!r} has no spec(); it cannot be written to YAML")
            spec = make_spec()
            entry: dict[str, Any] = dict(spec.config)
            entry.update(_stage_options(node.options))
            rename = {k: dict(v) for k, v in (("inputs", node.inputs), ("outputs", node.outputs)) if v}
            if rename:
                entry["rename"] = rename
            self.bricks[node.name] = entry
        return node.name

    def step(self, step: Step) -> Any:
        if isinstance(step, Node):
            return self.node(step)
        if isinstance(step, Sequence_):
            parts = [self.step(s) for s in step.steps]
            if all(isinstance(x, str) for x in parts):
                return " >> ".join(parts)
            return parts
        if isinstance(step, Parallel):
            return {"parallel": [self.step(s) for s in step.branches]}
        if isinstance(step, Switch) and step.each and step.default is not None:
            grp: dict[str, Any] = {"on": step.on, "step": self.step(step.default)}
            if step.name:
                grp["name"] = step.name
            return {"group": grp}
        if isinstance(step, Switch):
            out: dict[str, Any] = {"on": step.on, "cases": {k: self.step(v) for k, v in step.cases.items()}}
            if step.default is not None:
                out["default"] = self.step(step.default)
            if step.name:
                out["name"] = step.name
            return {"switch": out}
        if isinstance(step, Ensemble):
            ens: dict[str, Any] = {"members": [self.step(m) for m in step.members],
                                   "combiner": step.combiner, "on": step.on, "output": step.output}
            if step.weights:
                ens["weights"] = list(step.weights)
            if step.label:
                ens["label"] = step.label
            if step.name:
                ens["name"] = step.name
            for key in ("k", "deadline_s", "min_members"):
                if getattr(step, key) is not None:
                    ens[key] = getattr(step, key)
            return {"ensemble": ens}
        if isinstance(step, Fallback):
            ladder: list[Any] = [self.step(step.primary), *(self.step(r) for r in step.rungs)]
            tail: dict[str, Any] = {}
            if step.default is not None:
                tail["default"] = {k: _plain_value(v) for k, v in step.default.items()}
            if step.on != "machinery":
                tail["on"] = step.on
            if tail:
                ladder.append(tail)
            return {"fallback": ladder}
        if isinstance(step, Graph):
            if step.name not in self.graphs:
                entry: dict[str, Any] = {"graph": self.step(step.root)}
                if step.outputs:
                    entry["outputs"] = list(step.outputs)
                self.graphs[step.name] = entry
            return step.name
        raise ConfigError(f"cannot write {step!r} to YAML")


def _plain_value(v: Any) -> Any:
    return v.tolist() if hasattr(v, "tolist") else v


def dump_graph(graph: Graph, *, defaults: StageOptions | None = None,
               example: Any = None) -> str:
    """The YAML text of a graph whose bricks all have a ``spec()`` (built from files or
    importable functions)."""
    d = _Dumper()
    root = d.step(graph.root)
    doc: dict[str, Any] = {"name": graph.name}
    if defaults is not None and _stage_options(defaults):
        doc["defaults"] = _stage_options(defaults)
    if graph.inputs:
        doc["inputs"] = [t.to_dict() for t in graph.inputs]
    if graph.outputs:
        doc["outputs"] = list(graph.outputs)
    doc["bricks"] = d.bricks
    if d.graphs:
        doc["graphs"] = d.graphs
    doc["graph"] = root
    if example is not None:
        doc["example"] = example
    return yaml.safe_dump(_to_builtin(doc), sort_keys=False, default_flow_style=None, width=100)


def _to_builtin(value: Any) -> Any:
    """Plain dicts and lists all the way down (the loader's mappings are dict subclasses)."""
    if isinstance(value, dict):
        return {k: _to_builtin(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [_to_builtin(v) for v in value]
    return value


# -- rendering -----------------------------------------------------------------------------
def render(plan: p.Plan, fmt: str = "mermaid") -> str:
    """The plan as a Mermaid flowchart or a Graphviz dot digraph, adapters included."""
    if fmt not in ("mermaid", "dot"):
        raise ConfigError(f"unknown graph format {fmt!r}; use 'mermaid' or 'dot'")
    r = _Renderer(plan)
    r.walk(plan.root, ["__in"])
    r.edge_all(r.tails, "__out", "")
    return r.text(fmt)


class _Renderer:
    def __init__(self, plan: p.Plan) -> None:
        self.plan = plan
        self.nodes: dict[str, tuple[str, str]] = {
            "__in": ("inputs: " + ", ".join(t.name for t in plan.inputs), "io"),
            "__out": ("outputs: " + ", ".join(t.name for t in plan.outputs), "io"),
        }
        self.edges: list[tuple[str, str, str]] = []
        self.tails: list[str] = []
        self.n = 0

    def new(self, label: str, shape: str) -> str:
        self.n += 1
        key = f"n{self.n}"
        self.nodes[key] = (label, shape)
        return key

    def edge_all(self, srcs: list[str], dst: str, label: str) -> None:
        for s in srcs:
            self.edges.append((s, dst, label))

    def walk(self, step: p.PlanStep, heads: list[str]) -> list[str]:
        if isinstance(step, p.Call):
            stage = self.plan.stages[step.stage]
            key = self.new(f"{stage.name} [{stage.worker} x{stage.options.replicas}, "
                           f"batch<={stage.batching.max_batch_size}]", "box")
            label = "; ".join(str(a) for b in step.bindings for a in b.adapters)
            self.edge_all(heads, key, label)
            self.tails = [key]
            return [key]
        if isinstance(step, p.Seq):
            for s in step.steps:
                heads = self.walk(s, heads)
            return heads
        if isinstance(step, p.Par | p.Vote):
            members = step.steps if isinstance(step, p.Par) else step.members
            tails = [t for s in members for t in self.walk(s, heads)]
            if isinstance(step, p.Vote):
                key = self.new(f"{step.name}: {step.combiner} vote", "round")
                self.edge_all(tails, key, step.on)
                tails = [key]
            self.tails = tails
            return tails
        if isinstance(step, p.Route):
            key = self.new(f"{step.name}: switch on {step.on}", "diamond")
            self.edge_all(heads, key, "")
            cases = [*step.cases, *([("default", step.default)] if step.default else [])]
            tails = []
            for value, s in cases:
                start = len(self.edges)
                tails += self.walk(s, [key])
                if len(self.edges) > start:
                    src, dst, _ = self.edges[start]
                    self.edges[start] = (src, dst, f"= {value}")
            self.tails = tails
            return tails
        if isinstance(step, p.Ladder):
            tails = []
            prev = heads
            for i, (_label, s) in enumerate(step.rungs):
                start = len(self.edges)
                tails += self.walk(s, prev)
                if i and len(self.edges) > start:
                    src, dst, _ = self.edges[start]
                    self.edges[start] = (src, dst, "on failure")
                prev = [self.edges[start][1]] if len(self.edges) > start else prev
            if step.default is not None:
                key = self.new(f"{step.name}: default answer", "round")
                self.edge_all(prev, key, "on failure")
                tails.append(key)
            self.tails = tails
            return tails
        if isinstance(step, p.Scope):
            return self.walk(step.step, heads)
        raise ConfigError(f"cannot render {step!r}")

    def text(self, fmt: str) -> str:
        if fmt == "mermaid":
            shapes = {"box": ("[", "]"), "round": ("(", ")"), "diamond": ("{", "}"), "io": ("([", "])")}
            lines = ["flowchart LR"]
            for key, (label, shape) in self.nodes.items():
                o, c = shapes[shape]
                lines.append(f'    {key}{o}"{label}"{c}')
            for s, d, label in self.edges:
                lines.append(f'    {s} -->|"{label}"| {d}' if label else f"    {s} --> {d}")
            return "\n".join(lines) + "\n"
        dshape = {"box": "box", "round": "ellipse", "diamond": "diamond", "io": "note"}
        lines = [f'digraph "{self.plan.name}" {{', "    rankdir=LR;"]
        for key, (label, shape) in self.nodes.items():
            lines.append(f'    {key} [label="{label}", shape={dshape[shape]}];')
        for s, d, label in self.edges:
            lines.append(f'    {s} -> {d} [label="{label}"];' if label else f"    {s} -> {d};")
        return "\n".join(lines) + "\n}\n"
