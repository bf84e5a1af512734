"""Shared by every server app (runs inside each peer's own venv: stdlib + numpy + onnxruntime).

The models are built once by the bench (models.py) and stored in the cache dir:
  W.npy      64x64 FP32 (seeded) for `matmul` and stage 1 of `pipeline`
  mlp.onnx   MLP 64->256->10 (seeded) for `onnx`; input "x" [N,64], output "y" [N,10]
Every function here is batched along axis 0: (N,64) FP32 in, (N,k) FP32 out.
"""
from __future__ import annotations

import argparse
import os

import numpy as np

IN_DIM = 64


def parse_args(argv=None):
    p = argparse.ArgumentParser()
    p.add_argument("--model", choices=["matmul", "onnx", "pipeline"], default="matmul")
    p.add_argument("--port", type=int, required=True)
    p.add_argument("--cache", required=True)
    p.add_argument("--max-batch", type=int, default=32)
    p.add_argument("--max-delay-ms", type=float, default=1.0)
    p.add_argument("--extra-ports", default="", help="comma-separated spare free ports")
    p.add_argument("--workdir", default="")
    return p.parse_args(argv)


def load_w(cache: str) -> np.ndarray:
    return np.ascontiguousarray(np.load(os.path.join(cache, "W.npy")).astype(np.float32))


def softmax(z: np.ndarray) -> np.ndarray:
    z = z - z.max(axis=1, keepdims=True)
    e = np.exp(z)
    return (e / e.sum(axis=1, keepdims=True)).astype(np.float32)


def onnx_session(cache: str):
    import onnxruntime as ort

    so = ort.SessionOptions()
    so.intra_op_num_threads = 1
    so.inter_op_num_threads = 1
    return ort.InferenceSession(os.path.join(cache, "mlp.onnx"), so,
                                providers=["CPUExecutionProvider"])


def make_model(kind: str, cache: str):
    """Return f(x: (N,64) float32) -> (N,k) float32 for `kind` (the whole model, all stages)."""
    if kind == "matmul":
        w = load_w(cache)
        return lambda x: x @ w
    if kind == "pipeline":
        w = load_w(cache)
        return lambda x: softmax(x @ w)
    if kind == "onnx":
        sess = onnx_session(cache)
        return lambda x: sess.run(["y"], {"x": x})[0]
    raise ValueError(kind)
