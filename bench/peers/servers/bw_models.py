"""Python bricks for the brickwork plug-in (imported by `brickwork serve`; run.py puts this
folder on PYTHONPATH and points BENCH_CACHE at the folder holding W.npy).

Batch style (`batch: true` in the YAML): each receives and returns a whole (N,64) FP32 array;
the output's name comes from `outputs:` in the YAML.
"""
import os
from typing import Annotated

import numpy as np

import brickwork as bw

V64 = Annotated[np.ndarray, bw.Tensor("FP32", (64,))]
_W = np.ascontiguousarray(
    np.load(os.path.join(os.environ["BENCH_CACHE"], "W.npy")).astype(np.float32))


def matmul(x: V64) -> V64:
    return np.asarray(x, dtype=np.float32) @ _W


def softmax(z: V64) -> V64:
    z = np.asarray(z, dtype=np.float32)
    z = z - z.max(axis=1, keepdims=True)
    e = np.exp(z)
    return (e / e.sum(axis=1, keepdims=True)).astype(np.float32)
