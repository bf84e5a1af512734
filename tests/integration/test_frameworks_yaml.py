"""Framework bricks from a pipeline file: the YAML forms docs/bricks.md documents."""

from __future__ import annotations

import warnings
from pathlib import Path

import numpy as np
import pytest

pytest.importorskip("onnxruntime")
pytest.importorskip("skl2onnx")
torch = pytest.importorskip("torch")
import joblib  # noqa: E402
from onnx import TensorProto, helper, save  # noqa: E402
from sklearn.datasets import load_digits  # noqa: E402
from sklearn.linear_model import LogisticRegression  # noqa: E402

from brickwork.graph._yaml import load_pipeline  # noqa: E402


def test_onnx_sklearn_and_torch_bricks_from_yaml(tmp_path: Path) -> None:
    x, y = load_digits(return_X_y=True)
    x = (x / 16.0).astype(np.float32)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        model = LogisticRegression(C=0.2, max_iter=300).fit(x[:1000], y[:1000])
    (tmp_path / "models").mkdir()
    joblib.dump(model, tmp_path / "models" / "lr.joblib")
    # an ONNX "scaler" in front: pixels 0..16 -> 0..1
    k = helper.make_tensor("k", TensorProto.FLOAT, [], [1 / 16])
    graph = helper.make_graph([helper.make_node("Mul", ["pixels", "k"], ["features"])], "scale",
                              [helper.make_tensor_value_info("pixels", TensorProto.FLOAT, ["N", 64])],
                              [helper.make_tensor_value_info("features", TensorProto.FLOAT, ["N", 64])],
                              [k])
    save(helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)]),
         str(tmp_path / "models" / "scale.onnx"))
    torch.export.save(
        torch.export.export(torch.nn.Softmax(dim=-1), (torch.zeros(2, 10),),
                            dynamic_shapes=({0: torch.export.Dim("batch")},)),
        str(tmp_path / "models" / "softmax.pt2"))
    (tmp_path / "digits.yaml").write_text(
        "name: digits\n"
        "bricks:\n"
        "  scale: {onnx: models/scale.onnx, providers: [CPUExecutionProvider], intra_op_threads: 1}\n"
        "  lr: {sklearn: models/lr.joblib, method: predict_proba, to_onnx: true, replicas: 1}\n"
        "  soft: {torch: models/softmax.pt2, inputs: {probabilities: [FP32, [-1, 10]]},"
        " outputs: {smooth: [FP32, [-1, 10]]}}\n"
        "graph: scale >> lr >> soft\n"
        "outputs: [label, smooth]\n"
    )
    pipeline = load_pipeline(tmp_path / "digits.yaml")
    with pipeline:
        out = pipeline.infer({"pixels": x[1000:1100] * 16})
    assert pipeline.plan.stages["lr"].brick._onnx is not None
    assert pipeline.plan.stages["scale"].brick.providers == ["CPUExecutionProvider"]
    assert out["label"].tolist() == model.predict(x[1000:1100]).tolist()
    expected = torch.softmax(torch.from_numpy(model.predict_proba(x[1000:1100])).float(), -1)
    np.testing.assert_allclose(out["smooth"], expected.numpy(), atol=1e-5)
