"""Bricks for the fault tests, importable by worker processes (they rebuild them by kind)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np

import brickwork as bw
from brickwork.bricks import register_kind


class GatedLoad(bw.BaseBrick):
    """y = 2x; ``load()`` fails while the file ``gate`` exists (a respawn that keeps failing,
    as under file-descriptor or memory pressure, for as long as the test wants)."""

    kind = "test-gated"
    blocking = True

    def __init__(self, gate: str, name: str = "gated") -> None:
        super().__init__(name, bw.Signature([bw.TensorSpec("x", "FP32", (-1,))],
                                            [bw.TensorSpec("y", "FP32", (-1,))]))
        self.gate = gate

    def _load(self) -> None:
        if Path(self.gate).exists():
            raise RuntimeError(f"cannot load while {self.gate} exists")

    def _call(self, inputs: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
        return {"y": (inputs["x"] * 2).astype(np.float32)}

    def spec(self) -> bw.BrickSpec:
        return bw.BrickSpec(self.kind, self.name, {"gate": self.gate})

    @classmethod
    def from_config(cls, config: dict[str, Any], base_dir: object, name: str) -> GatedLoad:
        return cls(config["gate"], name)


register_kind("test-gated", f"{__name__}:GatedLoad")
