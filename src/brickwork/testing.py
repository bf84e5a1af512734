"""A test kit for brickwork users: test your pipelines the way brickwork tests its own.

``FakeBrick`` passes its input through (or applies ``fn``) and misbehaves on request:

* ``delay_s``: sleep this long per call (a slow model);
* ``fail_on``: raise ``ValueError`` (a model error, HTTP 500) for items equal to this value;
* ``crash_on``: for items equal to this value, kill the worker process (``os._exit``) when
  running in a process worker, else raise ``WorkerCrashed``;
* ``hang_on``: for items equal to this value, block for ``hang_s`` (a hung model).

It has a kind (``fake``) and a JSON config, so process workers can rebuild it.
The server-in-a-thread helper lives in :mod:`brickwork.server` (``serve_in_thread``).
"""

from __future__ import annotations

import multiprocessing
import os
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np

from .bricks import BaseBrick, BrickSpec, import_object
from .errors import WorkerCrashed
from .spec import Signature, Tensors, TensorSpec, to_numpy_dtype

__all__ = ["FakeBrick"]


class FakeBrick(BaseBrick):
    kind = "fake"

    def __init__(
        self,
        name: str = "fake",
        *,
        dtype: str = "FP32",
        shape: tuple[int, ...] = (-1,),
        input_name: str = "x",
        output_name: str = "y",
        delay_s: float = 0.0,
        fail_on: float | None = None,
        crash_on: float | None = None,
        hang_on: float | None = None,
        hang_s: float = 3600.0,
        scale: float = 1.0,
        fn: str | None = None,
        blocking: bool = True,
    ) -> None:
        sig = Signature([TensorSpec(input_name, dtype, shape)], [TensorSpec(output_name, dtype, shape)])
        super().__init__(name, sig)
        self.config: dict[str, Any] = {
            "fake": True, "dtype": dtype, "shape": list(shape), "input_name": input_name,
            "output_name": output_name, "delay_s": delay_s, "fail_on": fail_on, "crash_on": crash_on,
            "hang_on": hang_on, "hang_s": hang_s, "scale": scale, "fn": fn, "blocking": blocking,
        }
        self.blocking = blocking
        self.calls = 0
        self.batch_sizes: list[int] = []
        self._fn: Callable[[np.ndarray], np.ndarray] | None = import_object(fn) if fn else None
        self._dtype = to_numpy_dtype(dtype)

    def warmup(self) -> None:
        """No warm-up call: tests count calls and batch sizes exactly."""

    def _call(self, inputs: Tensors) -> Tensors:
        c = self.config
        x = inputs[c["input_name"]]
        self.calls += 1
        self.batch_sizes.append(int(x.shape[0]) if x.ndim else 1)
        if c["delay_s"]:
            time.sleep(c["delay_s"])
        if c["hang_on"] is not None and np.any(x == c["hang_on"]):
            time.sleep(c["hang_s"])
        if c["crash_on"] is not None and np.any(x == c["crash_on"]):
            if multiprocessing.parent_process() is not None:
                os._exit(70)  # a real crash of the worker process
            raise WorkerCrashed(f"fake brick {self.name!r} crashed on {c['crash_on']}")
        if c["fail_on"] is not None and np.any(x == c["fail_on"]):
            raise ValueError(f"fake brick {self.name!r} fails on {c['fail_on']}")
        y = self._fn(x) if self._fn is not None else x * c["scale"]
        return {c["output_name"]: np.asarray(y, dtype=self._dtype)}

    def spec(self) -> BrickSpec:
        return BrickSpec(self.kind, self.name, dict(self.config))

    @classmethod
    def from_config(cls, config: dict[str, Any], base_dir: Path, name: str) -> FakeBrick:
        config = {k: v for k, v in config.items() if k != "fake"}
        if "shape" in config:
            config["shape"] = tuple(config["shape"])
        return cls(name, **config)
