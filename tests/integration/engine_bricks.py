"""Importable bricks for the engine tests: worker processes rebuild them from their import path."""

from __future__ import annotations

import os
import time
from typing import Annotated

import numpy as np

import brickwork as bw
from brickwork.bricks import register_kind

Vec = Annotated[np.ndarray, bw.Tensor("FP32", (4,))]


def scale(x: np.ndarray) -> np.ndarray:
    return (x * 2.0).astype(np.float32)


def total(y: np.ndarray) -> np.ndarray:
    return y.sum(axis=1, keepdims=True).astype(np.float32)


def echo(x: np.ndarray) -> np.ndarray:
    return x


def shout(text: str) -> str:
    return text.upper() + "!"


def slow_scale(x: np.ndarray) -> np.ndarray:
    """Sleeps 0.3 s per call (so a test can kill the worker mid-batch)."""
    time.sleep(float(os.environ.get("BW_TEST_SLOW_S", "0.3")))
    return (x * 2.0).astype(np.float32)


def picky(x: float) -> float:
    """Fails on the item 13.0 only."""
    if x == 13.0:
        raise ValueError("13 is unlucky")
    return x + 1.0


def crash_on_13(x: np.ndarray) -> np.ndarray:
    """Kills its own process when the batch holds 13.0 (a poison request)."""
    if (x == 13.0).any():
        os._exit(7)
    return (x * 2.0).astype(np.float32)


def pid(x: np.ndarray) -> np.ndarray:
    return np.full((x.shape[0], 1), os.getpid(), dtype=np.int64)


class DeviceBrick(bw.BaseBrick):
    """Answers, per item, the device the engine gave it and the pid it runs in."""

    kind = "test-device"
    blocking = True

    def __init__(self, name: str = "device") -> None:
        super().__init__(name, bw.Signature([bw.TensorSpec("x", "FP32", (-1,))],
                                            [bw.TensorSpec("device", "BYTES", (-1,)),
                                             bw.TensorSpec("pid", "INT64", (-1,))]))

    def _call(self, inputs: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
        n = inputs["x"].shape[0]
        device = np.empty(n, dtype=object)
        device[:] = self.device
        return {"device": device, "pid": np.full(n, os.getpid(), dtype=np.int64)}

    def spec(self) -> bw.BrickSpec:
        return bw.BrickSpec(self.kind, self.name, {})

    @classmethod
    def from_config(cls, config: dict, base_dir: object, name: str) -> DeviceBrick:
        return cls(name)


# registered here, in the engine's process only: the worker learns the kind from WorkerStart
register_kind("test-device", f"{__name__}:DeviceBrick")


def wide(x: float) -> Annotated[np.ndarray, bw.Tensor("FP64", ())]:
    """FP64 out: a consumer of FP32 needs a cast brick."""
    return np.float64(x)


def narrow(y: Annotated[np.ndarray, bw.Tensor("FP32", ())]) -> float:
    return float(y) * 2


def every_other(x: np.ndarray) -> np.ndarray:
    """A strided (not contiguous) output: the worker cannot copy it as one block."""
    return (x * 2.0).astype(np.float32)[:, ::2]


def fortran(x: np.ndarray) -> np.ndarray:
    """A Fortran-ordered output."""
    return np.asfortranarray((x * 2.0).astype(np.float32))
