from __future__ import annotations

from typing import Annotated, NamedTuple, TypedDict

import numpy as np
import pytest

import brickwork as bw
from brickwork.bricks import FunctionBrick
from brickwork.errors import ModelError, SpecError


def test_signature_from_scalar_hints():
    def score(text: str, amount: float, count: int, flag: bool) -> float:
        return 0.0

    sig = FunctionBrick(score).signature
    assert [(s.name, s.dtype, s.shape) for s in sig.inputs] == [
        ("text", "BYTES", (-1,)), ("amount", "FP64", (-1,)), ("count", "INT64", (-1,)), ("flag", "BOOL", (-1,))]
    assert [(s.name, s.dtype) for s in sig.outputs] == [("score", "FP64")]


class Out(TypedDict):
    label: str
    confidence: float


class Pair(NamedTuple):
    lo: int
    hi: int


def test_signature_from_annotated_arrays_and_typeddict():
    def classify(pixels: Annotated[np.ndarray, bw.Tensor("FP32", (8, 8))]) -> Out:
        return {"label": "a", "confidence": float(pixels.sum())}

    brick = FunctionBrick(classify)
    assert brick.signature.input("pixels").shape == (-1, 8, 8)
    assert brick.signature.output_names == ("label", "confidence")
    out = brick({"pixels": np.ones((2, 8, 8), np.float32)})
    assert out["label"].dtype == object and out["label"].tolist() == ["a", "a"]
    assert out["confidence"].tolist() == [64.0, 64.0]


def test_namedtuple_return_and_explicit_outputs():
    def split(x: int) -> Pair:
        return Pair(x - 1, x + 1)

    out = FunctionBrick(split)({"x": np.array([5, 7])})
    assert out["lo"].tolist() == [4, 6] and out["hi"].tolist() == [6, 8]

    def f(x: float) -> float:
        return x * 2

    brick = FunctionBrick(f, outputs="doubled")
    assert brick.signature.output_names == ("doubled",)
    assert brick({"x": np.array([1.0])})["doubled"].tolist() == [2.0]


def test_batch_function_gets_whole_arrays():
    def total(x: Annotated[np.ndarray, bw.Tensor("FP32", (3,))]) -> Annotated[np.ndarray, bw.Tensor("FP32")]:
        return x.sum(axis=1)

    brick = FunctionBrick(total, batch=True)
    assert brick.signature.output("total").shape == (-1,)
    assert brick({"x": np.ones((4, 3), np.float32)})["total"].tolist() == [3.0] * 4


def test_text_inputs_arrive_as_str_even_from_bytes():
    def shout(text: str) -> str:
        assert isinstance(text, str)
        return text.upper()

    out = FunctionBrick(shout)({"text": np.array([b"hi", "yo"], dtype=object)})
    assert out["shout"].tolist() == ["HI", "YO"]


def test_missing_hint_is_a_clear_spec_error():
    def bad(x):
        return x

    with pytest.raises(SpecError, match=r"parameter 'x': cannot infer a tensor spec .* bw.Tensor"):
        FunctionBrick(bad)


def test_raising_function_becomes_model_error_naming_item():
    def explode(x: int) -> int:
        if x == 3:
            raise ValueError("three is bad")
        return x

    with pytest.raises(ModelError, match="brick 'explode' raised ValueError on item 1: three is bad") as info:
        FunctionBrick(explode)({"x": np.array([1, 3])})
    assert isinstance(info.value.__cause__, ValueError)


def test_spec_is_an_import_path_for_module_level_functions():
    from examples.quickstart import steps

    spec = FunctionBrick(steps.decision).spec()
    assert spec.kind == "python" and spec.config == {"python": "examples.quickstart.steps:decision"}
    rebuilt = bw.bricks.brick_from_spec(spec)
    assert rebuilt({"probability": np.array([0.9, 0.1])})["decision"].tolist() == ["positive", "negative"]

    with pytest.raises(bw.ConfigError, match="cannot be rebuilt in another process"):
        FunctionBrick(lambda x: x, inputs={"x": "FP32"}, outputs={"y": "FP32"}).spec()


def test_spec_keeps_the_hinted_dtype_of_outputs_named_by_bare_name():
    """``outputs="pid"`` only names the output; its dtype comes from the return hint, and the
    spec a worker process rebuilds the brick from must say so (it said FP64 before)."""
    from tests.fixtures import textfns

    brick = FunctionBrick(textfns.length, outputs="n")
    assert brick.signature.outputs[0].dtype == "INT64"
    spec = brick.spec()
    assert spec.config["outputs"] == [{"name": "n", "datatype": "INT64", "shape": [-1]}]
    assert bw.bricks.brick_from_spec(spec).signature == brick.signature


def test_warmup_tries_64_long_dynamic_dims_then_1_and_records_a_failure(caplog):
    """The generic warm-up (every brick kind's): a model that needs at least 32 columns warms
    on the 64-long sample; one that rejects zeros of any size still serves, with the reason."""

    def wide(x: Annotated[np.ndarray, bw.Tensor("FP32", (-1,))]) -> Annotated[np.ndarray, bw.Tensor("FP32")]:
        if x.shape[1] < 32:
            raise ValueError(f"needs >= 32 columns, got {x.shape[1]}")
        return x.sum(axis=1)

    def never(x: Annotated[np.ndarray, bw.Tensor("FP32", (-1,))]) -> Annotated[np.ndarray, bw.Tensor("FP32")]:
        raise ValueError("zeros are not a real input")

    calls: list[tuple[int, ...]] = []
    brick = FunctionBrick(wide, batch=True)
    real_call = brick._call
    brick._call = lambda inputs: (calls.append(inputs["x"].shape), real_call(inputs))[1]  # type: ignore[method-assign]
    brick.warmup()
    assert calls == [(1, 64)] and brick.warmup_error is None

    failing = FunctionBrick(never, batch=True)
    with caplog.at_level("WARNING"):
        failing.warmup()
    assert failing.warmup_error is not None and "zeros are not a real input" in failing.warmup_error
    assert "warm-up of brick 'never' failed (it will still serve" in caplog.text


def test_a_bare_output_name_in_a_list_takes_the_hint_or_is_refused(tmp_path):
    """``outputs: [route]`` on a function returning text silently became FP64 (only a bare
    string took the hint); a declared output without a type takes the hint or is refused."""
    from brickwork.graph import parse_pipeline

    (tmp_path / "routes.py").write_text(
        "from typing import NamedTuple\n"
        "def route(text: str) -> str:\n    return 'fast' if len(text) < 5 else 'slow'\n"
        "class Both(NamedTuple):\n    route: str\n    size: int\n"
        "def both(text: str) -> Both:\n    return Both('a', len(text))\n"
        "def pair(text: str) -> tuple[str, int]:\n    return 'a', len(text)\n"
        "def unhinted(text: str):\n    return text\n")
    def load(entry: str):
        text = f"name: r\nbricks:\n  r: {{{entry}}}\ngraph: r\n"
        return parse_pipeline(text, base_dir=tmp_path).graph.root.brick.signature

    assert load("python: 'routes:route', outputs: [route]").outputs[0].dtype == "BYTES"
    assert [(s.name, s.dtype) for s in load("python: 'routes:both', outputs: [size, route]").outputs] == [
        ("size", "INT64"), ("route", "BYTES")]
    assert [(s.name, s.dtype) for s in load("python: 'routes:pair', outputs: [r, n]").outputs] == [
        ("r", "BYTES"), ("n", "INT64")]
    with pytest.raises(bw.ConfigError, match="output 'out' is declared without a datatype"):
        load("python: 'routes:unhinted', outputs: [out]")
    with pytest.raises(bw.ConfigError, match="input 'x' is declared without a datatype"):
        load("python: 'routes:route', inputs: [x]")
    assert load("python: 'routes:unhinted', outputs: [{name: out, datatype: BYTES}]").outputs[0].dtype == "BYTES"
