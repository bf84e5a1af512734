"""What the access log costs a request, measured in-process so that the shared machine's noise
hits both sides alike: the server's whole answer to a v2 infer request (``App.handle``: parse
the JSON body, run a one-brick pipeline, encode the response) timed with the access log off and
on (text and JSON lines through the handler ``brickwork serve --access-log`` installs, written
to a file), in alternating rounds, best round of each. The HTTP layer (~13 µs, see
server/_http.py) is not in the figure, so the relative cost through a socket is lower still.

    .venv/bin/python bench/access_log.py
"""

from __future__ import annotations

import asyncio
import logging
import os
import tempfile
import time
from typing import Annotated

import numpy as np
import orjson

import brickwork as bw
from brickwork.server import App, ServerConfig
from brickwork.server._log import configure

N = 5_000
ROUNDS = 7
BODY = orjson.dumps({"id": "req-1", "inputs": [
    {"name": "x", "datatype": "FP32", "shape": [1, 4], "data": [1, 2, 3, 4]}]})
HEADERS = [(b"content-type", b"application/json")]


def ident(x: Annotated[np.ndarray, bw.Tensor("FP32", (4,))]) -> Annotated[np.ndarray, bw.Tensor("FP32", (4,))]:
    return x


async def per_request_us(app: App) -> float:
    path = "/v2/models/pipeline/infer"
    t0 = time.process_time()
    for _ in range(N):
        status, _, out = await app.handle("POST", path, HEADERS, BODY)
        assert status == 200, out
    return (time.process_time() - t0) / N * 1e6


async def main() -> None:
    fd, path = tempfile.mkstemp(suffix=".log")
    os.close(fd)
    results: dict[str, list[float]] = {"off": [], "text": [], "json": []}
    try:
        with open(path, "w") as stream:
            apps = {}
            for mode in results:
                handler = configure(level="info", fmt="json" if mode == "json" else "text", stream=stream)
                pipeline = bw.function(ident, batch=True).compile()
                app = App([pipeline], ServerConfig(access_log=mode != "off"))
                await app.startup()
                apps[mode] = (app, handler)
            root = logging.getLogger()
            for _ in range(ROUNDS):
                for mode, (app, handler) in apps.items():
                    for h in [h for h in root.handlers if h is not handler]:
                        root.removeHandler(h)
                    root.addHandler(handler)
                    results[mode].append(await per_request_us(app))
            for app, handler in apps.values():
                await app.shutdown()
                handler.flush()
                root.removeHandler(handler)
        lines = sum(1 for _ in open(path))
    finally:
        os.unlink(path)
    off = min(results["off"])
    print(f"App.handle, one infer request, best of {ROUNDS} rounds of {N} ({lines} log lines written)")
    for mode, values in results.items():
        best = min(values)
        print(f"  access log {mode:<4}  {best:7.2f} us/request   {off / best * 100:5.1f} % of the "
              f"throughput with it off   (+{best - off:.2f} us)")


if __name__ == "__main__":
    asyncio.run(main())
