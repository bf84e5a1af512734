"""Property: a graph built in Python, written with dump_graph and read back by the YAML loader,
is the same graph — compared as whole structures (every step, every node's brick recipe,
renames and stage options, ladders with their names, defaults, on and default answers,
switches, groups, ensembles, named sub-graphs, declared outputs, the file's defaults), not as
descriptions."""

from __future__ import annotations

import json
import shutil
import tempfile
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

import brickwork as bw
from brickwork.bricks import FunctionBrick
from brickwork.graph import (
    Ensemble,
    Fallback,
    Graph,
    Node,
    Parallel,
    Sequence_,
    Step,
    Switch,
    dump_graph,
    parse_pipeline,
)
from brickwork.options import Autoscale, RayPlacement, StageOptions
from brickwork.testing import FakeBrick

FIXTURES = Path(__file__).resolve().parents[1] / "fixtures"


@pytest.fixture(scope="module")
def base_dir() -> Iterator[Path]:
    d = Path(tempfile.mkdtemp(prefix="bw-roundtrip-"))
    shutil.copy(FIXTURES / "textfns.py", d / "textfns.py")
    yield d
    shutil.rmtree(d, ignore_errors=True)


# -- structural comparison ----------------------------------------------------------------
def shape(step: Any) -> Any:
    """A graph as nested plain values: equal shapes = equal graphs."""
    if isinstance(step, Node):
        spec = step.brick.spec()
        recipe = json.loads(json.dumps({"kind": spec.kind, **spec.config}, sort_keys=True))
        return ("node", step.name, recipe, dict(step.inputs), dict(step.outputs), step.options)
    if isinstance(step, Sequence_):
        return ("seq", *(shape(s) for s in step.steps))
    if isinstance(step, Parallel):
        return ("par", *(shape(s) for s in step.branches))
    if isinstance(step, Switch):
        return ("switch", step.on, {k: shape(v) for k, v in step.cases.items()},
                shape(step.default) if step.default is not None else None, step.name, step.each)
    if isinstance(step, Ensemble):
        return ("ensemble", tuple(shape(m) for m in step.members), step.combiner, step.on,
                step.output, step.weights, step.label, step.name)
    if isinstance(step, Fallback):
        return ("fallback", shape(step.primary), tuple(shape(r) for r in step.rungs),
                json.loads(json.dumps(step.default)), step.on, step.name)
    if isinstance(step, Graph):
        return ("graph", step.name, shape(step.root), step.outputs, step.inputs)
    raise AssertionError(f"unknown step {step!r}")


# -- strategies ---------------------------------------------------------------------------
NAMES = st.sampled_from(["a", "b", "c", "d", "e"])
TEXT = st.text(alphabet="abcxyz_", min_size=1, max_size=6)

batching = st.builds(
    bw.Batching, max_batch_size=st.sampled_from([1, 4, 32]),
    max_delay_s=st.sampled_from([None, 0.0, 0.002]), max_queue_size=st.sampled_from([8, 1024]),
    target_latency_s=st.sampled_from([None, 0.05]),
)
breaker = st.builds(bw.Breaker, failures=st.integers(1, 5), failure_ratio=st.sampled_from([None, 0.5]),
                    window=st.sampled_from([10, 20]), reset_after_s=st.sampled_from([1.0, 5.0]),
                    half_open_probes=st.integers(1, 2))
options = st.fixed_dictionaries({}, optional={
    "batching": st.none() | batching,
    "replicas": st.integers(1, 3) | st.builds(
        Autoscale, min=st.integers(1, 2), max=st.integers(2, 4),
        down_after_s=st.sampled_from([30.0, 5.0])),
    "ray": st.none() | st.builds(RayPlacement, num_cpus=st.sampled_from([0, 1]),
                                 resources=st.sampled_from([{}, {"node_b": 1.0}]), spread=st.booleans(),
                                 data_plane=st.booleans()),
    "retry_backoff_s": st.sampled_from([None, 0.05, 0.2]),
    "retry_backoff_max_s": st.sampled_from([2.0, 1.0]),
    "max_down_s": st.sampled_from([None, 300.0, 10.0]),
    "worker": st.sampled_from([None, "inline", "thread", "process"]),
    "device": st.sampled_from(["cpu", "cuda:0"]),
    "timeout_s": st.sampled_from([None, 0.25, 2.0]),
    "retries": st.integers(0, 2),
    "retry_budget": st.sampled_from([0.1, 0.5]),
    "breaker": st.none() | breaker,
    "retry_on": st.sampled_from(["machinery", "any"]),
    "health_timeout_s": st.sampled_from([None, 30.0, 60.0]),
})


@st.composite
def bricks(draw: st.DrawFn, base_dir: Path) -> dict[str, Node]:
    """One Node per name (a YAML file has one entry per name): fake and python bricks."""
    out = {}
    for name in ("a", "b", "c", "d", "e"):
        opts = draw(options)
        if draw(st.booleans()):
            brick: Any = FakeBrick(name, scale=draw(st.sampled_from([1.0, -1.0, 2.5])),
                                   delay_s=draw(st.sampled_from([0.0, 0.01])),
                                   blocking=draw(st.booleans()))
            node = bw.brick(brick, **opts)
            if draw(st.booleans()):
                node = node.rename(outputs={"y": f"y_{name}"})
            if draw(st.booleans()):
                node = node.rename(inputs={"x": "x_in"})
        else:
            target = draw(st.sampled_from(["textfns:length", "textfns:english", "textfns:lang"]))
            node = bw.brick(FunctionBrick(target, name=name, blocking=draw(st.booleans()),
                                          base_dir=base_dir), **opts)
        out[name] = node
    return out


# a graph's structure as plain data (names only), built into steps against the drawn nodes
LEAF = st.tuples(st.just("node"), NAMES)


def _extend(inner: st.SearchStrategy[Any]) -> st.SearchStrategy[Any]:
    few = st.lists(inner, min_size=2, max_size=3).map(tuple)
    return (
        st.tuples(st.just("seq"), few)
        | st.tuples(st.just("par"), few)
        | st.tuples(st.just("switch"), TEXT, st.dictionaries(st.sampled_from(["en", "de", "fr"]), inner,
                                                              min_size=1, max_size=2),
                    st.none() | inner, st.none() | TEXT)
        | st.tuples(st.just("group"), TEXT, inner, st.none() | TEXT)
        | st.tuples(st.just("ensemble"), few, st.sampled_from(["majority", "weighted", "mean"]),
                    st.none() | TEXT, st.none() | TEXT, st.none() | TEXT)
        | st.tuples(st.just("fallback"), inner, st.lists(inner, min_size=1, max_size=2).map(tuple),
                    st.none() | st.dictionaries(TEXT, st.lists(st.integers(0, 3), min_size=1, max_size=2),
                                                min_size=1, max_size=1),
                    st.sampled_from(["machinery", "any"]), st.none() | TEXT)
        | st.tuples(st.just("graph"), inner, st.none() | st.lists(TEXT, min_size=1, max_size=2))
    )


TREES = st.recursive(LEAF, _extend, max_leaves=6)


class _Builder:
    def __init__(self, nodes: dict[str, Node]) -> None:
        self.nodes = nodes
        self.graphs = 0  # sub-graphs get distinct names: a file has one entry per name

    def build(self, tree: Any) -> Step:
        kind, *args = tree
        if kind == "node":
            return self.nodes[args[0]]
        if kind == "seq":
            return _chain([self.build(t) for t in args[0]])
        if kind == "par":
            return bw.parallel(*(self.build(t) for t in args[0]))
        if kind == "switch":
            on, cases, default, name = args
            return bw.switch(on, {k: self.build(v) for k, v in cases.items()},
                             default=self.build(default) if default is not None else None, name=name)
        if kind == "group":
            on, step, name = args
            return bw.group(on, self.build(step), name=name)
        if kind == "ensemble":
            members, combiner, on, label, name = args
            weights = [1.0 + i for i in range(len(members))] if combiner == "weighted" else None
            return bw.ensemble([self.build(m) for m in members], combiner=combiner, on=on,
                               weights=weights, label=label if combiner == "mean" else None, name=name)
        if kind == "fallback":
            primary, rungs, default, on, name = args
            return self.build(primary).fallback(*(self.build(r) for r in rungs), default=default,
                                                on=on, name=name)
        root, outputs = args
        self.graphs += 1
        name = f"g{self.graphs}"
        return bw.graph(self.build(root), name=name, outputs=outputs)


def _chain(xs: list[Step]) -> Step:
    out = xs[0]
    for x in xs[1:]:
        out = out >> x
    return out


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture,
                                                                   HealthCheck.too_slow])
@given(data=st.data())
def test_python_graph_survives_dump_and_load(base_dir: Path, data: st.DataObject) -> None:
    nodes = data.draw(bricks(base_dir))
    root = _Builder(nodes).build(data.draw(TREES))
    outputs = data.draw(st.none() | st.lists(TEXT, min_size=1, max_size=2))
    graph = bw.graph(root, name="p", outputs=outputs)
    defaults = data.draw(st.none() | options.map(lambda o: StageOptions().updated(**o)))

    text = dump_graph(graph, defaults=defaults)
    loaded = parse_pipeline(text, base_dir=base_dir)

    assert shape(loaded.graph) == shape(graph), text
    assert loaded.defaults == (defaults or StageOptions()), text
