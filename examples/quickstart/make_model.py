"""Writes scorer.onnx: a fixed logistic model features FP32[N,4] → probability FP32[N,1].

Run it to rebuild the committed file: python examples/quickstart/make_model.py
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import onnx
from onnx import TensorProto, helper, numpy_helper


def build(path: Path) -> Path:
    w = numpy_helper.from_array(np.array([[1.5], [-1.8], [0.3], [0.0]], dtype=np.float32), "W")
    b = numpy_helper.from_array(np.array([0.0], dtype=np.float32), "B")
    graph = helper.make_graph(
        [
            helper.make_node("MatMul", ["features", "W"], ["logit0"]),
            helper.make_node("Add", ["logit0", "B"], ["logit"]),
            helper.make_node("Sigmoid", ["logit"], ["probability"]),
        ],
        "scorer",
        [helper.make_tensor_value_info("features", TensorProto.FLOAT, ["batch", 4])],
        [helper.make_tensor_value_info("probability", TensorProto.FLOAT, ["batch", 1])],
        initializer=[w, b],
    )
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)])
    model.ir_version = 8
    onnx.checker.check_model(model)
    onnx.save(model, path)
    return path


if __name__ == "__main__":
    print(build(Path(__file__).with_name("scorer.onnx")))
