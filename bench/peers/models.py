"""The benchmark's models, built once into bench/peers/.cache with fixed seeds.

  matmul   y = x @ W, W a fixed 64x64 FP32 matrix (seed 0)                   (N,64) -> (N,64)
  onnx     MLP 64 -> 256 (ReLU) -> 10, fixed weights (seed 1), run with onnxruntime  -> (N,10)
  pipeline 2 stages: matmul -> softmax (same W)                              (N,64) -> (N,64)

`reference(kind, x)` is numpy's answer that every server response is checked against.
"""
from __future__ import annotations

from pathlib import Path

import numpy as np

CACHE = Path(__file__).resolve().parent / ".cache"
OUT_DIM = {"matmul": 64, "onnx": 10, "pipeline": 64}
MODEL_NAME = {"matmul": "matmul", "onnx": "onnx", "pipeline": "pipeline"}


def weights():
    w = np.random.default_rng(0).standard_normal((64, 64)).astype(np.float32) / 8.0
    r = np.random.default_rng(1)
    w1 = (r.standard_normal((64, 256)) / 8.0).astype(np.float32)
    b1 = (r.standard_normal(256) / 10.0).astype(np.float32)
    w2 = (r.standard_normal((256, 10)) / 16.0).astype(np.float32)
    b2 = (r.standard_normal(10) / 10.0).astype(np.float32)
    return w, (w1, b1, w2, b2)


def build(cache: Path = CACHE) -> Path:
    """Write W.npy and mlp.onnx into `cache` (idempotent) and return the folder."""
    cache.mkdir(parents=True, exist_ok=True)
    w, (w1, b1, w2, b2) = weights()
    np.save(cache / "W.npy", w)
    onnx_path = cache / "mlp.onnx"
    if not onnx_path.exists():
        import onnx
        from onnx import TensorProto, helper, numpy_helper

        inits = [numpy_helper.from_array(a, n) for a, n in ((w1, "w1"), (b1, "b1"),
                                                              (w2, "w2"), (b2, "b2"))]
        nodes = [helper.make_node("MatMul", ["x", "w1"], ["h0"]),
                 helper.make_node("Add", ["h0", "b1"], ["h1"]),
                 helper.make_node("Relu", ["h1"], ["h2"]),
                 helper.make_node("MatMul", ["h2", "w2"], ["h3"]),
                 helper.make_node("Add", ["h3", "b2"], ["y"])]
        graph = helper.make_graph(
            nodes, "mlp_64_256_10",
            [helper.make_tensor_value_info("x", TensorProto.FLOAT, ["N", 64])],
            [helper.make_tensor_value_info("y", TensorProto.FLOAT, ["N", 10])], inits)
        model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)],
                                  producer_name="brickwork-bench")
        model.ir_version = 8  # readable by older onnxruntime releases too
        onnx.checker.check_model(model)
        tmp = onnx_path.with_suffix(".tmp")
        onnx.save(model, tmp)
        tmp.replace(onnx_path)
    return cache


def reference(kind: str, x: np.ndarray) -> np.ndarray:
    """numpy's answer for a batch x (N,64) float32."""
    w, (w1, b1, w2, b2) = weights()
    x = x.astype(np.float32)
    if kind == "matmul":
        return x @ w
    if kind == "pipeline":
        z = x @ w
        z = z - z.max(axis=1, keepdims=True)
        e = np.exp(z)
        return e / e.sum(axis=1, keepdims=True)
    if kind == "onnx":
        return np.maximum(x @ w1 + b1, 0) @ w2 + b2
    raise ValueError(kind)


def inputs(n: int, seed: int = 42) -> np.ndarray:
    return np.random.default_rng(seed).standard_normal((n, 64)).astype(np.float32)
