"""The Python cost of one request through the native HTTP front and the app, in process: a
Connection on a fake transport fed one request at a time (no sockets, no client), best of 5
rounds of process CPU time. Steadier than wrk on a shared machine. Run it on two trees:

    PYTHONPATH=/tmp/base/src python bench/server_inproc.py old
    PYTHONPATH=src python bench/server_inproc.py new
"""

from __future__ import annotations

import asyncio
import socket
import sys
import time
from typing import Annotated, Any

import numpy as np
import uvloop

import brickwork as bw
from brickwork.server import App
from brickwork.server._http import Connection, HttpServer

Vec = Annotated[np.ndarray, bw.Tensor("FP32", (4,))]
BODY = b'{"inputs":[{"name":"x","datatype":"FP32","shape":[1,4],"data":[1,2,3,4]}]}'
INFER = (b"POST /v2/models/m/infer HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\n"
         b"Content-Length: %d\r\n\r\n%s" % (len(BODY), BODY))
LIVE = b"GET /v2/health/live HTTP/1.1\r\nHost: x\r\n\r\n"


def dbl(x: Vec) -> Vec:
    return x * 2


class FakeTransport:
    def write(self, data: bytes) -> None: ...
    def writelines(self, parts: Any) -> None: ...
    def pause_reading(self) -> None: ...
    def resume_reading(self) -> None: ...
    def is_closing(self) -> bool:
        return False
    def close(self) -> None: ...
    def get_extra_info(self, key: str) -> None: ...
    def set_write_buffer_limits(self, high: int | None = None) -> None: ...


async def main() -> None:
    app = App([bw.function(dbl, outputs="y", batch=True, blocking=False).compile(name="m")])
    srv = HttpServer(app, socket.socket())
    srv.loop = asyncio.get_running_loop()
    await app.startup()
    conn = Connection(srv)
    conn.connection_made(FakeTransport())  # type: ignore[arg-type]
    out = {}
    for name, raw, n in (("live", LIVE, 20000), ("infer", INFER, 5000)):
        best = 1e9
        for _ in range(5):
            t = time.process_time()
            for _ in range(n):
                conn.data_received(raw)
                if conn.busy:  # answered in a task or from the engine's future (else at once)
                    await conn.task  # type: ignore[misc]
            best = min(best, (time.process_time() - t) / n * 1e6)
        out[name] = best
    await app.shutdown()
    print(sys.argv[1] if len(sys.argv) > 1 else "", " ".join(f"{k} {v:.1f} µs" for k, v in out.items()))


if __name__ == "__main__":
    uvloop.run(main())
