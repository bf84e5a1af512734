"""Python bricks for the brickwork plug-in (imported by `brickwork serve` via PYTHONPATH).

Batched: x is (N,64) float32; each returns {"y": (N,k) float32}. BENCH_CACHE points at the
folder holding W.npy (set by run.py).
"""
import os

import numpy as np

_W = np.ascontiguousarray(
    np.load(os.path.join(os.environ["BENCH_CACHE"], "W.npy")).astype(np.float32))


def matmul(x: np.ndarray) -> dict:
    return {"y": np.asarray(x, dtype=np.float32) @ _W}


def softmax(x: np.ndarray) -> dict:
    z = np.asarray(x, dtype=np.float32)
    z = z - z.max(axis=1, keepdims=True)
    e = np.exp(z)
    return {"y": (e / e.sum(axis=1, keepdims=True)).astype(np.float32)}
