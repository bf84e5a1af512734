"""Pipelines as YAML files: the same Graph the Python API builds.

    name: digits                      # the model name the server exposes
    defaults:                         # optional: stage options for every brick
      batching: {max_batch_size: 32, max_delay_s: 0.002}
    inputs:                           # optional: declared inputs (else inferred)
      - {name: pixels, datatype: FP32, shape: [-1, 64]}
    outputs: [label]                  # optional: what the pipeline returns
    bricks:
      lr:    {onnx: models/lr.onnx, replicas: 2, rename: {outputs: {probabilities: p}}}
      rules: {python: "mymodule:rule_score"}          # module path relative to this file
      risk:  {onnx: models/risk.onnx, timeout_s: 0.05, fallback: [rules, {default: {risk: [0.5]}}]}
    graphs:                           # optional: named sub-graphs, usable like bricks
      ocr: {graph: [det, crop, rec], outputs: [text]}
    graph: lr >> rules                # a name, "a >> b", a list (sequence), or one of
                                      #   {parallel: [...]}, {switch: {on, cases, default}},
                                      #   {group: {on, step}} (step once per distinct value),
                                      #   {ensemble: {members, combiner, on, output, label, weights,
                                      #               k, deadline_s, min_members}},
                                      #   {fallback: [primary, rung..., {default: {...}}]}
                                      #   (last item may also hold on: any and name: <ladder>)
    example: {pixels: [[0.0, ...]]}   # optional: a sample request for `brickwork bench`

Every key is listed in docs/yaml.md, generated (``brickwork schema``) from the tables the
loader checks against (``_keys``, the option dataclasses, each brick kind's ``config_keys``).
A malformed file is refused with the file, the line, the field, what was expected and what
was found.
"""

from __future__ import annotations

import re
import sys
from collections.abc import Mapping
from dataclasses import fields
from pathlib import Path
from typing import Any, Literal

import yaml

from ..bricks import config_keys, kind_class, known_kinds
from ..errors import BrickworkError, ConfigError
from ..options import STAGE_KEYS, Autoscale, Batching, Breaker, RayPlacement, StageOptions
from ..spec import TensorSpec
from ._keys import COMBINATORS, GRAPH_ENTRY_KEYS, LADDER_TAIL_KEYS, NODE_KEYS, TOP_KEYS, names
from ._nodes import place
from ._steps import Graph, Node, Step, ensemble, group, parallel, switch

__all__ = ["STAGE_KEYS", "PipelineFile", "load_graph", "load_pipeline", "parse_pipeline"]

_NODE_KEYS = NODE_KEYS
_TOP_KEYS = set(names(TOP_KEYS))
_COMBINATORS = set(COMBINATORS)


class _Loader(yaml.SafeLoader):
    """Records where each mapping key is, for error messages."""


def _construct_mapping(loader: _Loader, node: yaml.MappingNode) -> _Map:
    loader.flatten_mapping(node)
    out = _Map()
    out.line = node.start_mark.line + 1
    for key_node, value_node in node.value:
        key = loader.construct_object(key_node, deep=True)
        out[key] = loader.construct_object(value_node, deep=True)
        out.lines[key] = key_node.start_mark.line + 1
    return out


class _Map(dict[Any, Any]):
    line = 0

    def __init__(self, *args: Any) -> None:
        super().__init__(*args)
        self.lines: dict[Any, int] = {}


_Loader.add_constructor(yaml.resolver.BaseResolver.DEFAULT_MAPPING_TAG, _construct_mapping)
# YAML 1.2 booleans: only true/false. YAML 1.1 would read `on:` (as in `switch: {on: lang}`),
# `yes`, `no` and `off` as booleans.
_Loader.yaml_implicit_resolvers = {
    first: [(tag, regexp) for tag, regexp in resolvers if tag != "tag:yaml.org,2002:bool"]
    for first, resolvers in yaml.SafeLoader.yaml_implicit_resolvers.items()
}
_Loader.add_implicit_resolver(
    "tag:yaml.org,2002:bool", re.compile(r"^(?:true|True|TRUE|false|False|FALSE)$"), list("tTfF")
)


class PipelineFile:
    """A parsed pipeline file: its graph, default batching and example request."""

    def __init__(self, graph: Graph, defaults: StageOptions, example: Mapping[str, Any] | None,
                 path: Path | None, *, description: str | None = None,
                 descriptions: Mapping[str, str] | None = None) -> None:
        self.graph = graph
        self.defaults = defaults
        self.example = example
        self.path = path
        self.description = description
        self.descriptions = dict(descriptions or {})

    def compile(self, *, backend: Any = "local") -> Any:
        pipeline = self.graph.compile(batching=self.defaults.batching, backend=backend)
        known = {s.name for s in (*pipeline.plan.inputs, *pipeline.plan.outputs)}
        unknown = sorted(set(self.descriptions) - known)
        if unknown:
            raise ConfigError(f"{self.path or 'pipeline'}: descriptions name {unknown}, which are not "
                              f"inputs or outputs of the pipeline (those are {sorted(known)})")
        pipeline.description = self.description
        pipeline.descriptions = dict(self.descriptions)
        return pipeline


class _Parser:
    def __init__(self, doc: _Map, where: str, base_dir: Path) -> None:
        self.doc = doc
        self.where = where
        self.base_dir = base_dir
        self.nodes: dict[str, Node] = {}
        self.built: dict[str, Step] = {}
        self.resolving: list[str] = []

    def fail(self, mapping: Any, key: Any, expected: str, found: Any) -> ConfigError:
        line = getattr(mapping, "lines", {}).get(key) or getattr(mapping, "line", 0)
        at = f"{self.where}:{line}" if line else self.where
        shown = f"{found!r}" if not isinstance(found, dict) else "a mapping"
        return ConfigError(f"{at}: field {key!r}: expected {expected}, found {shown}")

    def check_keys(self, mapping: Any, known: Any, what: str) -> None:
        """Refuse the first key of ``mapping`` not in ``known``, at its line, with the known
        keys (before a dataclass or a factory sees it and raises a bare TypeError)."""
        for key in mapping:
            if key not in known:
                raise self.fail(mapping, key, f"one of the {what} keys {sorted(known)}", key)

    def check_options(self, mapping: Any) -> None:
        """Stage options, their ``batching:`` and ``breaker:`` mappings included."""
        for key, cls in (("batching", Batching), ("breaker", Breaker), ("ray", RayPlacement),
                         ("replicas", Autoscale)):
            if isinstance(mapping.get(key), dict):
                self.check_keys(mapping[key], {f.name for f in fields(cls)}, key)

    # -- bricks ------------------------------------------------------------------
    def brick_node(self, name: str, entry: _Map, defaults: StageOptions) -> Node:
        bricks = self.doc["bricks"]
        if not isinstance(entry, dict):
            raise self.fail(bricks, name, "a mapping like {onnx: model.onnx}", entry)
        kinds = [k for k in entry if k not in _NODE_KEYS and _is_kind(k)]
        if len(kinds) != 1:
            raise self.fail(bricks, name, "exactly one brick kind key "
                            f"({', '.join(sorted(known_kinds() - {'fake'}))})", sorted(entry))
        kind = kinds[0]
        own = {k.name for k in config_keys(kind_class(kind))}
        if own:
            self.check_keys(entry, own | _NODE_KEYS, f"{kind!r} brick")
        config = {k: v for k, v in entry.items() if k not in _NODE_KEYS}
        try:
            brick = kind_class(kind).from_config(dict(config), self.base_dir, name)
        except BrickworkError as exc:
            raise ConfigError(f"{self.where}:{entry.line}: brick {name!r}: {exc}") from exc
        stage = {k: entry[k] for k in entry if k in STAGE_KEYS}
        self.check_options(stage)
        try:
            options = defaults.updated(**stage)
        except (BrickworkError, TypeError) as exc:
            raise ConfigError(f"{self.where}:{entry.line}: brick {name!r} options: {exc}") from exc
        place(brick, options)
        node = Node(brick, name, options=options)
        rename = entry.get("rename")
        if rename is not None:
            if not isinstance(rename, dict) or set(rename) - {"inputs", "outputs"}:
                raise self.fail(entry, "rename", "{inputs: {port: tensor}, outputs: {port: tensor}}", rename)
            try:
                node = node.rename(inputs=rename.get("inputs"), outputs=rename.get("outputs"))
            except BrickworkError as exc:
                raise ConfigError(f"{self.where}:{entry.lines['rename']}: {exc}") from exc
        return node

    def reference(self, name: str, owner: Any, key: Any) -> Step:
        if name in self.built:
            return self.built[name]
        if name in self.resolving:
            chain = " -> ".join([*self.resolving[self.resolving.index(name):], name])
            raise ConfigError(f"{self.where}: cycle between graphs: {chain}")
        bricks = self.doc.get("bricks") or {}
        graphs = self.doc.get("graphs") or {}
        self.resolving.append(name)
        try:
            if name in bricks:
                step: Step = self.nodes[name]
                fb = bricks[name].get("fallback")
                if fb is not None:
                    step = self.fallback([name, *(fb if isinstance(fb, list) else [fb])],
                                         bricks[name], "fallback", wrap_primary=step)
            elif name in graphs:
                entry = graphs[name]
                if not isinstance(entry, dict) or "graph" not in entry:
                    raise self.fail(graphs, name, "a mapping with a 'graph' field", entry)
                self.check_keys(entry, names(GRAPH_ENTRY_KEYS), "graph entry")
                outputs = entry.get("outputs")
                step = Graph(self.step(entry["graph"], entry, "graph"), name,
                             tuple(outputs) if outputs else None)
            else:
                known = sorted([*bricks, *graphs])
                raise self.fail(owner, key, f"the name of a brick or graph ({', '.join(known)})", name)
        finally:
            self.resolving.pop()
        self.built[name] = step
        return step

    # -- the graph expression ----------------------------------------------------
    def step(self, value: Any, owner: Any, key: Any) -> Step:
        if isinstance(value, str):
            parts = [p.strip() for p in value.split(">>")]
            if any(not p for p in parts):
                raise self.fail(owner, key, "names joined by '>>'", value)
            steps = [self.reference(p, owner, key) for p in parts]
            return steps[0] if len(steps) == 1 else _chain(steps)
        if isinstance(value, list):
            if not value:
                raise self.fail(owner, key, "a non-empty list of steps", value)
            return _chain([self.step(v, value, i) for i, v in enumerate(value)])
        if isinstance(value, dict) and len(value) == 1:
            (kind, arg), = value.items()
            if kind == "parallel":
                if not isinstance(arg, list) or len(arg) < 2:
                    raise self.fail(value, kind, "a list of at least two branches", arg)
                return parallel(*(self.step(v, arg, i) for i, v in enumerate(arg)))
            if kind == "switch":
                return self.switch(arg, value)
            if kind == "group":
                if not isinstance(arg, dict) or not {"on", "step"} <= set(arg):
                    raise self.fail(value, kind, "{on: tensor, step: step}", arg)
                self.check_keys(arg, names(COMBINATORS["group"]), "group")
                return group(arg["on"], self.step(arg["step"], arg, "step"), name=arg.get("name"))
            if kind == "ensemble":
                return self.ensemble(arg, value)
            if kind == "fallback":
                return self.fallback(arg, value, kind)
        raise self.fail(owner, key, "a brick name, 'a >> b', a list, or one of "
                        f"{sorted(_COMBINATORS)}", value)

    def switch(self, arg: Any, owner: Any) -> Step:
        if not isinstance(arg, dict) or "on" not in arg or not isinstance(arg.get("cases"), dict):
            raise self.fail(owner, "switch", "{on: tensor, cases: {value: step}, default: step}", arg)
        self.check_keys(arg, names(COMBINATORS["switch"]), "switch")
        cases = {k: self.step(v, arg["cases"], k) for k, v in arg["cases"].items()}
        default = self.step(arg["default"], arg, "default") if "default" in arg else None
        return switch(arg["on"], cases, default=default, name=arg.get("name"))

    def ensemble(self, arg: Any, owner: Any) -> Step:
        if not isinstance(arg, _Map) or not isinstance(arg.get("members"), list):
            raise self.fail(owner, "ensemble", "{members: [...], combiner: majority|weighted|mean}", arg)
        self.check_keys(arg, names(COMBINATORS["ensemble"]), "ensemble")
        members = [self.step(v, arg["members"], i) for i, v in enumerate(arg["members"])]
        try:
            return ensemble(members, combiner=arg.get("combiner", "majority"), on=arg.get("on"),
                            output=arg.get("output"), weights=arg.get("weights"),
                            label=arg.get("label"), name=arg.get("name"), k=arg.get("k"),
                            deadline_s=arg.get("deadline_s"), min_members=arg.get("min_members"))
        except BrickworkError as exc:
            raise ConfigError(f"{self.where}:{arg.line}: ensemble: {exc}") from exc

    def fallback(self, arg: Any, owner: Any, key: Any, wrap_primary: Step | None = None) -> Step:
        """``[primary, rung..., {default: {...}, on: machinery|any, name: ladder}]``: the last
        item may be a mapping with a static default answer, what makes the ladder move on and
        the ladder's name (default: the primary's name, as in the Python API)."""
        if not isinstance(arg, list) or not arg:
            raise self.fail(owner, key, "a list: [primary, rung..., {default: {...}, on: any}]", arg)
        default = None
        ladder: str | None = None
        on: Literal["machinery", "any"] = "machinery"
        tail = arg[-1]
        if isinstance(tail, dict) and tail and set(tail) <= set(names(LADDER_TAIL_KEYS)):
            default = tail.get("default")
            ladder = tail.get("name")
            if ladder is not None and not isinstance(ladder, str):
                raise self.fail(tail, "name", "a ladder name (text)", ladder)
            on = tail.get("on", on)
            if on not in ("machinery", "any"):
                raise self.fail(tail, "on", "'machinery' (crash, timeout, overload, open circuit, "
                                "upstream error; the default) or 'any' (also when the model raised)", on)
            arg = arg[:-1]
        steps = [wrap_primary if (i == 0 and wrap_primary is not None) else self.step(v, arg, i)
                 for i, v in enumerate(arg)]
        if len(steps) < 2 and default is None:
            raise self.fail(owner, key, "at least one rung or a default answer", arg)
        return steps[0].fallback(*steps[1:], default=default, on=on, name=ladder)


def _chain(steps: list[Step]) -> Step:
    out = steps[0]
    for s in steps[1:]:
        out = out >> s
    return out


def _is_kind(key: str) -> bool:
    return key in known_kinds()


def parse_pipeline(text: str, *, where: str = "<string>", base_dir: Path | None = None) -> PipelineFile:
    try:
        doc = yaml.load(text, Loader=_Loader)
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        at = f"{where}:{mark.line + 1}" if mark else where
        raise ConfigError(f"{at}: not valid YAML: {getattr(exc, 'problem', exc)}") from exc
    if not isinstance(doc, _Map):
        raise ConfigError(f"{where}: expected a mapping with 'bricks' and 'graph', found {type(doc).__name__}")
    base = base_dir or Path(".")
    parser = _Parser(doc, where, base)
    for key in doc:
        if key not in _TOP_KEYS:
            raise parser.fail(doc, key, f"one of {sorted(_TOP_KEYS)}", key)
    for key in ("bricks", "graph"):
        if key not in doc:
            raise ConfigError(f"{where}: missing required field {key!r}")
    if not isinstance(doc["bricks"], dict) or not doc["bricks"]:
        raise parser.fail(doc, "bricks", "a mapping of brick name to brick", doc["bricks"])
    defaults = StageOptions()
    if doc.get("defaults") is not None:
        d = doc["defaults"]
        if not isinstance(d, _Map):
            raise parser.fail(doc, "defaults", "a mapping of stage options", d)
        parser.check_keys(d, STAGE_KEYS, "stage option")
        parser.check_options(d)
        try:
            defaults = defaults.updated(**d)
        except (BrickworkError, TypeError) as exc:
            raise ConfigError(f"{where}:{doc.lines['defaults']}: defaults: {exc}") from exc
    if str(base.resolve()) not in sys.path:
        sys.path.insert(0, str(base.resolve()))
    for name, entry in doc["bricks"].items():
        parser.nodes[name] = parser.brick_node(name, entry, defaults.updated(batching=None))
    root = parser.step(doc["graph"], doc, "graph")
    inputs = None
    if doc.get("inputs") is not None:
        try:
            inputs = tuple(TensorSpec(t["name"], t.get("datatype", t.get("dtype")), t.get("shape"))
                           for t in doc["inputs"])
        except (BrickworkError, KeyError, TypeError) as exc:
            raise parser.fail(doc, "inputs", "a list of {name, datatype, shape}", doc["inputs"]) from exc
    outputs = doc.get("outputs")
    if outputs is not None and not (isinstance(outputs, list) and all(isinstance(o, str) for o in outputs)):
        raise parser.fail(doc, "outputs", "a list of tensor names", outputs)
    name = doc.get("name", "pipeline")
    if not isinstance(name, str) or not name.replace("-", "_").replace(".", "_").isidentifier():
        raise parser.fail(doc, "name", "a model name of letters, digits, '-', '_' or '.'", name)
    description = doc.get("description")
    if description is not None and not isinstance(description, str):
        raise parser.fail(doc, "description", "a string", description)
    descriptions = doc.get("descriptions") or {}
    if not (isinstance(descriptions, dict) and all(isinstance(k, str) and isinstance(v, str)
                                                   for k, v in descriptions.items())):
        raise parser.fail(doc, "descriptions", "a mapping of tensor name to text", descriptions)
    graph = Graph(root, name, tuple(outputs) if outputs else None, inputs)
    return PipelineFile(graph, defaults, doc.get("example"), None, description=description,
                        descriptions=descriptions)


def load_graph(path: str | Path) -> PipelineFile:
    """Parse a pipeline file (paths and Python modules resolve relative to it)."""
    p = Path(path)
    try:
        text = p.read_text(encoding="utf-8")
    except OSError as exc:
        raise ConfigError(f"cannot read pipeline file {str(p)!r}: {exc.strerror}") from exc
    parsed = parse_pipeline(text, where=str(p), base_dir=p.parent)
    parsed.path = p
    return parsed


def load_pipeline(path: str | Path, *, backend: Any = "local") -> Any:
    """Parse and compile a pipeline file into a runnable :class:`~brickwork.Pipeline`."""
    return load_graph(path).compile(backend=backend)

