"""The Ray backend against the local one, each figure a ratio measured in one run.

    python bench/ray_backend.py                # both, ~2 minutes; starts a private Ray instance on 127.0.0.1
    python bench/ray_backend.py --json out.json

1. matmul    y = x @ W (64x64 FP32), 32 concurrent one-row callers, batching on (max 32, 2 ms):
             the ray backend's throughput vs the local backend's (a thread worker), and the
             ingress's CPU per request on each (goal: ray >= 0.67x local). "ray" sends its
             batches over the actors' data plane (cluster/_dataplane.py); "ray-calls" is the same
             with `ray: {data_plane: false}`, one Ray actor call per batch (skipped on a checkout
             without that key).
0. floor     what one batch's round trip costs here, whatever brickwork does around it: the round
             trip and the caller's CPU of an empty Ray actor call, of a 32x64 FP32 batch as numpy
             arrays and as one bytes frame in a Ray call, and of that frame over the actor's own
             socket (the data plane: cluster/_dataplane.py, a blocking client). With 32
             closed-loop callers every batch is full (32), so a cycle is the ingress's own work
             for 32 requests plus one round trip: from the local cycle (32 / its req/s) and a
             round trip this prints the ratio that one round trip per batch allows at best.
2. handoff   a 64 MiB FP32 tensor made by one stage and read by the next (one request at a time):
             ray (the tensor stays in the object store; the ingress moves 4 bytes in and 8 out)
             vs local process workers (shared-memory arenas, through the ingress) (goal: ray
             within 1.2x of the local shared-memory path).
Rounds are interleaved (local, ray, local, ray); the ratio of each round's pair is reported as
a median and range over the rounds, so a noisy moment of the shared machine hits both sides.
A/B of two checkouts: run it with PYTHONPATH=<checkout>/src, alternating checkouts.
"""

from __future__ import annotations

import os

os.environ.setdefault("RAY_ENABLE_WINDOWS_OR_OSX_CLUSTER", "0")  # before ray is imported: loopback only
os.environ.setdefault("RAY_USAGE_STATS_ENABLED", "0")
for _var in ("OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS"):
    os.environ.setdefault(_var, "1")

import argparse  # noqa: E402
import asyncio  # noqa: E402
import json  # noqa: E402
import shutil  # noqa: E402
import statistics  # noqa: E402
import tempfile  # noqa: E402
import time  # noqa: E402
from pathlib import Path  # noqa: E402
from typing import Any  # noqa: E402

import numpy as np  # noqa: E402

from brickwork.cluster import RayBackend, connect  # noqa: E402
from brickwork.graph import load_graph  # noqa: E402

HERE = Path(__file__).resolve().parent

MATMUL = """name: matmul
bricks:
  mm: {python: "ray_fns:matmul", batch: true, worker: thread,
       batching: {max_batch_size: 32, max_delay_s: 0.002}}
graph: mm
"""
HANDOFF = """name: handoff
bricks:
  make:    {python: "ray_fns:make", batch: true, worker: process, outputs: big}
  consume: {python: "ray_fns:consume", batch: true, worker: process}
graph: make >> consume
"""


def _backend(name: str) -> Any:
    return "local" if name == "local" else RayBackend()


def _has_data_plane_key() -> bool:
    from dataclasses import fields

    from brickwork.options import RayPlacement

    return "data_plane" in {f.name for f in fields(RayPlacement)}


def _yaml_for(yaml_text: str, backend: str) -> str:
    if backend == "ray-calls":  # one Ray actor call per batch
        return yaml_text.replace("worker: thread,", "worker: thread, ray: {data_plane: false},")
    return yaml_text


async def _closed_loop(pipeline: Any, n: int, concurrency: int, make_input: Any) -> dict[str, float]:
    await pipeline.start()
    for _ in range(50):
        await pipeline.ainfer(make_input())
    latencies: list[float] = []
    todo = iter(range(n))

    async def caller() -> None:
        for _ in todo:
            t0 = time.perf_counter()
            await pipeline.ainfer(make_input())
            latencies.append(time.perf_counter() - t0)

    cpu0, t0 = time.process_time(), time.perf_counter()
    await asyncio.gather(*(caller() for _ in range(concurrency)))
    wall, cpu = time.perf_counter() - t0, time.process_time() - cpu0
    latencies.sort()
    return {"req_s": n / wall, "p50_ms": 1e3 * latencies[len(latencies) // 2],
            "p99_ms": 1e3 * latencies[int(len(latencies) * 0.99)], "ingress_cpu_ms": 1e3 * cpu / n}


def _run(folder: Path, yaml_text: str, backend: str, n: int, concurrency: int, make_input: Any,
         ) -> dict[str, float]:
    f = folder / f"{backend}.yaml"
    f.write_text(_yaml_for(yaml_text, backend))
    pipeline = load_graph(f).compile(backend=_backend(backend))

    async def go() -> dict[str, float]:
        try:
            return await _closed_loop(pipeline, n, concurrency, make_input)
        finally:
            await pipeline.aclose()

    return asyncio.run(go())


def bench_matmul(folder: Path, rounds: int, n: int) -> dict[str, Any]:
    rng = np.random.default_rng(1)
    row = rng.standard_normal((1, 64)).astype(np.float32)
    backends = ("local", "ray", "ray-calls") if _has_data_plane_key() else ("local", "ray")
    runs: dict[str, list[dict[str, float]]] = {b: [] for b in backends}
    for _ in range(rounds):
        for backend in backends:
            r = _run(folder, MATMUL, backend, n, 32, lambda: {"x": row})
            print(f"  matmul {backend:9s} {r['req_s']:8,.0f} req/s  p50 {r['p50_ms']:.2f} ms  "
                  f"p99 {r['p99_ms']:.2f} ms  ingress CPU {r['ingress_cpu_ms']:.3f} ms/req", flush=True)
            runs[backend].append(r)
    ratios = [r["req_s"] / loc["req_s"] for loc, r in zip(runs["local"], runs["ray"], strict=True)]
    out: dict[str, Any] = {"runs": runs, "ratios": ratios, "ratio": statistics.median(ratios)}
    if "ray-calls" in runs:
        out["calls_ratios"] = [r["req_s"] / loc["req_s"] for loc, r in zip(runs["local"], runs["ray-calls"],
                                                                           strict=True)]
    for backend, rs in runs.items():
        for key in ("req_s", "ingress_cpu_ms", "p50_ms"):
            vals = [r[key] for r in rs]
            out[f"{backend}_{key}"] = [min(vals), statistics.median(vals), max(vals)]
    return out


def _socket_call(host: str, port: int, token: bytes) -> Any:
    """A blocking client of an actor's data plane: ``call(frame) -> answer frame``."""
    import socket

    from brickwork.cluster._dataplane import ACK, BATCH, HEADER, MAGIC

    sock = socket.create_connection((host, port))
    sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)

    def recv(n: int) -> bytes:
        data = b""
        while len(data) < n:
            chunk = sock.recv(n - len(data))
            if not chunk:
                raise ConnectionError("closed")
            data += chunk
        return data

    sock.sendall(MAGIC + token)
    assert HEADER.unpack(recv(HEADER.size))[1] == ACK

    def call(frame: bytes) -> bytes:
        sock.sendmsg([HEADER.pack(len(frame), BATCH), frame])
        length, _ = HEADER.unpack(recv(HEADER.size))
        return recv(length)

    call.sock = sock  # type: ignore[attr-defined]
    return call


def bench_floor(calls: int = 400) -> dict[str, float]:
    """Round trip and caller CPU of one batch: an empty Ray call, a 32x64 FP32 batch as arrays,
    as a frame, and as a frame over the actor's own socket."""
    import ray

    from brickwork.cluster._frames import pack, unpack

    @ray.remote(num_cpus=0)
    class Probe:
        def empty(self) -> int:
            return 1

        def endpoint(self) -> tuple[str, int, bytes]:
            from brickwork.cluster._dataplane import FRAME, FrameServer

            def handle(body: bytearray, conn: int) -> tuple[int, bytes]:
                return FRAME, self.frame(body)

            self.server = FrameServer(ray.util.get_node_ip_address(), handle, lambda conn: None)
            return self.server.host, self.server.port, self.server.token

        def arrays(self, parts: list[dict[str, np.ndarray]]) -> dict[str, np.ndarray]:
            return {"y": parts[0]["x"] @ W}

        def frame(self, frame: bytes | bytearray) -> bytes:
            x, _ = unpack(frame)
            return pack({"y": x["x"] @ W}, {"c": 0.0})

    W = np.ones((64, 64), np.float32)
    x = np.ones((32, 64), np.float32)
    probe = Probe.remote()
    calls_of = {
        "empty": lambda: probe.empty.options(enable_task_events=False).remote(),
        "arrays": lambda: probe.arrays.options(enable_task_events=False).remote([{"x": x}]),
        "frame": lambda: probe.frame.options(enable_task_events=False).remote(pack({"x": x}, {})),
    }
    try:
        from brickwork.cluster import _dataplane  # noqa: F401

        over_socket = _socket_call(*ray.get(probe.endpoint.remote()))
        calls_of["socket"] = lambda: over_socket(pack({"x": x}, {}))
    except ImportError:  # a checkout without the data plane
        pass
    out: dict[str, list[float]] = {f"{k}_{m}": [] for k in calls_of for m in ("rtt_ms", "cpu_ms")}
    get = ray.get
    try:
        for name, call in calls_of.items():
            wait = (lambda r: r) if name == "socket" else get
            for _ in range(50):
                wait(call())
        for _ in range(3):  # interleaved
            for name, call in calls_of.items():
                wait = (lambda r: r) if name == "socket" else get
                c0, t0 = time.process_time(), time.perf_counter()
                for _ in range(calls):
                    wait(call())
                out[f"{name}_rtt_ms"].append(1e3 * (time.perf_counter() - t0) / calls)
                out[f"{name}_cpu_ms"].append(1e3 * (time.process_time() - c0) / calls)
    finally:
        if "socket" in calls_of:
            over_socket.sock.close()
        ray.kill(probe)
    return {k: statistics.median(v) for k, v in out.items()}


def bench_handoff(folder: Path, rounds: int, n: int) -> dict[str, Any]:
    best: dict[str, dict[str, float]] = {}
    seed = {"seed": np.ones((1, 1), np.float32)}
    for _ in range(rounds):
        for backend in ("local", "ray"):
            r = _run(folder, HANDOFF, backend, n, 1, lambda: seed)
            print(f"  handoff {backend:5s} p50 {r['p50_ms']:7.1f} ms per 64 MiB request  "
                  f"ingress CPU {r['ingress_cpu_ms']:.1f} ms/req", flush=True)
            if backend not in best or r["p50_ms"] < best[backend]["p50_ms"]:
                best[backend] = r
    return {**best, "ratio": best["ray"]["p50_ms"] / best["local"]["p50_ms"]}


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("which", nargs="*", default=["floor", "matmul", "handoff"])
    ap.add_argument("--rounds", type=int, default=3)
    ap.add_argument("--requests", type=int, default=5000, help="per matmul run")
    ap.add_argument("--json", default=None)
    args = ap.parse_args()
    temp = tempfile.mkdtemp(prefix="bwr-", dir="/tmp")
    folder = Path(tempfile.mkdtemp(prefix="bw-raybench-"))
    shutil.copy(HERE / "ray_fns.py", folder / "ray_fns.py")
    import ray

    ray.init(address="local", include_dashboard=False, log_to_driver=False, configure_logging=False,
             _node_ip_address="127.0.0.1", object_store_memory=1 << 30, _temp_dir=temp)
    connect()  # already connected: the backends reuse this instance
    out: dict[str, Any] = {"date": time.strftime("%Y-%m-%d %H:%M UTC", time.gmtime()),
                           "load_average": os.getloadavg()[0]}
    try:
        if "floor" in args.which:
            print("floor, one Ray actor call (median of 3 x 400 synchronous calls):", flush=True)
            out["floor"] = f = bench_floor()
            for name in ("empty", "arrays", "frame", "socket"):
                if name + "_rtt_ms" not in f:
                    continue
                print(f"  {name:6s} round trip {f[name + '_rtt_ms']:.3f} ms  caller CPU {f[name + '_cpu_ms']:.3f} ms",
                      flush=True)
        if "matmul" in args.which:
            print(f"matmul, 32 callers, {args.requests} requests per run:", flush=True)
            out["matmul"] = m = bench_matmul(folder, args.rounds, args.requests)
            print(f"  => ray / local throughput: median {m['ratio']:.2f}, range {min(m['ratios']):.2f}-"
                  f"{max(m['ratios']):.2f} (goal >= 0.67)", flush=True)
            if "calls_ratios" in m:
                print(f"     ray-calls / local: median {statistics.median(m['calls_ratios']):.2f}, range "
                      f"{min(m['calls_ratios']):.2f}-{max(m['calls_ratios']):.2f}", flush=True)
            print(f"  ingress CPU per request: local {m['local_ingress_cpu_ms'][1]:.3f} ms "
                  f"({m['local_ingress_cpu_ms'][0]:.3f}-{m['local_ingress_cpu_ms'][2]:.3f}), ray "
                  f"{m['ray_ingress_cpu_ms'][1]:.3f} ms ({m['ray_ingress_cpu_ms'][0]:.3f}-"
                  f"{m['ray_ingress_cpu_ms'][2]:.3f})", flush=True)
            if "floor" in out:
                cycle_ms = 1e3 * 32 / m["local_req_s"][1]  # local: the ingress's own work for 32
                for how in ("frame", "socket"):
                    if how + "_rtt_ms" in out["floor"]:
                        rtt = out["floor"][how + "_rtt_ms"]
                        print(f"  one {how} round trip per full batch allows at best "
                              f"{cycle_ms / (cycle_ms + rtt):.2f}x (local cycle {cycle_ms:.2f} ms + {rtt:.2f} ms "
                              f"per 32 requests)", flush=True)
        if "handoff" in args.which:
            print("handoff, a 64 MiB intermediate, 15 requests per run:", flush=True)
            out["handoff"] = bench_handoff(folder, args.rounds, 15)
            print(f"  => ray / local-shm latency {out['handoff']['ratio']:.2f} (goal <= 1.2)", flush=True)
    finally:
        ray.shutdown()
        shutil.rmtree(temp, ignore_errors=True)
        shutil.rmtree(folder, ignore_errors=True)
    if args.json:
        Path(args.json).write_text(json.dumps(out, indent=2, default=float))
    print(f"load average at start: {out['load_average']:.1f} (2 cores)")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
