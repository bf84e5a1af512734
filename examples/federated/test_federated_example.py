"""The examples' CNN trained federated over 5 non-IID sites lands within 2 points of the same CNN
trained centrally on the union, and its ONNX export predicts what the trained model predicts."""

from __future__ import annotations

import dataclasses
from pathlib import Path

import numpy as np
import pytest

pytest.importorskip("torch")
ort = pytest.importorskip("onnxruntime")

from brickwork.federated import load_config, load_npz, run  # noqa: E402
from examples.federated import clients, data  # noqa: E402

HERE = Path(__file__).resolve().parent


@pytest.mark.slow
@pytest.mark.timeout(600)
def test_federated_cnn_within_2_points_of_central(tmp_path: Path) -> None:
    data.split(tmp_path / ".data")
    config = dataclasses.replace(load_config(HERE / "digits_cnn.yaml"), base_dir=str(tmp_path),
                                 client="examples.federated.clients:cnn")
    result = run(config)
    fed_acc = result.history[-1].accuracy
    assert all(r.status == "ok" for r in result.history)

    central = clients.cnn(str(tmp_path / ".data/union.npz"), **config.options)
    weights = central.get_weights()
    for _ in range(config.rounds):
        weights, _, _ = central.fit(weights, dict(config.fit))
    x, y = load_npz(tmp_path / ".data/test.npz")
    central.x_test, central.y_test = central.torch.from_numpy(x), central.torch.from_numpy(y)
    central_acc = central.evaluate(weights, {})[2]["accuracy"]
    assert central_acc > 0.95
    assert fed_acc is not None and fed_acc >= central_acc - 0.02, (fed_acc, central_acc)

    session = ort.InferenceSession(result.onnx, providers=["CPUExecutionProvider"])
    label, probs = session.run(["label", "probabilities"], {"input": x.astype(np.float32)})
    assert float(np.mean(label == y)) == pytest.approx(fed_acc, abs=0.005)
    np.testing.assert_allclose(probs.sum(axis=1), 1.0, atol=1e-5)
    assert Path(result.pipeline or "").read_text().count("onnx: digits_cnn.onnx") == 1
