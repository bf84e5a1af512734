"""Switch and fallback with real models: items routed to different sklearn/ONNX models, and
fallback ladders whose primary really fails (an ONNX session that raises, a crashed worker)."""

from __future__ import annotations

import warnings
from pathlib import Path
from typing import Any

import numpy as np
import pytest

import brickwork as bw

onnx = pytest.importorskip("onnx")
pytest.importorskip("onnxruntime")
pytest.importorskip("skl2onnx")
from onnx import TensorProto, helper  # noqa: E402
from sklearn.datasets import load_digits  # noqa: E402
from sklearn.ensemble import RandomForestClassifier  # noqa: E402
from sklearn.linear_model import LogisticRegression  # noqa: E402
from sklearn.neural_network import MLPClassifier  # noqa: E402


@pytest.fixture(scope="module")
def digits() -> dict[str, Any]:
    x, y = load_digits(return_X_y=True)
    x = (x / 16.0).astype(np.float32)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        models = {
            "linear": LogisticRegression(C=0.2, max_iter=300).fit(x[:1000], y[:1000]),
            "forest": RandomForestClassifier(n_estimators=8, max_depth=6,
                                             random_state=0).fit(x[:1000], y[:1000]),
            "mlp": MLPClassifier((16,), max_iter=100, random_state=0).fit(x[:1000], y[:1000]),
        }
    return {"x": x[1000:], "y": y[1000:], "models": models}


def test_switch_routes_each_item_to_its_model(digits: dict[str, Any]) -> None:
    models, x = digits["models"], digits["x"]
    graph = bw.switch(
        "route",
        {"linear": bw.sklearn(models["linear"], name="linear", to_onnx=True),
         "forest": bw.sklearn(models["forest"], name="forest")},
        default=bw.sklearn(models["mlp"], name="mlp", to_onnx=True),
        name="router",
    )
    preds = {n: m.predict(x.astype(np.float64)) for n, m in models.items()}
    # items where the three models disagree prove which model answered each one
    split = np.flatnonzero((preds["linear"] != preds["forest"]) | (preds["forest"] != preds["mlp"]))
    assert len(split) >= 6
    items = x[split[:6]]
    route = ["linear", "forest", "other", "forest", "linear", "other"]
    with graph.compile() as pipeline:
        result = pipeline.infer({"route": route, "features": items})
    expected = [preds["mlp" if r == "other" else r][split[i]] for i, r in enumerate(route)]
    assert result["label"].tolist() == expected
    # the native forest reads FP64; compile() cast the FP32 pipeline input for it
    assert [(s, [a.kind for a in b.adapters]) for s, b in pipeline.plan.adapters] == [
        ("forest", ["cast"])]


def _even_batch_model(path: Path) -> Path:
    """score = x @ W, via a Reshape to [-1, 8] and back: ONNX Runtime fails on odd batches."""
    w = helper.make_tensor("W", TensorProto.FLOAT, [4, 2], [1, 0, 0, 1, 1, 0, 0, 1])
    pair = helper.make_tensor("pair", TensorProto.INT64, [2], [-1, 8])
    back = helper.make_tensor("back", TensorProto.INT64, [2], [-1, 4])
    nodes = [helper.make_node("Reshape", ["x", "pair"], ["x2"]),
             helper.make_node("Reshape", ["x2", "back"], ["x1"]),
             helper.make_node("MatMul", ["x1", "W"], ["score"])]
    graph = helper.make_graph(nodes, "even", [helper.make_tensor_value_info("x", TensorProto.FLOAT, ["N", 4])],
                              [helper.make_tensor_value_info("score", TensorProto.FLOAT, ["N", 2])],
                              [w, pair, back])
    onnx.save(helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)]), str(path))
    return path


def _plain_model(path: Path) -> Path:
    w = helper.make_tensor("W", TensorProto.FLOAT, [4, 2], [1, 0, 0, 1, 1, 0, 0, 1])
    graph = helper.make_graph([helper.make_node("MatMul", ["x", "W"], ["score"])], "plain",
                              [helper.make_tensor_value_info("x", TensorProto.FLOAT, ["N", 4])],
                              [helper.make_tensor_value_info("score", TensorProto.FLOAT, ["N", 2])],
                              [w])
    onnx.save(helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)]), str(path))
    return path


def test_fallback_when_the_onnx_session_raises(tmp_path: Path) -> None:
    primary = bw.onnx(_even_batch_model(tmp_path / "big.onnx"), name="big")
    backup = bw.onnx(_plain_model(tmp_path / "small.onnx"), name="small")
    x = np.arange(12, dtype=np.float32).reshape(3, 4)
    expected = x @ np.array([[1, 0], [0, 1], [1, 0], [0, 1]], dtype=np.float32)
    with primary.fallback(backup, on="any", name="ladder").compile() as pipeline:
        odd = pipeline.infer({"x": x})  # the primary's session raises on 3 rows
        even = pipeline.infer({"x": x[:2]})
    assert odd.rungs == {"ladder": "small"}
    assert odd.degraded
    np.testing.assert_allclose(odd["score"], expected)
    assert even.rungs == {"ladder": "big"}
    assert not even.degraded
    np.testing.assert_allclose(even["score"], expected[:2])


def test_model_error_is_not_a_machinery_failure(tmp_path: Path) -> None:
    """By default only machinery failures climb the ladder: the model's own error surfaces,
    translated at the edge with ONNX Runtime's exception as its cause."""
    primary = bw.onnx(_even_batch_model(tmp_path / "big.onnx"), name="big")
    backup = bw.onnx(_plain_model(tmp_path / "small.onnx"), name="small")
    with primary.fallback(backup).compile() as pipeline:
        with pytest.raises(bw.ModelError, match="big") as info:
            pipeline.infer({"x": np.zeros((3, 4), dtype=np.float32)})
    assert type(info.value.__cause__).__name__ == "Fail"


def test_fallback_when_the_worker_crashes(digits: dict[str, Any]) -> None:
    models, x = digits["models"], digits["x"][:7]

    def crashed(features: np.ndarray) -> np.ndarray:
        if features.any():  # survives the warm-up batch of zeros, dies on real pages
            raise bw.WorkerCrashed("worker 'gpu-big' died (exit code -9)")
        return np.zeros(len(features), dtype=np.int64)

    primary = bw.function(crashed, batch=True, inputs=[bw.TensorSpec("features", "FP32", (-1, 64))],
                          outputs=[bw.TensorSpec("label", "INT64", (-1,))], name="big")
    backup = bw.sklearn(models["linear"], name="linear_onnx", to_onnx=True)
    ladder = primary.fallback(backup, default={"label": -1}, name="digits")
    with ladder.compile() as pipeline:
        result = pipeline.infer({"features": x})
    assert result.rungs == {"digits": "linear_onnx"}
    assert result.degraded
    assert result["label"].tolist() == models["linear"].predict(x).tolist()


def test_fallback_to_the_default_when_every_model_fails(tmp_path: Path) -> None:
    def crashed(x: np.ndarray) -> np.ndarray:
        if x.any():
            raise bw.WorkerCrashed("gone")
        return np.zeros((len(x), 2), dtype=np.float32)

    primary = bw.function(crashed, batch=True, inputs=[bw.TensorSpec("x", "FP32", (-1, 4))],
                          outputs=[bw.TensorSpec("score", "FP32", (-1, 2))], name="gone")
    flaky = bw.onnx(_even_batch_model(tmp_path / "big.onnx"), name="big")
    ladder = bw.fallback(primary, flaky, default={"score": [0.0, 0.0]}, on="any", name="ladder")
    with ladder.compile() as pipeline:
        result = pipeline.infer({"x": np.ones((3, 4), dtype=np.float32)})
    assert result.rungs == {"ladder": "default"}
    assert result["score"].tolist() == [[0.0, 0.0]] * 3
