"""Small requests through one process worker on uvloop: req/s and the engine process's CPU per
request (CPU time is what contention on a shared machine disturbs least).

    ROOT=$PWD PYTHONPATH=$PWD/src .venv/bin/python bench/process_hop.py
"""

from __future__ import annotations

import asyncio
import os
import sys
import time

import numpy as np
import uvloop

import brickwork as bw

CALLERS = 16
SECONDS = 4.0


async def main() -> None:
    sys.path.insert(0, os.environ.get("ROOT", "."))
    from tests.integration import engine_bricks as eb

    node = bw.function(eb.scale, name="scale", batch=True, inputs=[("x", "FP32", (-1, 4))],
                       outputs=[("y", "FP32", (-1, 4))], worker="process",
                       batching=bw.Batching(max_batch_size=8))
    async with node.compile() as pipeline:
        x = np.ones((1, 4), np.float32)

        async def caller(stop: float) -> int:
            n = 0
            while time.perf_counter() < stop:
                await pipeline.ainfer({"x": x})
                n += 1
            return n

        await asyncio.gather(*(caller(time.perf_counter() + 1.0) for _ in range(CALLERS)))  # warm-up
        stop = time.perf_counter() + SECONDS
        c0 = time.process_time()
        n = sum(await asyncio.gather(*(caller(stop) for _ in range(CALLERS))))
        cpu = time.process_time() - c0
        print(f"{n / SECONDS:.0f} req/s, engine CPU {1e6 * cpu / n:.0f} us/req")


if __name__ == "__main__":
    uvloop.run(main())
