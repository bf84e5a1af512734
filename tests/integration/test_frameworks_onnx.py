"""A real ONNX model, built here with onnx.helper, chained with Python bricks and run through
compile() and the executor; adapters compile() inserts are visible in the plan and applied."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import numpy as np
import pytest

import brickwork as bw

onnx = pytest.importorskip("onnx")
pytest.importorskip("onnxruntime")
from onnx import TensorProto, helper  # noqa: E402


def _save(path: Path, nodes, inputs, outputs, initializers=()) -> Path:
    graph = helper.make_graph(nodes, path.stem, inputs, outputs, list(initializers))
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)])
    onnx.checker.check_model(model)
    onnx.save(model, str(path))
    return path


@pytest.fixture
def affine(tmp_path: Path) -> Path:
    """score = x @ W + b with x: FP32 [N, 3] -> score: FP32 [N, 2]."""
    w = helper.make_tensor("W", TensorProto.FLOAT, [3, 2], [1, 0, 0, 1, 1, 1])
    b = helper.make_tensor("b", TensorProto.FLOAT, [2], [0.5, -0.5])
    return _save(
        tmp_path / "affine.onnx",
        [helper.make_node("MatMul", ["x", "W"], ["xw"]), helper.make_node("Add", ["xw", "b"], ["score"])],
        [helper.make_tensor_value_info("x", TensorProto.FLOAT, ["batch", 3])],
        [helper.make_tensor_value_info("score", TensorProto.FLOAT, ["batch", 2])],
        [w, b],
    )


@pytest.fixture
def doubler(tmp_path: Path) -> Path:
    """y = ids * 2 with ids: INT64 [N, 1]."""
    two = helper.make_tensor("two", TensorProto.INT64, [], [2])
    return _save(
        tmp_path / "doubler.onnx",
        [helper.make_node("Mul", ["ids", "two"], ["y"])],
        [helper.make_tensor_value_info("ids", TensorProto.INT64, ["N", 1])],
        [helper.make_tensor_value_info("y", TensorProto.INT64, ["N", 1])],
        [two],
    )


def features(
    text: str,
) -> Annotated[np.ndarray, bw.Tensor("FP32", (3,))]:
    return np.array([len(text), text.count(" ") + 1, text.count("!")], dtype=np.float32)


def decide(score: Annotated[np.ndarray, bw.Tensor("FP32", (2,))]) -> str:
    return "long" if score[0] > score[1] else "short"


def test_function_onnx_function_chain(affine: Path) -> None:
    graph = bw.function(features, outputs="x") >> bw.onnx(affine) >> bw.function(decide)
    with graph.compile() as pipeline:
        texts = ["hello world!", "a b c d e f", ""]
        result = pipeline.infer({"text": texts})
    x = np.stack([features(t) for t in texts])
    score = x @ np.array([[1, 0], [0, 1], [1, 1]], dtype=np.float32) + np.array([0.5, -0.5])
    assert list(pipeline.plan.stages) == ["features", "affine", "decide"]
    assert result["decide"].tolist() == ["long" if s[0] > s[1] else "short" for s in score]


def test_onnx_output_is_a_pipeline_output(affine: Path) -> None:
    graph = bw.function(features, outputs="x") >> bw.onnx(affine)
    with graph.compile() as pipeline:
        result = pipeline.infer({"text": ["ab", "abc!"]})
    np.testing.assert_allclose(result["score"], [[2.5, 0.5], [5.5, 1.5]])
    assert result["score"].dtype == np.float32


def count_words(
    text: str,
) -> Annotated[np.ndarray, bw.Tensor("INT32", ())]:
    return np.int32(len(text.split()))


def test_compile_inserts_cast_and_axis_and_they_are_applied(doubler: Path) -> None:
    """INT32 [N] from a Python brick into an ONNX port INT64 [N, 1]: compile() inserts a
    lossless cast and a size-1 axis, shows them in the plan, and the values come out right."""
    graph = bw.function(count_words, outputs="ids") >> bw.onnx(doubler, name="doubler")
    with graph.compile() as pipeline:
        adapters = pipeline.plan.adapters
        result = pipeline.infer({"text": ["one two three", "four", ""]})
    assert [(stage, b.port) for stage, b in adapters] == [("doubler", "ids")]
    kinds = [(a.kind, a.detail) for a in adapters[0][1].adapters]
    assert kinds == [("cast", "INT64"), ("expand_dims", "1")]
    assert "cast ids to INT64" in pipeline.plan.describe()
    assert result["y"].dtype == np.int64
    assert result["y"].tolist() == [[6], [2], [0]]


def test_wiring_by_rename_between_differently_named_ports(affine: Path) -> None:
    """The Python brick publishes 'vec'; the ONNX model reads 'x': a declared rename wires
    them, and it is that rename (no adapter) the plan records."""
    make = bw.function(features, outputs="vec")
    model = bw.onnx(affine).rename(inputs={"x": "vec"}, outputs={"score": "logits"})
    with (make >> model).compile() as pipeline:
        result = pipeline.infer({"text": ["ab"]})
    assert pipeline.plan.adapters == []
    np.testing.assert_allclose(result["logits"], [[2.5, 0.5]])


def test_lossy_edge_is_refused_naming_both_ends(affine: Path) -> None:
    def as_double(text: str) -> Annotated[np.ndarray, bw.Tensor("FP64", (3,))]:
        return np.zeros(3)

    with pytest.raises(bw.InterfaceMismatch, match=r"as_double.*affine.*FP64 cannot become FP32"):
        (bw.function(as_double, outputs="x") >> bw.onnx(affine)).compile()


def test_string_model_in_a_pipeline(tmp_path: Path) -> None:
    """BYTES in and out of ONNX Runtime: an ai.onnx.ml LabelEncoder maps words to codes and an
    Identity echoes the strings back; str and bytes items both work."""
    nodes = [
        helper.make_node("LabelEncoder", ["text"], ["code"], domain="ai.onnx.ml",
                         keys_strings=["cat", "dog"], values_int64s=[1, 2], default_int64=0),
        helper.make_node("Identity", ["text"], ["echo"]),
    ]
    graph = helper.make_graph(
        nodes, "words", [helper.make_tensor_value_info("text", TensorProto.STRING, ["N"])],
        [helper.make_tensor_value_info("code", TensorProto.INT64, ["N"]),
         helper.make_tensor_value_info("echo", TensorProto.STRING, ["N"])],
    )
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17),
                                                    helper.make_opsetid("ai.onnx.ml", 2)])
    path = tmp_path / "words.onnx"
    onnx.save(model, str(path))

    def shout(echo: str, code: int) -> str:
        return f"{echo.upper()}={code}"

    with (bw.onnx(path) >> bw.function(shout)).compile() as pipeline:
        result = pipeline.infer({"text": ["cat", b"dog", "emu"]})
    assert pipeline.plan.inputs[0].dtype == "BYTES"
    assert result["shout"].tolist() == ["CAT=1", "DOG=2", "EMU=0"]


def test_bad_request_is_invalid_input(affine: Path) -> None:
    with bw.onnx(affine).compile() as pipeline:
        with pytest.raises(bw.InvalidInput, match="'x'"):
            pipeline.infer({"x": np.zeros((2, 4), dtype=np.float32)})
