"""Closed-loop asyncio load generator (aiohttp), runs in the bench venv.

`concurrency` clients each send one request, wait for the answer, check it, send the next,
until `n` requests were sent or `max_time_s` passed. Every response is checked against numpy's
answer by the server's adapter. The generator's own CPU time is measured too, so a run can tell
whether the generator (rather than the server) was the bottleneck.
"""
from __future__ import annotations

import asyncio
import itertools
import time
from dataclasses import dataclass, field

import aiohttp


@dataclass
class LoadResult:
    sent: int = 0
    ok: int = 0
    errors: int = 0
    error_samples: list[str] = field(default_factory=list)
    latencies_ms: list[float] = field(default_factory=list)
    elapsed_s: float = 0.0
    client_cpu_s: float = 0.0
    timed_out_run: bool = False

    def note(self, msg: str) -> None:
        self.errors += 1
        if len(self.error_samples) < 5:
            self.error_samples.append(msg[:300])


async def _run(url, bodies, headers, check, n, concurrency, timeout_s, max_time_s) -> LoadResult:
    res = LoadResult()
    counter = itertools.count()
    npool = len(bodies)
    deadline = time.perf_counter() + max_time_s
    conn = aiohttp.TCPConnector(limit=concurrency, force_close=False, enable_cleanup_closed=True)
    timeout = aiohttp.ClientTimeout(total=timeout_s)
    perf = time.perf_counter
    lat = res.latencies_ms

    async with aiohttp.ClientSession(connector=conn, timeout=timeout,
                                     skip_auto_headers=("User-Agent",)) as session:
        async def client():
            while True:
                i = next(counter)
                if i >= n:
                    return
                if perf() > deadline:
                    res.timed_out_run = True
                    return
                k = i % npool
                res.sent += 1
                t0 = perf()
                try:
                    async with session.post(url, data=bodies[k], headers=headers) as r:
                        data = await r.read()
                        status = r.status
                except asyncio.TimeoutError:
                    res.note(f"timeout after {timeout_s}s")
                    continue
                except aiohttp.ClientError as e:
                    res.note(f"{type(e).__name__}: {e}")
                    await asyncio.sleep(0.01)  # a dead server must not spin the loop
                    continue
                dt = perf() - t0
                if status != 200:
                    res.note(f"HTTP {status}: {data[:200]!r}")
                    continue
                why = check(k, data)
                if why:
                    res.note(why)
                    continue
                res.ok += 1
                lat.append(dt * 1000.0)

        c0 = time.process_time()
        t0 = perf()
        await asyncio.gather(*(client() for _ in range(concurrency)))
        res.elapsed_s = perf() - t0
        res.client_cpu_s = time.process_time() - c0
    return res


def run_load(url: str, bodies: list[bytes], headers: dict, check, n: int, concurrency: int,
             timeout_s: float = 10.0, max_time_s: float = 300.0) -> LoadResult:
    if n <= 0:
        return LoadResult()
    return asyncio.run(_run(url, bodies, headers, check, n, concurrency, timeout_s, max_time_s))


def install_fast_loop() -> str:
    try:
        import uvloop

        asyncio.set_event_loop_policy(uvloop.EventLoopPolicy())
        return "uvloop"
    except ImportError:
        return "asyncio"


def percentile(sorted_vals: list[float], q: float) -> float:
    if not sorted_vals:
        return float("nan")
    k = (len(sorted_vals) - 1) * q
    lo = int(k)
    hi = min(lo + 1, len(sorted_vals) - 1)
    return sorted_vals[lo] + (sorted_vals[hi] - sorted_vals[lo]) * (k - lo)
