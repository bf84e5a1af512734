"""Hedged requests against a stalling replica ("The Tail at Scale").

A stage with two thread replicas; each call computes for ``--compute-ms`` (a sleep: the GIL is
free, as with a device or a remote server); ``--stall`` (1 %) of the stage's calls stall for
``--stall-ms`` (200 ms), all of them on replica 0 (which so stalls 2 % of its own calls).
``--callers`` concurrent callers send ``--requests`` one-item requests; the same load runs
without hedging, with ``hedge_after_s`` fixed, and with ``auto`` (the stage's p95).
Prints p50/p99/p99.9 latency per run, the p99 ratio hedged / not hedged, and the extra calls
(hedged copies per request). Ratios are from one run of this script.

    .venv/bin/python bench/hedging.py [--requests 4000] [--json PATH]
"""

from __future__ import annotations

import argparse
import asyncio
import json
import random
import threading
import time
from pathlib import Path
from typing import Any

import numpy as np

import brickwork as bw
from brickwork.spec import Signature, TensorSpec


class Stalling(bw.BaseBrick):
    """Identity after ``compute_s``; ``stall`` of all calls stall ``stall_s``, all on replica
    0's thread (a seeded coin there, at twice the rate, so runs are comparable)."""

    def __init__(self, *, compute_s: float, stall: float, stall_s: float, seed: int = 7) -> None:
        super().__init__("model", Signature([TensorSpec("x", "FP32", (-1, 4))], [TensorSpec("y", "FP32", (-1, 4))]))
        self.compute_s, self.stall, self.stall_s = compute_s, stall, stall_s
        self.rng = random.Random(seed)
        self.calls = 0
        self.stalls = 0
        self.lock = threading.Lock()

    def warmup(self) -> None:
        """No warm-up call: calls are counted."""

    def _call(self, inputs: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
        with self.lock:
            self.calls += 1
            stall = (threading.current_thread().name.startswith("bw-model-0")
                     and self.rng.random() < 2 * self.stall)
            self.stalls += stall
        time.sleep(self.stall_s if stall else self.compute_s)
        return {"y": inputs["x"]}


async def load(pipe: bw.Pipeline, requests: int, callers: int) -> np.ndarray:
    x = np.ones((1, 4), np.float32)
    latencies: list[float] = []
    todo = iter(range(requests))

    async def caller() -> None:
        for _ in todo:
            t0 = time.perf_counter()
            await pipe.ainfer({"x": x})
            latencies.append(time.perf_counter() - t0)

    await asyncio.gather(*(caller() for _ in range(callers)))
    return np.asarray(latencies)


async def one_run(args: argparse.Namespace, hedge: float | str | None) -> dict[str, Any]:
    brick = Stalling(compute_s=args.compute_ms / 1e3, stall=args.stall, stall_s=args.stall_ms / 1e3)
    options: dict[str, Any] = {"replicas": 2, "worker": "thread",
                               "batching": bw.Batching(max_batch_size=args.batch)}
    if hedge is not None:
        options.update(hedge_after_s=hedge, hedge_budget=args.budget)
    pipe = bw.brick(brick, **options).compile()
    async with pipe:
        await load(pipe, 200, args.callers)  # warm up (and let "auto" measure its p95)
        pipe.reset_stats()
        calls0, stalls0 = brick.calls, brick.stalls
        t0 = time.perf_counter()
        lat = await load(pipe, args.requests, args.callers)
        wall = time.perf_counter() - t0
        stats = pipe.stats()["stages"]["model"]
    p50, p99, p999 = (float(np.percentile(lat, q)) for q in (50, 99, 99.9))
    return {"hedge_after_s": hedge, "requests": args.requests, "p50_ms": p50 * 1e3,
            "p99_ms": p99 * 1e3, "p99.9_ms": p999 * 1e3, "max_ms": float(lat.max()) * 1e3,
            "throughput_rps": args.requests / wall, "brick_calls": brick.calls - calls0,
            "stalls": brick.stalls - stalls0, "hedges": int(stats.get("hedges", 0)),
            "hedge_wins": int(stats.get("hedge_wins", 0)),
            "extra_calls": int(stats.get("hedges", 0)) / args.requests,
            "measured_hedge_after_ms": (stats["hedge_after_s"] * 1e3) if "hedge_after_s" in stats else None}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--requests", type=int, default=4000)
    ap.add_argument("--callers", type=int, default=3)
    ap.add_argument("--batch", type=int, default=1, help="max_batch_size")
    ap.add_argument("--compute-ms", type=float, default=2.0)
    ap.add_argument("--stall", type=float, default=0.01, help="share of the calls that stall (on replica 0)")
    ap.add_argument("--stall-ms", type=float, default=200.0)
    ap.add_argument("--hedge-ms", type=float, default=10.0, help="fixed hedge_after_s, in ms")
    ap.add_argument("--budget", type=float, default=0.1, help="hedge_budget")
    ap.add_argument("--json", type=Path)
    args = ap.parse_args()

    async def all_runs() -> list[dict[str, Any]]:
        return [await one_run(args, h) for h in (None, args.hedge_ms / 1e3, "auto")]

    runs = asyncio.run(all_runs())
    base = runs[0]
    print(f"{'hedge_after_s':>14} {'p50 ms':>8} {'p99 ms':>8} {'p99.9 ms':>9} {'max ms':>8} "
          f"{'stalls':>6} {'hedges':>6} {'extra':>6} {'p99 ratio':>9}")
    for r in runs:
        r["p99_ratio"] = r["p99_ms"] / base["p99_ms"]
        label = "off" if r["hedge_after_s"] is None else str(r["hedge_after_s"])
        if r["measured_hedge_after_ms"] is not None and r["hedge_after_s"] == "auto":
            label = f"auto={r['measured_hedge_after_ms']:.1f}ms"
        print(f"{label:>14} {r['p50_ms']:8.2f} {r['p99_ms']:8.2f} {r['p99.9_ms']:9.2f} {r['max_ms']:8.1f} "
              f"{r['stalls']:6d} {r['hedges']:6d} {r['extra_calls']:6.1%} {r['p99_ratio']:9.3f}")
    if args.json:
        args.json.write_text(json.dumps({"args": {k: str(v) for k, v in vars(args).items()}, "runs": runs}, indent=2))


if __name__ == "__main__":
    main()
