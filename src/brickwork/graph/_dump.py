"""Graph → YAML (the inverse of ``_yaml``) and Plan → Mermaid / Graphviz dot."""

from __future__ import annotations

import os
import shutil
from collections.abc import Mapping
from dataclasses import fields, is_dataclass, replace
from pathlib import Path
from typing import Any

import yaml

from .. import plan as p
from ..errors import ConfigError
from ..options import STAGE_KEYS, StageOptions
from ._steps import Ensemble, Fallback, Graph, Node, Parallel, Sequence_, Step, Switch

__all__ = ["dump_graph", "render"]


def _non_default(obj: Any, base: Any = None) -> dict[str, Any]:
    """Fields of ``obj`` that differ from ``base`` (default: the class's defaults)."""
    out = {}
    for f in fields(obj):
        value = getattr(obj, f.name)
        if base is not None:
            default = getattr(base, f.name)
        else:
            default = f.default_factory() if callable(f.default_factory) else f.default
        if value != default:
            out[f.name] = _plain(value)
    return out


def _plain(value: Any) -> Any:
    if is_dataclass(value) and not isinstance(value, type):  # Batching, Breaker, RayPlacement…
        return _non_default(value)
    if isinstance(value, tuple):
        return list(value)
    if isinstance(value, Mapping):
        return dict(value)
    return value


def _stage_options(options: StageOptions, base: StageOptions | None = None) -> dict[str, Any]:
    """The stage-option keys (STAGE_KEYS, policy fields flat) where ``options`` differs from
    ``base``: what the loader must apply to ``base`` to get ``options`` back. A brick entry's
    base is the file's ``defaults:`` without batching, as the loader reads it."""
    base = base or StageOptions()
    out = {k: v for k, v in _non_default(options, base).items() if k != "policy"}
    if options.batching is not None and "batching" in out:
        out["batching"] = _non_default(options.batching)
    if "autoscale" in out or ("replicas" in out and options.autoscale is not None):
        # YAML spells autoscaling replicas: {min, max, ...}; a count replaces a range
        out.pop("autoscale", None)
        out["replicas"] = (_plain(options.autoscale) if options.autoscale is not None
                           else options.replicas)
    out.update(_non_default(options.policy, base.policy))
    assert set(out) <= STAGE_KEYS  # the loader reads exactly these keys
    return out


# config keys that hold a file or folder path, by brick kind
_PATH_KEYS = ("onnx", "sklearn", "torch", "transformers", "converted")


class _Dumper:
    def __init__(self, base: StageOptions, folder: Path | None = None) -> None:
        self.base = base
        self.bricks: dict[str, Any] = {}
        self.graphs: dict[str, Any] = {}
        self.folder = folder  # where the YAML goes (None: text only)

    def files(self, node: Node, spec: Any, entry: dict[str, Any]) -> None:
        """Make the brick's file paths hold in the written file: a file the brick wrote to its
        own temporary folder (an in-memory model) is copied beside the YAML, or refused when
        there is no YAML path; other paths are written relative to the YAML's folder."""
        owned = getattr(node.brick, "_tmp", None)
        for key in _PATH_KEYS:
            value = entry.get(key)
            if not isinstance(value, str) or not value:
                continue
            src = Path(value) if Path(value).is_absolute() else Path(spec.base_dir) / value
            temporary = owned is not None and src.resolve().is_relative_to(Path(owned).resolve())
            if temporary and self.folder is None:
                raise ConfigError(
                    f"brick {node.name!r} holds an in-memory model; its file {str(src)!r} is a "
                    "temporary one, deleted when this process exits, so a YAML naming it would "
                    "not load later. Give dump_graph(graph, path='pipeline.yaml') to write the "
                    f"model beside the YAML (as {node.name}{src.suffix})")
            if self.folder is None:
                continue
            if temporary:
                dest = self.folder / f"{node.name}{src.suffix}"
                if src.is_dir():
                    shutil.copytree(src, dest, dirs_exist_ok=True)
                else:
                    shutil.copyfile(src, dest)
                entry[key] = dest.name
            else:
                entry[key] = os.path.relpath(src.resolve(), self.folder.resolve())

    def node(self, node: Node) -> str:
        if node.name not in self.bricks:
            make_spec = getattr(node.brick, "spec", None)
            if make_spec is None:
                raise ConfigError(f"brick {node.name!r} has no spec(); it cannot be written to YAML")
            spec = make_spec()
            entry: dict[str, Any] = dict(spec.config)
            self.files(node, spec, entry)
            entry.update(_stage_options(node.options, self.base))
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
            return {"ensemble": ens}
        if isinstance(step, Fallback):
            ladder: list[Any] = [self.step(step.primary), *(self.step(r) for r in step.rungs)]
            tail: dict[str, Any] = {}
            if step.default is not None:
                tail["default"] = {k: _plain_value(v) for k, v in step.default.items()}
            if step.on != "machinery":
                tail["on"] = step.on
            if step.name is not None:
                tail["name"] = step.name
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


def dump_graph(graph: Graph, path: str | Path | None = None, *, defaults: StageOptions | None = None,
               example: Any = None) -> str:
    """The YAML text of a graph whose bricks all have a ``spec()`` (built from files or
    importable functions); with ``path``, also written there, with every model file path
    relative to it and in-memory models (``bw.sklearn(estimator)``, ``bw.torch(module)``)
    saved beside it as ``<brick name>.<ext>``. Without ``path`` a graph holding an in-memory
    model is refused: its file is temporary. Python functions are written by name
    (``module:function``); keep their module importable from the YAML's folder."""
    folder = None
    if path is not None:
        folder = Path(path).parent
        folder.mkdir(parents=True, exist_ok=True)
    base = replace(defaults, batching=None) if defaults is not None else StageOptions()
    d = _Dumper(base, folder)
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
    text = yaml.safe_dump(_to_builtin(doc), sort_keys=False, default_flow_style=None, width=100)
    if path is not None:
        Path(path).write_text(text, encoding="utf-8")
    return text


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
            # each rung starts from where the previous rung ends (its result: the vote of an
            # ensemble, the last brick of a sequence), on failure
            tails = []
            prev = heads
            for i, (_label, s) in enumerate(step.rungs):
                start = len(self.edges)
                out = self.walk(s, prev)
                if i:
                    for j in range(start, len(self.edges)):
                        src, dst, label = self.edges[j]
                        if src in prev:
                            self.edges[j] = (src, dst, "; ".join(x for x in ("on failure", label) if x))
                tails += out
                prev = out
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
