"""Process vs thread workers on a light model, two source trees interleaved (A/B).

    python bench/process_ab.py [--src A=/work/main/src --src B=src] [--rounds 4] [--seconds 3]
                               [--model digits|minilm] [--workers process,thread]

Each round runs, for every (source tree, worker) in turn, a fresh child process that measures
raw ONNX Runtime at the best batch (one ORT thread, a ready-made batch, ``--seconds`` / 2) and
then 64 one-item callers through ``bw.onnx(..., worker=W)`` with max_batch_size 32 for
``--seconds``; the figure is engine items/s over the raw items/s of the same child, so each
ratio is paired with the raw rate of the same minute. Also printed: CPU per item of the event
loop's process and of the worker process (from /proc), which tell the loop's cost from the
worker's, and for a process worker the *bound*: raw CPU per item over the larger of the two,
the ratio the pipeline would reach with a core each (on a box whose cores are shared with
other work, items/s ratios swing with the neighbours; CPU per item swings much less). The same
model files as bench/engine.py (bench/.cache). Medians and ranges over rounds.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent


def _cpu_s(pid: int) -> float:
    with open(f"/proc/{pid}/stat") as f:
        fields = f.read().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def _children() -> list[int]:
    pids: list[int] = []
    for task in Path(f"/proc/{os.getpid()}/task").iterdir():
        try:
            pids += [int(p) for p in (task / "children").read_text().split()]
        except OSError:
            pass
    return pids


def child(model: str, worker: str, seconds: float) -> dict[str, float]:
    """One measurement (runs in its own process, with the source tree its PYTHONPATH names)."""
    os.environ.setdefault("OMP_NUM_THREADS", "1")
    sys.path.insert(0, str(HERE))
    import asyncio

    import numpy as np
    import onnxruntime as ort
    from engine import closed_loop, digits_cnn, minilm

    import brickwork as bw

    if model == "digits":
        path, x = digits_cnn()
        items = [{"pixels": np.ascontiguousarray(x[i:i + 1])} for i in range(256)]
    else:
        path, items = minilm()
    opts = ort.SessionOptions()
    opts.intra_op_num_threads = opts.inter_op_num_threads = 1
    session = ort.InferenceSession(str(path), opts, providers=["CPUExecutionProvider"])
    batch = {k: np.concatenate([it[k] for it in items[:32]]) for k in items[0]}
    session.run(None, batch)
    n, t0, c0 = 0, time.perf_counter(), time.process_time()
    while time.perf_counter() - t0 < seconds / 2:
        session.run(None, batch)
        n += 32
    raw = n / (time.perf_counter() - t0)
    raw_us = (time.process_time() - c0) / n * 1e6
    del session
    node = bw.onnx(path, name="model", intra_op_threads=1, inter_op_threads=1, worker=worker,
                   batching=bw.Batching(max_batch_size=32))
    pipeline = node.compile()

    async def main() -> dict[str, float]:
        async with pipeline:
            i = 0

            async def call() -> None:
                nonlocal i
                i += 1
                await pipeline.ainfer(items[i % len(items)])

            await closed_loop(call, 64, 0.5)
            pipeline.reset_stats()
            pids = _children() if worker == "process" else []
            w0 = sum(_cpu_s(p) for p in pids)
            c0 = time.process_time()
            n, secs = await closed_loop(call, 64, seconds)
            loop_cpu = time.process_time() - c0
            worker_cpu = sum(_cpu_s(p) for p in pids) - w0
            st = pipeline.stats()["stages"]["model"]
            loop_us, worker_us = loop_cpu / n * 1e6, worker_cpu / n * 1e6
            # with a core each, the slower of the two processes paces the pipeline
            bound = raw_us / max(loop_us, worker_us) if worker == "process" else float("nan")
            return {"raw": raw, "rate": n / secs, "ratio": n / secs / raw, "raw_us": raw_us,
                    "loop_us": loop_us, "worker_us": worker_us, "bound": bound,
                    "batch": st["mean_batch_size"]}

    return asyncio.run(main())


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--src", action="append", help="LABEL=PATH of a src tree (default A=/work/main/src B=src)")
    p.add_argument("--rounds", type=int, default=4)
    p.add_argument("--seconds", type=float, default=3.0)
    p.add_argument("--model", choices=("digits", "minilm"), default="digits")
    p.add_argument("--workers", default="process,thread")
    p.add_argument("--child", nargs=2, help=argparse.SUPPRESS)
    a = p.parse_args()
    if a.child:
        print(json.dumps(child(a.model, a.child[0], a.seconds)))
        return 0
    srcs = dict(s.split("=", 1) for s in (a.src or ["A=/work/main/src", f"B={HERE.parent / 'src'}"]))
    workers = a.workers.split(",")
    got: dict[tuple[str, str], list[dict[str, float]]] = {}
    print(f"{a.model}: 64 one-item callers, max_batch_size 32, vs raw ORT at batch 32, {a.rounds} interleaved "
          f"rounds of {a.seconds:g} s ({time.strftime('%Y-%m-%d %H:%M')}, load average {os.getloadavg()[0]:.1f})")
    for r in range(a.rounds):
        for label, src in srcs.items():
            for worker in workers:
                env = {**os.environ, "PYTHONPATH": str(Path(src).resolve())}
                out = subprocess.run([sys.executable, __file__, "--model", a.model, "--seconds", str(a.seconds),
                                      "--child", worker, "x"], env=env, capture_output=True, text=True, timeout=300)
                if out.returncode:
                    print(out.stderr[-3000:])
                    return 1
                fig = json.loads(out.stdout.strip().splitlines()[-1])
                got.setdefault((label, worker), []).append(fig)
                print(f"  round {r + 1} {label} {worker:<7} {fig['ratio']:6.1%} of raw ({fig['rate']:8,.0f} vs "
                      f"{fig['raw']:8,.0f} items/s)  CPU per item: raw {fig['raw_us']:5.1f} µs, loop "
                      f"{fig['loop_us']:5.1f}, worker {fig['worker_us']:5.1f}  bound {fig['bound']:6.1%}  "
                      f"batch {fig['batch']:.1f}", flush=True)
    print(f"summary (load average now {os.getloadavg()[0]:.1f}): median [range] of rounds")
    for (label, worker), figs in got.items():
        ratios = [f["ratio"] for f in figs]
        bounds = [f["bound"] for f in figs]
        print(f"  {label} {worker:<7} {statistics.median(ratios):6.1%} [{min(ratios):.1%}-{max(ratios):.1%}] of raw;"
              f"  CPU per item: raw {statistics.median(f['raw_us'] for f in figs):5.1f} µs, loop "
              f"{statistics.median(f['loop_us'] for f in figs):5.1f}, worker "
              f"{statistics.median(f['worker_us'] for f in figs):5.1f}"
              + (f"; bound {statistics.median(bounds):.1%} [{min(bounds):.1%}-{max(bounds):.1%}]"
                 if worker == "process" else ""))
    return 0


if __name__ == "__main__":
    sys.exit(main())
