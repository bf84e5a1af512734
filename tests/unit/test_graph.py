"""compile(): edges type-checked, adapters inserted and applied, every refusal explained."""

from __future__ import annotations

from typing import Annotated

import numpy as np
import pytest

import brickwork as bw
from brickwork.errors import GraphError, InterfaceMismatch


def as_f32(x: float) -> Annotated[np.ndarray, bw.Tensor("FP32", (1,))]:
    return np.array([x], np.float32)


def takes_f64(as_f32: float) -> float:
    return as_f32 * 2


def takes_i64(n: int) -> int:
    return n + 1


def test_sequence_inserts_squeeze_and_cast_and_applies_them():
    pipe = (bw.function(as_f32) >> bw.function(takes_f64)).compile()
    (stage, binding), = pipe.plan.adapters
    assert stage == "takes_f64"
    assert [str(a) for a in binding.adapters] == ["cast as_f32 to FP64", "squeeze(as_f32, axis=1)"]
    with pipe:
        assert pipe.infer({"x": [1.5, 2.0]})["takes_f64"].tolist() == [3.0, 4.0]


def test_lossless_int_cast_on_edge():
    def small(x: int) -> Annotated[np.ndarray, bw.Tensor("INT32")]:
        return np.int32(x)

    pipe = (bw.function(small).rename(outputs={"small": "n"}) >> bw.function(takes_i64)).compile()
    assert [str(a) for _, b in pipe.plan.adapters for a in b.adapters] == ["cast n to INT64"]
    with pipe:
        out = pipe.infer({"x": [4]})
    assert out["takes_i64"].dtype == np.int64 and out["takes_i64"].tolist() == [5]


def test_mismatch_names_both_bricks_ports_specs_and_fix():
    def f64(x: float) -> float:
        return x

    def wants_text(f64: str) -> str:
        return f64

    with pytest.raises(InterfaceMismatch) as info:
        (bw.function(f64) >> bw.function(wants_text)).compile()
    msg = str(info.value)
    assert "brick 'f64' output 'f64' f64: FP64[?]" in msg
    assert "brick 'wants_text' input 'f64' f64: BYTES[?]" in msg
    assert "insert a brick that decodes or encodes the text" in msg


def test_lossy_cast_is_refused_with_the_fix():
    def down(x: float) -> Annotated[np.ndarray, bw.Tensor("FP32")]:
        return np.float32(x)

    pipe_ok = bw.function(down).rename(outputs={"down": "v"})

    def wants_int(v: int) -> int:
        return v

    with pytest.raises(InterfaceMismatch, match=r"FP32 cannot become INT64 without loss; insert a cast brick"):
        (pipe_ok >> bw.function(wants_int)).compile()


def test_dangling_input_lists_what_is_available():
    def a(x: float) -> float:
        return x

    def b(y: float) -> float:
        return y

    with pytest.raises(GraphError, match=r"dangling input: brick 'b' input 'y' reads tensor 'y'.*"
                       r"Available here: \['a', 'x'\].*rename\(inputs="):
        (bw.function(a) >> bw.function(b)).compile()


def test_declared_inputs_allow_later_reads_and_rename_fixes_dangling():
    def a(x: float) -> float:
        return x + 1

    def b(y: float, x: float) -> float:
        return y * x

    g = bw.graph(bw.function(a) >> bw.function(b).rename(inputs={"y": "a"}), inputs=[bw.TensorSpec("x", "FP64")])
    with g.compile() as pipe:
        assert pipe.infer({"x": [2.0]})["b"].tolist() == [6.0]


def test_duplicate_names_are_refused():
    def a(x: float) -> float:
        return x

    def a2(x: float) -> float:
        return x

    with pytest.raises(GraphError, match="duplicate brick name 'a'"):
        (bw.function(a) >> bw.function(a2, name="a").rename(inputs={"x": "a"})).compile()
    with pytest.raises(GraphError, match=r"duplicate tensor name 'a'.*rename one"):
        bw.parallel(bw.function(a), bw.function(a2, outputs="a", name="other")).compile()


def test_unknown_port_in_rename_is_refused():
    def a(x: float) -> float:
        return x

    with pytest.raises(GraphError, match=r"brick 'a' has no input port 'nope'; ports are \['x'\]"):
        bw.function(a).rename(inputs={"nope": "x"})


def test_unknown_output_selection_is_refused():
    def a(x: float) -> float:
        return x

    with pytest.raises(GraphError, match="pipeline 'p' output 'zzz' is not published"):
        bw.graph(bw.function(a), name="p", outputs=["zzz"]).compile()


def test_cycle_is_refused():
    # a step containing itself cannot be built with frozen steps, so forge one
    def a(x: float) -> float:
        return x

    def b(a: float) -> float:
        return a

    seq = bw.function(a) >> bw.function(b)
    object.__setattr__(seq, "steps", (*seq.steps, seq))
    with pytest.raises(GraphError, match="cycle"):
        seq.compile()


def test_options_validate_with_clear_messages():
    def a(x: float) -> float:
        return x

    with pytest.raises(bw.ConfigError, match="replicas must be an int >= 1, got 0"):
        bw.function(a, replicas=0)
    with pytest.raises(bw.ConfigError, match=r"unknown option\(s\) \['replica'\]"):
        bw.function(a, replica=2)
    with pytest.raises(bw.ConfigError, match="preferred_batch_sizes must be ints in 1..max_batch_size"):
        bw.Batching(max_batch_size=4, preferred_batch_sizes=(8,))
    node = bw.function(a, replicas=2, timeout_s=0.5, batching={"max_batch_size": 8})
    assert node.options.replicas == 2 and node.options.policy.timeout_s == 0.5
    assert node.options.batching == bw.Batching(max_batch_size=8)


def test_plan_is_immutable_and_describes_itself():
    def a(x: float) -> float:
        return x

    plan = bw.function(a).compile(name="p").plan
    with pytest.raises(AttributeError):
        plan.name = "q"  # type: ignore[misc]
    assert "pipeline 'p': (x: FP64[?]) -> (a: FP64[?])" in plan.describe()


def test_default_worker_per_brick_kind_is_what_the_readme_says() -> None:
    # README "Where a brick runs when worker: is not given": python glue inline, a python
    # function that says blocking on a thread, model bricks on a thread; worker: wins.
    from pathlib import Path

    scorer = Path(__file__).resolve().parents[2] / "examples" / "quickstart" / "scorer.onnx"

    def glue(x: float) -> float:
        return x

    def heavy(x: float) -> float:
        return x

    def last(x: float) -> float:
        return x

    plan = (bw.function(glue, outputs="a") >> bw.function(heavy, blocking=True, outputs="b")
            >> bw.function(last, outputs="c", worker="process")).compile().plan
    assert {n: s.worker for n, s in plan.stages.items()} == {
        "glue": "inline", "heavy": "thread", "last": "process"}
    onnx_plan = bw.onnx(scorer, name="scorer").compile().plan
    assert onnx_plan.stages["scorer"].worker == "thread"
