"""What tracing costs per request through a 3-stage in-process pipeline: off (the default) and
on (spans recorded by the SDK into a no-op processor). python bench/tracing_cost.py [N]"""

from __future__ import annotations

import asyncio
import sys
import time
from typing import Annotated

import numpy as np

import brickwork as bw
from brickwork import tracing

Vec = Annotated[np.ndarray, bw.Tensor("FP32", (4,))]


def a(x: Vec) -> Vec:
    return x + 1


def b(x: Vec) -> Vec:
    return x * 2


def c(x: Vec) -> Vec:
    return x - 1


async def run(n: int) -> float:
    g = bw.graph(bw.function(a, batch=True) >> bw.function(b, batch=True) >> bw.function(c, batch=True), name="p")
    p = g.compile()
    await p.start()
    x = {"x": np.ones((1, 4), np.float32)}
    for _ in range(200):
        await p.ainfer(x)
    t0 = time.perf_counter()
    for _ in range(n):
        await p.ainfer(x)
    took = time.perf_counter() - t0
    await p.aclose()
    return took / n * 1e6


def main() -> None:
    n = int(sys.argv[1]) if len(sys.argv) > 1 else 20000
    off = min(asyncio.run(run(n)) for _ in range(3))
    from opentelemetry.sdk.trace import TracerProvider

    tracing.enable(TracerProvider())
    on = min(asyncio.run(run(n)) for _ in range(3))
    tracing.disable()
    print(f"per request, 3 stages, best of 3 x {n}: tracing off {off:.1f} us, on {on:.1f} us")


if __name__ == "__main__":
    main()
