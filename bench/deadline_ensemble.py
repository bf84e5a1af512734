"""How close to its deadline a deadline ensemble answers.

Three FakeBrick members (thread workers); one sleeps ``--slow-ms``; the ensemble has
``deadline_s`` = ``--deadline-ms`` and waits for all three (k = 3), so every answer comes at the
deadline with the two fast members' vote. Prints the lateness (latency - deadline) quantiles,
and the latency with k = 2 (answer once the two fast members answered).

    .venv/bin/python bench/deadline_ensemble.py [--requests 200]
"""

from __future__ import annotations

import argparse
import time

import numpy as np

import brickwork as bw
from brickwork.testing import FakeBrick


def voter(name: str, delay_s: float = 0.0) -> bw.Node:
    return bw.brick(FakeBrick(name, dtype="INT64", output_name="label", delay_s=delay_s))


def run(k: int, deadline_s: float, slow_s: float, requests: int) -> np.ndarray:
    g = bw.ensemble([voter("a"), voter("b"), voter("slow", slow_s)], k=k, deadline_s=deadline_s, name="v")
    x = {"x": np.asarray([1], np.int64)}
    out = []
    with g.compile() as pipe:
        for _ in range(requests):
            t0 = time.perf_counter()
            r = pipe.infer(x)
            out.append(time.perf_counter() - t0)
            assert r.members == {"v": ("a", "b")}
            time.sleep(slow_s)  # let the slow member's thread finish its dropped call
    return np.asarray(out)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--requests", type=int, default=200)
    ap.add_argument("--deadline-ms", type=float, default=30.0)
    ap.add_argument("--slow-ms", type=float, default=100.0)
    args = ap.parse_args()
    d, slow = args.deadline_ms / 1e3, args.slow_ms / 1e3
    late = (run(3, d, slow, args.requests) - d) * 1e3
    k2 = run(2, 10 * d, slow, args.requests) * 1e3
    q = (50, 90, 99)
    print(f"k=3, deadline {args.deadline_ms} ms, one member {args.slow_ms} ms: lateness p50/p90/p99 = "
          + " / ".join(f"{np.percentile(late, p):.2f}" for p in q) + " ms")
    print("k=2 (two fast members): latency p50/p90/p99 = "
          + " / ".join(f"{np.percentile(k2, p):.2f}" for p in q) + " ms")


if __name__ == "__main__":
    main()
