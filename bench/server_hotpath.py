"""The server's per-request CPU on bench/peers' matmul model, in process, under concurrency: the
native HTTP front (a Connection per client on a fake transport), the app, the v2 codec and the
engine, with ``--clients`` requests in flight at once (as wrk's 32 connections keep them), so
requests batch as they do under load. No sockets, no load generator: process CPU time only,
best of ``--rounds``. ``--floor`` runs bench/peers' raw floor protocol (httptools + orjson, a
fixed answer) the same way, for the ratio. ``--profile`` prints cProfile's top functions.

    PYTHONPATH=src python bench/server_hotpath.py                 # this tree
    PYTHONPATH=/tmp/base/src python bench/server_hotpath.py       # another tree (A/B)
    PYTHONPATH=src python bench/server_hotpath.py --floor
    PYTHONPATH=src python bench/server_hotpath.py --profile
    PYTHONPATH=src python bench/server_hotpath.py --breakdown       # each part alone

The model, body and YAML are bench/peers' (``y = x @ W``, W 64x64 FP32, one 64-float vector per
request as JSON; batching 32, 1 ms).
"""

from __future__ import annotations

import argparse
import asyncio
import os
import socket
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import numpy as np
import orjson
import uvloop

HERE = Path(__file__).resolve().parent
YAML = """name: matmul
defaults:
  batching: {max_batch_size: 32, max_delay_s: 0.001}
bricks:
  matmul: {python: "bw_models:matmul", batch: true, outputs: y}
graph: matmul
"""


def _bodies(n: int) -> list[bytes]:
    rng = np.random.default_rng(42)
    out = []
    for _ in range(n):
        x = rng.standard_normal(64).astype(np.float32)
        body = orjson.dumps({"inputs": [{"name": "x", "shape": [1, 64], "datatype": "FP32",
                                         "data": x.tolist()}]})
        out.append(b"POST /v2/models/matmul/infer HTTP/1.1\r\nHost: 127.0.0.1\r\n"
                   b"Content-Type: application/json\r\nContent-Length: %d\r\n\r\n%s" % (len(body), body))
    return out


class FakeTransport:
    def __init__(self) -> None:
        self.out = 0
        self.last = b""

    def write(self, data: bytes) -> None:
        self.out += 1
        self.last = data

    def writelines(self, parts: Any) -> None:
        self.out += 1

    def pause_reading(self) -> None: ...
    def resume_reading(self) -> None: ...
    def is_closing(self) -> bool:
        return False
    def close(self) -> None: ...
    def get_extra_info(self, key: str) -> None: ...
    def set_write_buffer_limits(self, high: int | None = None) -> None: ...


async def _drive(conns: list[Any], transports: list[FakeTransport], reqs: list[bytes], n: int,
                 rounds: int) -> float:
    """Feed each connection a request, wait until every one is answered, repeat; best of
    ``rounds`` (µs of process CPU per request)."""
    best = 1e9
    k = len(conns)
    for _ in range(rounds):
        t = time.process_time()
        done = 0
        i = 0
        while done < n:
            want = [tr.out + 1 for tr in transports]
            for c in conns:
                c.data_received(reqs[i % len(reqs)])
                i += 1
            while any(tr.out < w for tr, w in zip(transports, want)):
                await asyncio.sleep(0)
            done += k
        best = min(best, (time.process_time() - t) / done * 1e6)
    return best


async def brickwork_conns(k: int) -> tuple[list[Any], Any]:
    from brickwork.graph import load_pipeline
    from brickwork.server import App
    from brickwork.server._http import Connection, HttpServer

    tmp = Path(tempfile.mkdtemp())
    (tmp / "m.yaml").write_text(YAML)
    app = App([load_pipeline(tmp / "m.yaml")])
    srv = HttpServer(app, socket.socket())
    srv.loop = asyncio.get_running_loop()
    await app.startup()
    conns = []
    for _ in range(k):
        c = Connection(srv)
        conns.append(c)
    return conns, app


def floor_conns(k: int) -> list[Any]:
    sys.argv = [sys.argv[0], "--model", "matmul", "--cache", os.environ["BENCH_CACHE"], "--port", "0"]
    import raw_app  # bench/peers/servers; parses argv at import

    return [raw_app.Conn() for _ in range(k)]


def _best(fn: Any, n: int, repeat: int = 9) -> float:
    """Best of ``repeat`` runs of ``n`` calls, µs of process CPU per call."""
    best = 1e9
    for _ in range(repeat):
        t = time.process_time()
        for _ in range(n):
            fn()
        best = min(best, (time.process_time() - t) / n * 1e6)
    return best


async def breakdown(reqs: list[bytes]) -> None:
    """Each part of the hot path alone, µs of CPU per request (the engine per request of a
    batch of 32); "other" is the whole (``_drive``) less the parts."""
    from brickwork.protocol import decode_request, encode_response

    from brickwork.server._run import settle_gc

    conns, app = await brickwork_conns(32)
    settle_gc()
    tr = [FakeTransport() for _ in conns]
    for c, t in zip(conns, tr):
        c.connection_made(t)
    await _drive(conns, tr, reqs, 2000, 1)
    whole = await _drive(conns, tr, reqs, 640, 30)
    c = conns[0]
    c.busy = True  # parse only: the request is queued, not answered

    def parse() -> None:
        c.data_received(reqs[0])
        c.waiting.clear()

    body = reqs[0].split(b"\r\n\r\n", 1)[1]
    model = app.models["matmul"]
    ex = model.local_executor()
    stage = ex.stages["matmul"]
    req = decode_request(body, None, model.inputs, model.outputs, "matmul")

    def engine32() -> Any:
        futs = [ex.start(ex.validate(req.inputs)) for _ in range(32)]
        stage._pump_soon = False  # run the batch now rather than on the next loop turn
        stage._pump()
        return [ex.finish(f.result()) for f in futs]

    result = engine32()[0]
    hdrs, out = encode_response("matmul", req, result, model.output_names, {})
    parts = {
        "HTTP parse (httptools + the front's callbacks)": _best(parse, 2000),
        "  of which httptools alone, 3 callbacks (the floor's)": None,
        "v2 decode (orjson.loads + checks + numpy)": _best(
            lambda: decode_request(body, None, model.inputs, model.outputs, "matmul"), 2000),
        "  of which orjson.loads": _best(lambda: orjson.loads(body), 2000),
        "engine (validate, queue, batch of 32, matmul, split, finish)": _best(engine32, 100) / 32,
        "v2 encode (orjson, numpy data)": _best(
            lambda: encode_response("matmul", req, result, model.output_names, {}), 2000),
        "HTTP write (status, headers, body)": _best(
            lambda: c._write((200, hdrs, out), keep_alive=True, head=False), 2000),
    }
    import httptools

    class Bare:
        def on_url(self, url: bytes) -> None: ...
        def on_body(self, body: bytes) -> None: ...
        def on_message_complete(self) -> None: ...

    bare = Bare()
    p = httptools.HttpRequestParser(bare)
    parts["  of which httptools alone, 3 callbacks (the floor's)"] = _best(lambda: p.feed_data(reqs[0]), 2000)
    top = sum(v for k, v in parts.items() if not k.startswith("  ") and v is not None)
    print(f"{'whole request (in process, 32 clients)':62s} {whole:6.1f} µs")
    for k, v in parts.items():
        print(f"{k:62s} {v:6.1f} µs")
    print(f"{'other (app, metrics, futures, callbacks, loop turns)':62s} {whole - top:6.1f} µs")
    await app.shutdown()


async def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--clients", type=int, default=32)
    ap.add_argument("--requests", type=int, default=20000)
    ap.add_argument("--rounds", type=int, default=5)
    ap.add_argument("--floor", action="store_true")
    ap.add_argument("--profile", action="store_true")
    ap.add_argument("--label", default="")
    ap.add_argument("--breakdown", action="store_true", help="time each part of the hot path alone")
    a = ap.parse_args()
    reqs = _bodies(256)
    if a.breakdown:
        await breakdown(reqs)
        return
    app = None
    if a.floor:
        conns = floor_conns(a.clients)
    else:
        conns, app = await brickwork_conns(a.clients)
    if not a.floor:
        from brickwork.server._run import settle_gc

        settle_gc()
    transports = [FakeTransport() for _ in conns]
    for c, tr in zip(conns, transports):
        c.connection_made(tr)
    await _drive(conns, transports, reqs, 2000, 1)  # warm-up
    if a.profile:
        import cProfile
        import pstats

        prof = cProfile.Profile()
        prof.enable()
        await _drive(conns, transports, reqs, a.requests, 1)
        prof.disable()
        pstats.Stats(prof).sort_stats("tottime").print_stats(40)
    else:
        us = await _drive(conns, transports, reqs, a.requests, a.rounds)
        print(f"{a.label or ('floor' if a.floor else 'brickwork')}: {us:.1f} µs CPU per request "
              f"({a.clients} clients, best of {a.rounds})")
    bad = [tr.last[:60] for tr in transports if not tr.last.startswith(b"HTTP/1.1 200 OK")]
    if bad:
        raise SystemExit(f"wrong answers: {bad[:3]}")
    if app is not None:
        await app.shutdown()


if __name__ == "__main__":
    sys.path.insert(0, str(HERE / "peers" / "servers"))
    os.environ.setdefault("BENCH_CACHE", str(HERE / "peers" / ".cache"))
    uvloop.run(main())
