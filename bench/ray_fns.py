"""Bricks of bench/ray.py, loaded by file in worker processes and Ray actors alike."""

from __future__ import annotations

from typing import Annotated

import numpy as np

from brickwork import Tensor

W = (np.random.default_rng(0).standard_normal((64, 64)).astype(np.float32) / 8.0)
BIG = 16 << 20  # float32 per item: 64 MiB


def matmul(x: Annotated[np.ndarray, Tensor("FP32", (64,))]) -> Annotated[np.ndarray, Tensor("FP32", (64,))]:
    return x @ W


def make(seed: Annotated[np.ndarray, Tensor("FP32", (1,))]) -> Annotated[np.ndarray, Tensor("FP32", (BIG,))]:
    out = np.empty((seed.shape[0], BIG), np.float32)
    out[:] = seed
    return out


def consume(big: Annotated[np.ndarray, Tensor("FP32", (BIG,))]) -> Annotated[np.ndarray, Tensor("FP64", ())]:
    return big[:, ::4096].sum(axis=1, dtype=np.float64)
