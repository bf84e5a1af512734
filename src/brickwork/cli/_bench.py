"""``brickwork bench FILE``: load a pipeline, drive it with concurrent callers, report.

The report: throughput, latency p50/p90/p99, errors by kind, and per stage the batch sizes,
queue and compute time, utilisation and items/s, with the bottleneck named. ``--json PATH``
writes the same figures. Inputs: ``--input`` (JSON text or a file), else the pipeline file's
``example``, else a generated one-item request from the pipeline's signature (plausible values,
not zeros: a sentence, floats in [0, 1), small integers), printed on stderr.

FILE is a pipeline YAML file, or ``module:attribute`` naming a Graph, Node or Pipeline; the module
imports from the working directory (as with ``python -m``), no ``PYTHONPATH=.`` needed.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import sys
import time
from collections import Counter
from pathlib import Path
from typing import Any

import numpy as np

from ..errors import ConfigError, RequestError
from ._backend import add_backend_args, backend_of

__all__ = ["register"]


def register(sub: Any) -> None:
    p = sub.add_parser("bench", help="load-test a pipeline and report throughput, latency and stages")
    p.add_argument("file", metavar="FILE", help="pipeline YAML, or module:attribute of a graph/pipeline")
    p.add_argument("--concurrency", type=int, default=16, help="concurrent callers (default 16)")
    amount = p.add_mutually_exclusive_group()
    amount.add_argument("--requests", type=int, default=None, help="total requests (default 1000)")
    amount.add_argument("--duration-s", type=float, default=None, help="run for this many seconds instead")
    p.add_argument("--input", default=None, help="a request as JSON text, or a path to a JSON file")
    p.add_argument("--warmup", type=int, default=20, help="requests sent before measuring (default 20)")
    add_backend_args(p)
    p.add_argument("--json", dest="json_path", default=None, metavar="PATH", help="also write the figures here")
    p.add_argument("--no-progress", action="store_true", help="no progress bar")
    p.add_argument("--sweep", default=None, metavar="C1,C2,...",
                   help="run once per concurrency level (e.g. 1,4,16,64), each on a fresh pipeline; "
                        "--requests/--duration-s apply to each level")
    p.add_argument("--plot", default=None, metavar="PNG",
                   help="draw throughput, latency p50/p99 and per-stage utilisation against "
                        "concurrency into this PNG (matplotlib: the viz extra)")
    p.set_defaults(func=bench)


def _load(target: str, backend: Any) -> tuple[Any, dict[str, Any] | None]:
    """The pipeline and the example request its file declares (if any)."""
    path = Path(target)
    if path.suffix in (".yaml", ".yml") or path.is_file():
        from ..graph import load_graph

        parsed = load_graph(path)
        return parsed.compile(backend=backend), (dict(parsed.example) if parsed.example else None)
    if ":" not in target:
        raise ConfigError(f"{target!r} is neither a pipeline file nor 'module:attribute'")
    from ..bricks import import_object
    from ..pipeline import Pipeline

    cwd = os.getcwd()
    if cwd not in sys.path and "" not in sys.path:  # as `python -m` does: modules of the cwd import
        sys.path.insert(0, cwd)
    obj = import_object(target)
    if isinstance(obj, Pipeline):
        return obj, getattr(obj, "example", None)
    if hasattr(obj, "compile"):
        return obj.compile(backend=backend), getattr(obj, "example", None)
    raise ConfigError(f"{target!r} is a {type(obj).__name__}, not a graph or pipeline")


def _request(args: argparse.Namespace, pipeline: Any, example: dict[str, Any] | None) -> dict[str, Any]:
    if args.input is not None:
        text = args.input
        if not text.lstrip().startswith("{"):
            text = Path(text).read_text(encoding="utf-8")
        try:
            data = json.loads(text)
        except json.JSONDecodeError as exc:
            raise ConfigError(f"--input is not valid JSON: {exc.msg}") from exc
        if not isinstance(data, dict):
            raise ConfigError("--input must be a JSON object of tensor name to values")
        return data
    if example is not None:
        return example
    request = generated_request(pipeline.plan.signature)
    sys.stderr.write(
        f"brickwork bench: {args.file} has no `example` and no --input was given, so every request "
        "is this generated one (the figures are only as realistic as it is; give --input or add "
        "`example:` to the pipeline file):\n"
        + "".join(f"  {name}: {_describe(value)}\n" for name, value in request.items()))
    sys.stderr.flush()
    return request


_WORDS = ("the service was quick and the staff were friendly but the invoice arrived late "
          "and the total was higher than the quote we agreed on last week").split()


def generated_request(signature: Any, *, seed: int = 0, dynamic: int = 16) -> dict[str, np.ndarray]:
    """A one-item request for ``signature`` with plausible values, not zeros: a sentence for
    BYTES, uniform [0, 1) for floats, 1..9 for integers, 0..255 for UINT8, both values for
    BOOL; ``dynamic`` along every dynamic dimension after the batch axis."""
    from ..spec import to_numpy_dtype

    rng = np.random.default_rng(seed)
    out: dict[str, np.ndarray] = {}
    for spec in signature.inputs:
        shape = tuple(1 if i == 0 else (dynamic if d == -1 else d) for i, d in enumerate(spec.shape))
        if spec.dtype == "BYTES":
            n = int(np.prod(shape, dtype=np.int64))
            words = [" ".join(_WORDS[(i * 7) % len(_WORDS):][:12]) or "hello world" for i in range(n)]
            arr = np.empty(n, dtype=object)
            arr[:] = words
            out[spec.name] = arr.reshape(shape)
            continue
        dtype = to_numpy_dtype(spec.dtype)
        if np.issubdtype(dtype, np.floating):
            out[spec.name] = rng.random(shape).astype(dtype)
        elif dtype == np.bool_:
            out[spec.name] = (np.arange(int(np.prod(shape, dtype=np.int64))) % 2 == 0).reshape(shape)
        elif dtype == np.uint8:
            out[spec.name] = rng.integers(0, 256, shape).astype(dtype)
        else:
            out[spec.name] = rng.integers(1, 10, shape).astype(dtype)
    return out


def _describe(value: np.ndarray) -> str:
    head = value.reshape(-1)[:3].tolist()
    more = ", ..." if value.size > 3 else ""
    shown = ", ".join(repr(v) if isinstance(v, str) else f"{v:.3g}" if isinstance(v, float) else str(v)
                      for v in head)
    return f"{value.dtype.name if value.dtype != object else 'BYTES'}{list(value.shape)} [{shown}{more}]"


class _Progress:
    def __init__(self, total: int | None, duration_s: float | None, enabled: bool) -> None:
        self.total, self.duration_s, self.enabled = total, duration_s, enabled
        self.t0 = time.perf_counter()
        self.last = 0.0

    def update(self, done: int, force: bool = False) -> None:
        now = time.perf_counter()
        if not self.enabled or (now - self.last < 0.1 and not force):
            return
        self.last = now
        elapsed = now - self.t0
        frac = done / self.total if self.total else min(elapsed / (self.duration_s or 1), 1.0)
        bar = "#" * int(frac * 30)
        rate = done / elapsed if elapsed > 0 else 0.0
        sys.stderr.write(f"\r[{bar:<30}] {done:>7} requests {rate:>9,.0f} req/s {elapsed:6.1f} s")
        sys.stderr.flush()

    def close(self) -> None:
        if self.enabled:
            sys.stderr.write("\n")


async def _drive(pipeline: Any, request: dict[str, Any], args: argparse.Namespace) -> dict[str, Any]:
    await pipeline.start()
    for _ in range(args.warmup):
        await pipeline.ainfer(request)
    pipeline.reset_stats()
    total = None if args.duration_s is not None else (args.requests or 1000)
    stop_at = None if args.duration_s is None else time.perf_counter() + args.duration_s
    latencies: list[float] = []
    errors: Counter[str] = Counter()
    progress = _Progress(total, args.duration_s, (not args.no_progress and sys.stderr.isatty()) or False)
    issued = 0

    async def caller() -> None:
        nonlocal issued
        while True:
            if total is not None:
                if issued >= total:
                    return
                issued += 1
            elif time.perf_counter() >= stop_at:  # type: ignore[operator]
                return
            t0 = time.perf_counter()
            try:
                await pipeline.ainfer(request)
            except RequestError as exc:
                errors[type(exc).__name__] += 1
            else:
                latencies.append(time.perf_counter() - t0)
            progress.update(len(latencies) + sum(errors.values()))

    t0 = time.perf_counter()
    await asyncio.gather(*(caller() for _ in range(args.concurrency)))
    elapsed = time.perf_counter() - t0
    progress.update(len(latencies) + sum(errors.values()), force=True)
    progress.close()
    stats = pipeline.stats()
    await pipeline.aclose()
    lat = np.asarray(latencies) if latencies else np.zeros(1)
    p50, p90, p99 = (float(v) for v in np.percentile(lat, (50, 90, 99)))
    return {
        "pipeline": pipeline.name, "concurrency": args.concurrency, "backend": args.backend,
        "requests": len(latencies) + sum(errors.values()), "ok": len(latencies), "errors": dict(errors),
        "elapsed_s": elapsed, "throughput_req_s": len(latencies) / elapsed if elapsed > 0 else 0.0,
        "latency_s": {"p50": p50, "p90": p90, "p99": p99, "mean": float(lat.mean())},
        "bottleneck": stats.get("bottleneck"),
        "stages": {name: _stage_row(s) for name, s in stats.get("stages", {}).items()},
    }


def _stage_row(s: dict[str, Any]) -> dict[str, Any]:
    keys = ("requests", "items", "batches", "mean_batch_size", "items_per_s", "utilisation", "queue_s",
            "compute_s", "batch_sizes", "errors", "copied_bytes", "replicas", "live_replicas", "worker")
    return {k: s[k] for k in keys if k in s}


def _report(r: dict[str, Any]) -> str:
    lat = r["latency_s"]
    lines = [
        f"pipeline {r['pipeline']!r}: {r['requests']} requests, {r['concurrency']} concurrent, "
        f"{r['elapsed_s']:.2f} s, backend {r['backend']}",
        f"  throughput  {r['throughput_req_s']:,.1f} req/s",
        f"  latency     p50 {lat['p50'] * 1e3:.2f} ms   p90 {lat['p90'] * 1e3:.2f} ms   "
        f"p99 {lat['p99'] * 1e3:.2f} ms",
    ]
    if r["errors"]:
        lines.append("  errors      " + ", ".join(f"{k}: {v}" for k, v in sorted(r["errors"].items())))
    head = f"  {'stage':<16}{'worker':>8}{'repl':>6}{'batches':>9}{'mean bs':>9}{'queue p50':>11}" \
           f"{'compute p50':>13}{'util':>7}{'items/s':>11}"
    lines += ["", head]
    for name, s in r["stages"].items():
        mark = "  <- bottleneck" if name == r["bottleneck"] else ""
        lines.append(
            f"  {name:<16}{s.get('worker', '?'):>8}{s.get('replicas', 1):>6}{s['batches']:>9}"
            f"{s['mean_batch_size']:>9.1f}{s['queue_s']['p50'] * 1e3:>9.2f}ms{s['compute_s']['p50'] * 1e3:>11.2f}ms"
            f"{s['utilisation']:>7.0%}{s['items_per_s']:>11,.0f}{mark}"
        )
    if r["bottleneck"]:
        lines.append(f"\n  bottleneck: {r['bottleneck']} (the busiest stage; give it replicas or a larger batch)")
    return "\n".join(lines)


def _levels(text: str | None, default: int) -> list[int]:
    if text is None:
        return [default]
    try:
        levels = [int(x) for x in text.split(",") if x.strip()]
    except ValueError:
        raise ConfigError(f"--sweep takes concurrency levels like 1,4,16,64, got {text!r}") from None
    if not levels or min(levels) < 1:
        raise ConfigError(f"--sweep levels must be integers >= 1, got {text!r}")
    return levels


def bench(args: argparse.Namespace) -> int:
    if args.concurrency < 1:
        raise ConfigError(f"--concurrency must be >= 1, got {args.concurrency}")
    levels = _levels(args.sweep, args.concurrency)
    if args.plot:
        from ._bench_plot import check_plotting

        check_plotting()  # fail before minutes of load, not after
    results = []
    request: dict[str, Any] | None = None
    for level in levels:
        pipeline, example = _load(args.file, backend_of(args))
        if request is None:
            request = _request(args, pipeline, example)
        args.concurrency = level
        result = asyncio.run(_drive(pipeline, request, args))
        print(_report(result) + ("\n" if len(levels) > 1 else ""), flush=True)
        results.append(result)
    if len(levels) > 1:
        print(_sweep_table(results))
    if args.json_path:
        doc: Any = results[0] if len(results) == 1 else {"sweep": results}
        Path(args.json_path).write_text(json.dumps(doc, indent=2), encoding="utf-8")
    if args.plot:
        from ._bench_plot import plot_sweep

        plot_sweep(results, args.plot)
        print(f"plot: {args.plot}")
    return 0 if all(r["ok"] for r in results) else 1


def _sweep_table(results: list[dict[str, Any]]) -> str:
    lines = [f"  {'concurrency':>11}{'req/s':>12}{'p50 ms':>10}{'p99 ms':>10}  bottleneck"]
    for r in results:
        lat = r["latency_s"]
        lines.append(f"  {r['concurrency']:>11}{r['throughput_req_s']:>12,.1f}{lat['p50'] * 1e3:>10.2f}"
                     f"{lat['p99'] * 1e3:>10.2f}  {r['bottleneck'] or '-'}")
    return "sweep:\n" + "\n".join(lines)
