"""gRPC vs HTTP/JSON on the same `brickwork serve` process, same model, same load, one run.

    .venv/bin/python bench/grpc_vs_http.py                        # matmul, 3000 requests x 2 runs
    .venv/bin/python bench/grpc_vs_http.py --model pipeline --requests 5000 --concurrency 64 --json out.json

One server (`brickwork serve <yaml> --port 0 --grpc-port 0`, the bench/peers matmul model: y = x @ W,
W 64x64 FP32, one 64-float vector per request, batching 32 / 1 ms) answers, in turn:

- ``http-json``: the v2 JSON body over HTTP/1.1 keep-alive (aiohttp, `concurrency` connections),
  exactly what bench/peers sends;
- ``http-binary``: the same with Triton's binary tensor extension (raw FP32 in and out);
- ``grpc``: ModelInfer with ``raw_input_contents`` over grpc.aio (`--channels` HTTP/2 channels,
  `concurrency` calls in flight);
- ``grpc-stream``: ModelStreamInfer, `concurrency` requests in flight on one stream per channel;
- ``grpc-live``: ServerLive, which does no work at all: grpcio's own cost per call, the floor
  under any gRPC figure.

The load generator is one closed-loop asyncio process (uvloop) per phase; every answer is
checked against numpy. Figures: req/s, p50/p99 latency, **server CPU ms per request** (utime +
stime of the server's process tree from /proc, before/after the phase) and the generator's own
CPU % of one core: near 100 % means the generator, not the server, was the limit. Phases
alternate their order between runs (the machine is shared and drifts).
"""

from __future__ import annotations

import argparse
import asyncio
import itertools
import json
import os
import signal
import subprocess
import sys
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT / "bench" / "peers"))
sys.path.insert(0, str(ROOT / "src"))

import models as peer_models  # noqa: E402  (bench/peers/models.py)
import procstats  # noqa: E402  (bench/peers/procstats.py)

PHASES = ("http-json", "http-binary", "grpc", "grpc-stream", "grpc-live")


@dataclass
class Phase:
    name: str
    ok: int = 0
    errors: int = 0
    error_samples: list[str] = field(default_factory=list)
    elapsed_s: float = 0.0
    req_s: float = 0.0
    p50_ms: float = 0.0
    p99_ms: float = 0.0
    server_cpu_ms_per_req: float = 0.0
    loadgen_cpu_pct: float = 0.0


def write_yaml(model: str, folder: Path, batch: int, delay_ms: float) -> Path:
    head = f"name: {model}\ndefaults:\n  batching: {{max_batch_size: {batch}, max_delay_s: {delay_ms / 1000.0}}}\n"
    if model == "matmul":
        body = 'bricks:\n  matmul: {python: "bw_models:matmul", batch: true, outputs: y}\ngraph: matmul\n'
    else:
        body = ('bricks:\n  matmul: {python: "bw_models:matmul", batch: true, outputs: z}\n'
                '  softmax: {python: "bw_models:softmax", batch: true, outputs: y}\n'
                "graph: matmul >> softmax\n")
    path = folder / f"grpc-bench-{model}.yaml"
    path.write_text(head + body)
    return path


def start_server(yaml: Path, cache: Path, workers: int) -> tuple[subprocess.Popen[str], str, str]:
    env = {**os.environ, "PYTHONPATH": f"{ROOT / 'src'}:{ROOT / 'bench' / 'peers' / 'servers'}",
           "BENCH_CACHE": str(cache), "PYTHONUNBUFFERED": "1"}
    cmd = [sys.executable, "-c", "import sys; from brickwork.cli import main; sys.exit(main())",
           "serve", str(yaml), "--port", "0", "--grpc-port", "0", "--workers", str(workers)]
    proc = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True, env=env,
                            start_new_session=True)
    http = grpc = None
    assert proc.stdout is not None
    while http is None:  # blocking reads: the server prints both lines, or exits (EOF)
        line = proc.stdout.readline()
        if not line:
            break
        if "gRPC on " in line:
            grpc = line.rsplit(" on ", 1)[1].strip()
        elif " on http://" in line:
            http = line.rsplit(" on ", 1)[1].strip()
    if http is None or grpc is None:
        stop_server(proc)
        raise RuntimeError("brickwork serve did not start")
    return proc, http, grpc


def stop_server(proc: subprocess.Popen[str]) -> None:
    pids = procstats.descendants(proc.pid)
    if proc.poll() is None:
        proc.send_signal(signal.SIGTERM)
        try:
            proc.wait(30)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait(5)
    for pid in pids:
        try:
            os.kill(pid, signal.SIGKILL)
        except ProcessLookupError:
            pass


def tree(proc: subprocess.Popen[str]) -> list[int]:
    return [proc.pid, *procstats.descendants(proc.pid)]


# -- the clients: each returns an async callable (k) -> error message or None -------------
def http_client(url: str, model: str, xs: np.ndarray, want: np.ndarray, binary: bool, concurrency: int):
    import aiohttp
    import orjson

    path = f"{url}/v2/models/{model}/infer"
    bodies, headers = [], {}
    for x in xs:
        if binary:
            raw = x.astype("<f4").tobytes()
            head = orjson.dumps({"inputs": [{"name": "x", "shape": [1, 64], "datatype": "FP32",
                                             "parameters": {"binary_data_size": len(raw)}}],
                                 "parameters": {"binary_data_output": True}})
            bodies.append((head + raw, {"Inference-Header-Content-Length": str(len(head)),
                                        "Content-Type": "application/octet-stream"}))
        else:
            bodies.append((orjson.dumps({"inputs": [{"name": "x", "shape": [1, 64], "datatype": "FP32",
                                                     "data": x.tolist()}]}),
                           {"Content-Type": "application/json"}))
    state: dict[str, object] = {}

    async def setup():
        conn = aiohttp.TCPConnector(limit=concurrency)
        state["session"] = aiohttp.ClientSession(connector=conn, timeout=aiohttp.ClientTimeout(total=10),
                                                 skip_auto_headers=("User-Agent",))

    async def call(k: int) -> str | None:
        body, hdrs = bodies[k]
        async with state["session"].post(path, data=body, headers={**headers, **hdrs}) as r:  # type: ignore[attr-defined]
            data = await r.read()
            if r.status != 200:
                return f"HTTP {r.status}: {data[:200]!r}"
            if binary:
                n = int(r.headers["Inference-Header-Content-Length"])
                y = np.frombuffer(data[n:], "<f4")
            else:
                y = np.asarray(orjson.loads(data)["outputs"][0]["data"], np.float32)
        return None if np.allclose(y, want[k], rtol=1e-4, atol=1e-4) else "wrong answer"

    async def close():
        await state["session"].close()  # type: ignore[attr-defined]

    return setup, call, close


def grpc_client(target: str, model: str, xs: np.ndarray, want: np.ndarray, channels: int, stream: bool,
                live: bool = False):
    import grpc

    from brickwork.protocol.grpc import messages as pb

    reqs = []
    for i, x in enumerate(xs):
        msg = pb.ModelInferRequest(model_name=model, id=str(i), raw_input_contents=[x.astype("<f4").tobytes()])
        msg.inputs.add(name="x", datatype="FP32", shape=[1, 64])
        reqs.append(msg)
    method = "/inference.GRPCInferenceService/ModelInfer"
    smethod = "/inference.GRPCInferenceService/ModelStreamInfer"
    state: dict[str, list] = {"chans": [], "calls": [], "streams": []}
    picks = itertools.count()

    def check(resp, k: int) -> str | None:
        y = np.frombuffer(resp.raw_output_contents[0], "<f4")
        return None if np.allclose(y, want[k], rtol=1e-4, atol=1e-4) else "wrong answer"

    async def setup():
        for _ in range(channels):
            ch = grpc.aio.insecure_channel(target, options=[("grpc.max_receive_message_length", -1)])
            state["chans"].append(ch)
            if stream:
                s = StreamMux(ch.stream_stream(smethod, request_serializer=pb.ModelInferRequest.SerializeToString,
                                               response_deserializer=pb.ModelStreamInferResponse.FromString))
                state["streams"].append(s)
            elif live:
                state["calls"].append(ch.unary_unary("/inference.GRPCInferenceService/ServerLive",
                                                     request_serializer=pb.ServerLiveRequest.SerializeToString,
                                                     response_deserializer=pb.ServerLiveResponse.FromString))
            else:
                state["calls"].append(ch.unary_unary(method, request_serializer=pb.ModelInferRequest.SerializeToString,
                                                     response_deserializer=pb.ModelInferResponse.FromString))

    async def call(k: int) -> str | None:
        i = next(picks) % channels
        if stream:
            resp = await state["streams"][i].infer(reqs[k])
            if resp.error_message:
                return resp.error_message
            return check(resp.infer_response, k)
        if live:
            resp = await state["calls"][i](pb.ServerLiveRequest(), timeout=10)
            return None if resp.live else "not live"
        return check(await state["calls"][i](reqs[k], timeout=10), k)

    async def close():
        for s in state["streams"]:
            await s.close()
        for ch in state["chans"]:
            await ch.close()

    return setup, call, close


class StreamMux:
    """Many requests in flight on one ModelStreamInfer stream, answers matched by id."""

    def __init__(self, method) -> None:
        self.queue: asyncio.Queue = asyncio.Queue()
        self.waiting: dict[str, asyncio.Future] = {}
        self.seq = itertools.count()
        self.call = method(self._requests())
        self.reader = asyncio.get_running_loop().create_task(self._read())

    async def _requests(self):
        while (msg := await self.queue.get()) is not None:
            yield msg

    async def _read(self):
        async for resp in self.call:
            fut = self.waiting.pop(resp.infer_response.id, None)
            if fut is not None and not fut.done():
                fut.set_result(resp)

    async def infer(self, msg):
        tag = str(next(self.seq))
        copy = type(msg)()
        copy.CopyFrom(msg)
        copy.id = tag
        fut = asyncio.get_running_loop().create_future()
        self.waiting[tag] = fut
        self.queue.put_nowait(copy)
        return await asyncio.wait_for(fut, 10)

    async def close(self):
        self.queue.put_nowait(None)
        self.call.cancel()
        self.reader.cancel()


async def drive(client, n: int, warmup: int, concurrency: int, npool: int, server_pids) -> Phase:
    setup, call, close = client
    await setup()
    res = Phase("")
    lat: list[float] = []
    counter = itertools.count()

    async def worker(limit: int, record: bool) -> None:
        while (i := next(counter)) < limit:
            k = i % npool
            t0 = time.perf_counter()
            try:
                why = await call(k)
            except Exception as exc:  # counted as an error
                why = f"{type(exc).__name__}: {exc}"[:200]
            if not record:
                continue
            if why:
                res.errors += 1
                if len(res.error_samples) < 3:
                    res.error_samples.append(why)
            else:
                res.ok += 1
                lat.append((time.perf_counter() - t0) * 1000)

    try:
        await asyncio.gather(*(worker(warmup, False) for _ in range(concurrency)))
        counter = itertools.count()
        cpu0, c0, t0 = procstats.cpu_seconds(server_pids()), time.process_time(), time.perf_counter()
        await asyncio.gather(*(worker(n, True) for _ in range(concurrency)))
        res.elapsed_s = time.perf_counter() - t0
        server_cpu = procstats.cpu_seconds(server_pids()) - cpu0
        client_cpu = time.process_time() - c0
    finally:
        await close()
    lat.sort()
    res.req_s = res.ok / res.elapsed_s
    res.p50_ms = lat[len(lat) // 2] if lat else float("nan")
    res.p99_ms = lat[int(len(lat) * 0.99)] if lat else float("nan")
    res.server_cpu_ms_per_req = 1000 * server_cpu / max(res.ok, 1)
    res.loadgen_cpu_pct = 100 * client_cpu / res.elapsed_s
    return res


def run_phase(name: str, args, http: str, target: str, xs, want, server_pids) -> Phase:
    if name.startswith("http"):
        client = http_client(http, args.model, xs, want, name == "http-binary", args.concurrency)
    else:
        client = grpc_client(target, args.model, xs, want, args.channels, name == "grpc-stream",
                             name == "grpc-live")
    try:
        import uvloop

        runner = uvloop.run
    except ImportError:
        runner = asyncio.run
    res = runner(drive(client, args.requests, args.warmup, args.concurrency, len(xs), server_pids))
    res.name = name
    return res


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--model", default="matmul", choices=("matmul", "pipeline"))
    ap.add_argument("--requests", type=int, default=3000)
    ap.add_argument("--warmup", type=int, default=300)
    ap.add_argument("--concurrency", type=int, default=32)
    ap.add_argument("--channels", type=int, default=4, help="gRPC channels (HTTP/2 connections)")
    ap.add_argument("--runs", type=int, default=2)
    ap.add_argument("--workers", type=int, default=1, help="server processes")
    ap.add_argument("--phases", default=",".join(PHASES))
    ap.add_argument("--json", default=None)
    args = ap.parse_args()
    cache = peer_models.build()
    xs = peer_models.inputs(256)
    want = peer_models.reference(args.model, xs)
    folder = Path(os.environ.get("TMPDIR", "/tmp"))
    yaml = write_yaml(args.model, folder, 32, 1.0)
    phases = args.phases.split(",")
    rows: list[dict] = []
    for run in range(args.runs):
        proc, http, target = start_server(yaml, cache, args.workers)
        try:
            order = phases if run % 2 == 0 else phases[::-1]
            for name in order:
                res = run_phase(name, args, http, target, xs, want, lambda p=proc: tree(p))
                rows.append({"run": run, **asdict(res)})
                print(f"run {run} {name:12s} {res.req_s:8.0f} req/s  p50 {res.p50_ms:6.2f} ms  "
                      f"p99 {res.p99_ms:6.2f} ms  server CPU {res.server_cpu_ms_per_req:.3f} ms/req  "
                      f"loadgen CPU {res.loadgen_cpu_pct:3.0f} %  errors {res.errors} {res.error_samples}",
                      flush=True)
        finally:
            stop_server(proc)
    print(f"\n{args.model}, {args.requests} requests, concurrency {args.concurrency}, "
          f"{args.channels} gRPC channels, {args.workers} server worker(s), {args.runs} runs:")
    print("| front | req/s | p50 ms | p99 ms | server CPU ms/req | load generator CPU % |")
    print("|---|---|---|---|---|---|")
    for name in phases:
        mine = [r for r in rows if r["name"] == name]

        def span(key: str, fmt: str, mine=mine) -> str:
            vals = [r[key] for r in mine]
            lo, hi = min(vals), max(vals)
            return format(lo, fmt) if lo == hi else f"{format(lo, fmt)}-{format(hi, fmt)}"

        print(f"| {name} | {span('req_s', '.0f')} | {span('p50_ms', '.2f')} | {span('p99_ms', '.2f')} | "
              f"{span('server_cpu_ms_per_req', '.3f')} | {span('loadgen_cpu_pct', '.0f')} |")
    if args.json:
        Path(args.json).write_text(json.dumps({"args": vars(args), "rows": rows}, indent=1))
    return 0


if __name__ == "__main__":
    sys.exit(main())
