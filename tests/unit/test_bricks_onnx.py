"""OnnxBrick: signature from the model, calls, error translation, providers, recipe."""

from __future__ import annotations

import logging
from pathlib import Path

import numpy as np
import pytest

import brickwork as bw
from brickwork.bricks import BrickSpec, brick_from_spec

onnx = pytest.importorskip("onnx")
pytest.importorskip("onnxruntime")
from onnx import TensorProto, helper  # noqa: E402

from brickwork.bricks.onnx import OnnxBrick, choose_providers  # noqa: E402

CPU = "CPUExecutionProvider"


def _save(path: Path, nodes, inputs, outputs, initializers=(), ml: bool = False) -> Path:
    opsets = [helper.make_opsetid("", 17)] + ([helper.make_opsetid("ai.onnx.ml", 2)] if ml else [])
    graph = helper.make_graph(nodes, path.stem, inputs, outputs, list(initializers))
    onnx.save(helper.make_model(graph, opset_imports=opsets), str(path))
    return path


@pytest.fixture
def scale(tmp_path: Path) -> Path:
    """y = x * k (FP32 [batch, 3]); n = ids + 1 (INT64, no declared shape)."""
    k = helper.make_tensor("k", TensorProto.FLOAT, [], [3.0])
    one = helper.make_tensor("one", TensorProto.INT64, [], [1])
    return _save(
        tmp_path / "scale.onnx",
        [helper.make_node("Mul", ["x", "k"], ["y"]), helper.make_node("Add", ["ids", "one"], ["n"])],
        [helper.make_tensor_value_info("x", TensorProto.FLOAT, ["batch", 3]),
         helper.make_tensor_value_info("ids", TensorProto.INT64, None)],
        [helper.make_tensor_value_info("y", TensorProto.FLOAT, ["batch", 3]),
         helper.make_tensor_value_info("n", TensorProto.INT64, None)],
        [k, one],
    )


@pytest.fixture
def words(tmp_path: Path) -> Path:
    """BYTES [N] -> INT64 code [N] via an ai.onnx.ml LabelEncoder."""
    node = helper.make_node("LabelEncoder", ["text"], ["code"], domain="ai.onnx.ml",
                            keys_strings=["cat", "dog"], values_int64s=[1, 2], default_int64=0)
    return _save(tmp_path / "words.onnx", [node],
                 [helper.make_tensor_value_info("text", TensorProto.STRING, ["N"])],
                 [helper.make_tensor_value_info("code", TensorProto.INT64, ["N"])], ml=True)


def test_signature_is_read_from_the_model(scale: Path) -> None:
    brick = OnnxBrick(scale)
    assert brick.name == "scale"
    assert str(brick.signature) == "(x: FP32[?, 3], ids: INT64[?]) -> (y: FP32[?, 3], n: INT64[?])"
    assert brick.providers == [CPU]


def test_call_runs_the_session(scale: Path) -> None:
    brick = OnnxBrick(scale, name="s")
    out = brick({"x": np.ones((2, 3), np.float32), "ids": np.array([1, 5])})
    np.testing.assert_allclose(out["y"], np.full((2, 3), 3.0))
    assert out["n"].tolist() == [2, 6]


def test_string_inputs_accept_str_and_bytes(words: Path) -> None:
    brick = OnnxBrick(words)
    assert brick.signature.input("text").dtype == "BYTES"
    items = np.array(["dog", b"cat", "emu"], dtype=object)
    assert brick({"text": items})["code"].tolist() == [2, 1, 0]
    assert brick({"text": np.array(["cat", "dog"])})["code"].tolist() == [1, 2]  # numpy str_


@pytest.mark.parametrize(
    ("x", "match"),
    [
        (np.ones((2, 4), np.float32), r"input 'x'.*expected shape \[-1, 3\]"),
        (np.ones((2, 3), np.float64), r"input 'x'.*expected datatype FP32, got FP64"),
        (np.ones(3, np.float32), r"input 'x'.*expected rank 2"),
    ],
)
def test_bad_input_is_invalid_input_naming_the_port(scale: Path, x: np.ndarray, match: str) -> None:
    brick = OnnxBrick(scale)
    with pytest.raises(bw.InvalidInput, match=match):
        brick({"x": x, "ids": np.zeros(len(x), np.int64)})


def test_missing_or_unknown_input_is_invalid_input(scale: Path) -> None:
    brick = OnnxBrick(scale)
    with pytest.raises(bw.InvalidInput, match=r"missing \['ids'\], unknown \['z'\]"):
        brick({"x": np.ones((1, 3), np.float32), "z": np.ones(1)})


def test_runtime_failure_is_model_error_with_the_cause(tmp_path: Path) -> None:
    shape = helper.make_tensor("shape", TensorProto.INT64, [2], [-1, 8])
    path = _save(tmp_path / "pairs.onnx", [helper.make_node("Reshape", ["x", "shape"], ["y"])],
                 [helper.make_tensor_value_info("x", TensorProto.FLOAT, ["N", 4])],
                 [helper.make_tensor_value_info("y", TensorProto.FLOAT, ["M", 8])], [shape])
    brick = OnnxBrick(path)
    assert brick({"x": np.ones((2, 4), np.float32)})["y"].shape == (1, 8)
    with pytest.raises(bw.ModelError, match=r"brick 'pairs' \(ONNX Runtime\) failed") as info:
        brick({"x": np.ones((3, 4), np.float32)})
    assert type(info.value.__cause__).__name__ == "Fail"


def test_ort_invalid_argument_becomes_invalid_input(tmp_path: Path) -> None:
    table = helper.make_tensor("table", TensorProto.FLOAT, [3, 2], list(range(6)))
    path = _save(tmp_path / "embed.onnx", [helper.make_node("Gather", ["table", "ids"], ["v"])],
                 [helper.make_tensor_value_info("ids", TensorProto.INT64, ["N"])],
                 [helper.make_tensor_value_info("v", TensorProto.FLOAT, ["N", 2])], [table])
    with pytest.raises(bw.InvalidInput, match="rejected by ONNX Runtime.*out of data bounds"):
        OnnxBrick(path)({"ids": np.array([0, 7])})


def test_session_options_are_applied(scale: Path) -> None:
    brick = OnnxBrick(scale, intra_op_threads=1, inter_op_threads=1, optimization="basic")
    brick.load()
    opts = brick._session.get_session_options()
    assert (opts.intra_op_num_threads, opts.inter_op_num_threads) == (1, 1)
    assert "BASIC" in str(opts.graph_optimization_level)


@pytest.mark.parametrize(
    ("kwargs", "match"),
    [
        ({"intra_op_threads": 0}, "intra_op_threads must be an int >= 1"),
        ({"optimization": "max"}, "optimization must be one of"),
        ({"providers": ["NopeExecutionProvider"]}, r"\['NopeExecutionProvider'\] are not available"),
    ],
)
def test_bad_options_are_config_errors(scale: Path, kwargs: dict, match: str) -> None:
    with pytest.raises(bw.ConfigError, match=match):
        OnnxBrick(scale, **kwargs).load()


def test_missing_and_broken_files_are_config_errors(tmp_path: Path) -> None:
    with pytest.raises(bw.ConfigError, match="does not exist"):
        OnnxBrick(tmp_path / "nope.onnx")
    broken = tmp_path / "broken.onnx"
    broken.write_bytes(b"not a model")
    with pytest.raises(bw.ConfigError, match="ONNX Runtime cannot load"):
        OnnxBrick(broken).load()


def test_choose_providers() -> None:
    gpu = ["TensorrtExecutionProvider", "CUDAExecutionProvider", CPU]
    assert choose_providers(None, "cpu", gpu) == [CPU]
    assert choose_providers(None, "cuda:1", gpu) == [
        ("TensorrtExecutionProvider", {"device_id": 1}), ("CUDAExecutionProvider", {"device_id": 1}), CPU]
    assert choose_providers(None, "cuda", ["CUDAExecutionProvider", CPU]) == [
        ("CUDAExecutionProvider", {"device_id": 0}), CPU]
    assert choose_providers([("CUDAExecutionProvider", {"device_id": 2}), CPU], "cpu", gpu) == [
        ("CUDAExecutionProvider", {"device_id": 2}), CPU]


def test_cuda_without_gpu_providers_falls_back_to_cpu_and_says_so(
    scale: Path, caplog: pytest.LogCaptureFixture
) -> None:
    with caplog.at_level(logging.INFO, logger="brickwork.bricks.onnx"):
        brick = OnnxBrick(scale, device="cuda")
        brick.load()
    assert brick.providers == [CPU]
    assert "no CUDA/TensorRT provider" in caplog.text
    assert "providers ['CPUExecutionProvider']" in caplog.text


def test_warmup_uses_a_fixed_batch_axis(tmp_path: Path) -> None:
    path = _save(tmp_path / "fixed.onnx", [helper.make_node("Identity", ["x"], ["y"])],
                 [helper.make_tensor_value_info("x", TensorProto.FLOAT, [2, 3])],
                 [helper.make_tensor_value_info("y", TensorProto.FLOAT, [2, 3])])
    brick = OnnxBrick(path)
    assert brick.signature.input("x").shape == (2, 3)
    seen = []
    original = brick.run
    brick.run = lambda inputs, names: seen.append(inputs["x"].shape) or original(inputs, names)
    brick.warmup()
    assert seen == [(2, 3)]


def test_spec_rebuilds_the_same_brick(scale: Path) -> None:
    brick = OnnxBrick(scale, name="s", intra_op_threads=1, providers=[CPU])
    spec = brick.spec()
    assert spec.kind == "onnx" and spec.config["onnx"] == str(scale.resolve())
    again = brick_from_spec(spec)
    assert isinstance(again, OnnxBrick) and again.name == "s"
    assert again.signature == brick.signature
    assert again.intra_op_threads == 1 and again.providers == [CPU]


def test_from_config_resolves_paths_and_refuses_unknown_keys(scale: Path) -> None:
    spec = BrickSpec("onnx", "m", {"onnx": scale.name, "providers": [CPU], "replicas": 2},
                     base_dir=str(scale.parent))
    assert brick_from_spec(spec).signature.input_names == ("x", "ids")
    with pytest.raises(bw.ConfigError, match=r"unknown key\(s\) \['provider'\]"):
        brick_from_spec(BrickSpec("onnx", "m", {"onnx": str(scale), "provider": [CPU]}))


def test_close_drops_the_session_and_load_brings_it_back(scale: Path) -> None:
    brick = OnnxBrick(scale)
    brick.load()
    brick.close()
    assert brick._session is None
    assert brick({"x": np.zeros((1, 3), np.float32), "ids": np.zeros(1, np.int64)})["n"].tolist() == [1]
