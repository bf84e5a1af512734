#!/usr/bin/env python3
"""One-command benchmark of HTTP model servers on the same model and load, two load generators.

    python bench/peers/run.py [--servers raw,fastapi,litserve,rayserve,pytriton,brickwork]
                              [--requests 3000] [--warmup 200] [--concurrency 32]
                              [--model matmul|onnx|pipeline[,...]] [--runs 2] [--json out.json]
                              [--generators python,wrk] [--wrk-duration 10]

Every peer lives in its own venv under bench/peers/.venvs/<peer> (created on first use). The
script itself re-executes inside .venvs/bench (aiohttp, uvloop, numpy, onnx, httptools). Servers
are started one at a time on free 127.0.0.1 ports, each config `--runs` times with a fresh
server, the runs interleaved (run 1 of every config, then run 2, ...), and every process a server
started is stopped by PID at the end (also on error or Ctrl-C). Per run: the Python generator
(every answer checked), then `wrk` (C; the answers were checked just before by the Python phase,
wrk does not read bodies). See README.md.
"""
from __future__ import annotations

import argparse
import json
import os
import platform
import shutil
import signal
import socket
import subprocess
import sys
import time
import traceback
import urllib.error
import urllib.request
from pathlib import Path

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))

import envs  # noqa: E402  (stdlib only)


def bootstrap() -> None:
    """Re-exec inside the bench venv (created on first use)."""
    bench_py = envs.venv_python("bench")
    if Path(sys.prefix).resolve() == envs.venv_dir("bench").resolve():
        return
    ok, why = envs.ensure("bench")
    if not ok:
        sys.exit(f"cannot create the load generator's venv: {why}")
    os.execv(str(bench_py), [str(bench_py), str(Path(__file__).resolve()), *sys.argv[1:]])


def parse_args():
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    p.add_argument("--servers", default="fastapi,litserve,rayserve,pytriton,brickwork",
                   help="comma-separated: raw,fastapi,litserve,rayserve,pytriton,brickwork")
    p.add_argument("--model", default="matmul",
                   help="matmul | onnx | pipeline, or a comma-separated list")
    p.add_argument("--requests", type=int, default=3000)
    p.add_argument("--warmup", type=int, default=200)
    p.add_argument("--concurrency", type=int, default=32)
    p.add_argument("--runs", type=int, default=2, help="fresh server starts per config")
    p.add_argument("--max-batch", type=int, default=32)
    p.add_argument("--max-delay-ms", type=float, default=1.0)
    p.add_argument("--timeout", type=float, default=10.0, help="per-request timeout, s")
    p.add_argument("--max-time", type=float, default=240.0, help="cap on one measured phase, s")
    p.add_argument("--startup-timeout", type=float, default=180.0)
    p.add_argument("--json", default=None, help="also write results here")
    p.add_argument("--generators", default="python,wrk",
                   help="python (aiohttp, checks every answer) and/or wrk (C, needs `wrk`)")
    p.add_argument("--wrk-duration", type=float, default=10.0, help="seconds of each wrk run")
    p.add_argument("--wrk-threads", type=int, default=1)
    return p.parse_args()


# ----------------------------------------------------------------------------------- helpers
def free_ports(n: int) -> list[int]:
    socks, ports = [], []
    try:
        for _ in range(n):
            s = socket.socket()
            s.bind(("127.0.0.1", 0))
            socks.append(s)
            ports.append(s.getsockname()[1])
    finally:
        for s in socks:
            s.close()
    return ports


def http(method: str, url: str, body: bytes | None = None, timeout: float = 2.0):
    req = urllib.request.Request(url, data=body, method=method,
                                 headers={"Content-Type": "application/json"} if body else {})
    try:
        with urllib.request.urlopen(req, timeout=timeout) as r:
            return r.status, r.read()
    except urllib.error.HTTPError as e:
        return e.code, e.read()


def log_tail(path: Path, n: int = 6) -> str:
    try:
        lines = [ln.strip() for ln in path.read_text(errors="replace").splitlines() if ln.strip()]
    except OSError:
        return ""
    return " | ".join(lines[-n:])[-600:]


class Failed(Exception):
    pass


# ----------------------------------------------------------------------------------- one run
def run_one(peer, model, idx, a, cache, rundir, expected, pool_x, log):
    import loadgen
    import procstats
    from peers import launch

    me = os.getpid()
    ports = free_ports(1 + peer.extra_ports)
    rundir.mkdir(parents=True, exist_ok=True)
    L = launch(peer, model, ports[0], cache, rundir, a.max_batch, a.max_delay_ms, ports[1:])
    base = f"http://127.0.0.1:{ports[0]}"
    body_of = [L.adapter.body(x, model) for x in pool_x]
    check = L.adapter.make_check(expected)
    logf = rundir / "server.log"
    res = {"server": peer.name, "model": model, "run": idx, "port": ports[0],
           "log": str(logf.relative_to(HERE))}
    proc = None
    ray_before = _ray_sessions()
    try:
        with open(logf, "wb") as lf:
            t0 = time.perf_counter()
            proc = subprocess.Popen(L.argv, env=L.env, cwd=L.cwd, stdout=lf,
                                    stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL,
                                    start_new_session=True)
        # --- readiness
        method, path = L.ready
        ready_body = body_of[0] if method == "POST" else None
        deadline = t0 + a.startup_timeout
        while True:
            if proc.poll() is not None:
                raise Failed(f"server exited with {proc.returncode} before ready: "
                             f"{log_tail(logf)}")
            try:
                st, _ = http(method, base + path, ready_body, timeout=2.0)
                if st == 200:
                    break
            except (OSError, urllib.error.URLError):
                pass
            if time.perf_counter() > deadline:
                raise Failed(f"not ready after {a.startup_timeout:.0f}s: {log_tail(logf)}")
            time.sleep(0.02)
        res["ready_s"] = round(time.perf_counter() - t0, 2)
        # --- one checked request before anything else
        st, data = http("POST", base + L.infer_path, body_of[0], timeout=30.0)
        why = check(0, data) if st == 200 else f"HTTP {st}: {data[:300]!r}"
        if why:
            raise Failed(f"first inference wrong: {why}")
        url = base + L.infer_path
        headers = {"Content-Type": L.adapter.content_type}
        # --- warm-up
        w = loadgen.run_load(url, body_of, headers, check, a.warmup, a.concurrency, a.timeout,
                             a.max_time)
        if a.warmup and w.ok == 0:
            raise Failed(f"warm-up: no valid response ({w.error_samples[:1]})")
        res["warmup_errors"] = w.errors
        # --- idle memory after warm-up, before load
        time.sleep(1.0)
        tree = procstats.descendants(me)
        rss, pss = procstats.memory_mb(tree)
        res.update(idle_rss_mb=round(rss, 1), idle_pss_mb=round(pss, 1), processes=len(tree),
                   process_names=sorted({procstats.comm(p) for p in tree}))
        # --- measured phase
        cpu0 = procstats.cpu_seconds(procstats.descendants(me))
        r = loadgen.run_load(url, body_of, headers, check, a.requests, a.concurrency, a.timeout,
                             a.max_time)
        cpu1 = procstats.cpu_seconds(procstats.descendants(me))
        lat = sorted(r.latencies_ms)
        res.update(
            requests=r.sent, ok=r.ok, errors=r.errors, error_samples=r.error_samples,
            elapsed_s=round(r.elapsed_s, 3),
            rps=round(r.ok / r.elapsed_s, 1) if r.elapsed_s else 0.0,
            p50_ms=round(loadgen.percentile(lat, 0.50), 2),
            p90_ms=round(loadgen.percentile(lat, 0.90), 2),
            p99_ms=round(loadgen.percentile(lat, 0.99), 2),
            server_cpu_ms_per_req=round((cpu1 - cpu0) * 1000.0 / max(r.ok, 1), 3),
            client_cpu_pct=round(100.0 * r.client_cpu_s / r.elapsed_s, 1) if r.elapsed_s else 0,
            truncated_by_max_time=r.timed_out_run,
            status="ok" if r.errors == 0 else "errors")
        if "wrk" in a.gens and proc.poll() is None:
            res.update(wrk_phase(a, url, body_of, L.adapter.content_type, rundir, me))
            # the server must still answer correctly after wrk's load
            st, data = http("POST", url, body_of[1 % len(body_of)], timeout=30.0)
            why = check(1 % len(body_of), data) if st == 200 else f"HTTP {st}: {data[:300]!r}"
            if why:
                res["wrk_errors"] = res.get("wrk_errors", 0) + 1
                res["status"] = f"wrong answer after wrk: {why}"
        if proc.poll() is not None:
            res["status"] = f"server exited ({proc.returncode}) during load"
    except Failed as e:
        res.update(status="failed", reason=str(e))
    except Exception as e:  # noqa: BLE001 - keep going with the next server
        res.update(status="failed", reason=f"{type(e).__name__}: {e}")
        log(traceback.format_exc())
    finally:
        stop_all(proc)
        for c in L.cleanup:
            try:
                c.unlink()
            except OSError:
                pass
        for d in ("pytriton-ws", "tmp"):  # PyTriton copies Triton (~22 MB) into its workspace
            shutil.rmtree(rundir / d, ignore_errors=True)
        _remove_ray_sessions(ray_before)
    return res


RAY_TMP = HERE / ".ray-tmp"  # RAY_TMPDIR of rayserve and brickwork-ray (peers.py)


def _ray_sessions() -> set[Path]:
    """Ray session folders (and links to them) under .ray-tmp, where Ray never removes one."""
    return {p for d in (RAY_TMP, RAY_TMP / "ray") if d.is_dir() for p in d.iterdir()
            if p.name.startswith("session_")}


def _remove_ray_sessions(before: set[Path]) -> None:
    """Remove what a run's Ray instance left (its server was stopped, with every process of it);
    a server stopped by its process group cannot always clean up itself (Ray's driver exits at
    once when its raylet dies)."""
    for p in _ray_sessions() - before:
        if p.is_symlink():
            p.unlink(missing_ok=True)
        else:
            shutil.rmtree(p, ignore_errors=True)
    for d in (RAY_TMP, RAY_TMP / "ray"):
        latest = d / "session_latest"
        if latest.is_symlink() and not latest.exists():
            latest.unlink(missing_ok=True)


LUA = HERE / "post.lua"


def wrk_phase(a, url, body_of, ctype, rundir, me) -> dict:
    """One wrk run against `url` posting `body_of` in turn; req/s, latency percentiles, errors,
    server CPU per request (the server's process tree) and wrk's own CPU."""
    import resource

    import procstats

    bodies = rundir / "bodies.txt"
    bodies.write_bytes(b"\n".join(body_of) + b"\n")
    argv = [a.wrk, "-t", str(a.wrk_threads), "-c", str(a.concurrency),
            "-d", f"{a.wrk_duration:g}s", "--timeout", f"{a.timeout:g}s", "-s", str(LUA), url,
            "--", str(bodies), ctype]
    ru0 = resource.getrusage(resource.RUSAGE_CHILDREN)
    cpu0 = procstats.cpu_seconds(procstats.descendants(me))
    r = subprocess.run(argv, capture_output=True, text=True, timeout=a.wrk_duration + 120)
    cpu1 = procstats.cpu_seconds(procstats.descendants(me))
    ru1 = resource.getrusage(resource.RUSAGE_CHILDREN)
    (rundir / "wrk.out").write_text(r.stdout + r.stderr)
    line = next((ln for ln in r.stdout.splitlines() if ln.startswith("WRK_JSON ")), None)
    if r.returncode != 0 or line is None:
        return {"wrk_status": f"wrk failed (exit {r.returncode}): {(r.stderr or r.stdout)[-300:]}"}
    w = json.loads(line[9:])
    n, secs = w["requests"], w["duration_us"] / 1e6
    errors = sum(w[k] for k in ("connect_errors", "read_errors", "write_errors", "status_errors",
                                "timeouts"))
    wrk_cpu = (ru1.ru_utime + ru1.ru_stime) - (ru0.ru_utime + ru0.ru_stime)
    return {"wrk_rps": round(n / secs, 1) if secs else 0.0, "wrk_requests": n,
            "wrk_errors": errors, "wrk_p50_ms": round(w["p50"] / 1000, 2),
            "wrk_p90_ms": round(w["p90"] / 1000, 2), "wrk_p95_ms": round(w["p95"] / 1000, 2),
            "wrk_p99_ms": round(w["p99"] / 1000, 2), "wrk_p999_ms": round(w["p99_9"] / 1000, 2),
            "wrk_cpu_ms_per_req": round((cpu1 - cpu0) * 1000.0 / max(n, 1), 4),
            "wrk_own_cpu_pct": round(100.0 * wrk_cpu / secs, 1) if secs else 0.0,
            "wrk_status": "ok" if errors == 0 else f"{errors} errors"}


def find_wrk() -> str | None:
    """`wrk` on PATH; on Debian/Ubuntu as root, install the `wrk` package when it is missing."""
    found = shutil.which("wrk")
    if found or not shutil.which("apt-get") or os.geteuid() != 0:
        return found
    print("[bench] wrk is missing: apt-get install -y wrk", file=sys.stderr, flush=True)
    subprocess.run(["apt-get", "install", "-y", "-q", "wrk"], stdout=subprocess.DEVNULL,
                   stderr=subprocess.STDOUT, check=False)
    return shutil.which("wrk")


def stop_all(proc) -> None:
    """Stop the server's process group and every descendant of ours, by PID."""
    import procstats

    left = procstats.descendants(os.getpid())
    pgid = proc.pid if proc is not None else None
    if proc is not None or left:
        procstats.kill_tree(pgid, left)
    if proc is not None:
        try:
            proc.wait(timeout=5)
        except subprocess.TimeoutExpired:
            pass
        except ChildProcessError:
            pass
    still = procstats.descendants(os.getpid())
    if still:
        procstats.kill_tree(None, still, grace_s=1.0)


# ----------------------------------------------------------------------------------- report
def fmt(v, nd=0):
    if v is None:
        return "–"
    if isinstance(v, float):
        return f"{v:,.{nd}f}"
    return str(v)


def table(results: list[dict]) -> str:
    head = ("| server | model | run | req/s | p50 ms | p90 ms | p99 ms | errors | server CPU ms/req "
            "| load-gen CPU % | wrk req/s | wrk p50 / p95 / p99 ms | wrk errors "
            "| wrk: server CPU ms/req | wrk CPU % | idle RSS MB | idle PSS MB | ready after s "
            "| note |")
    rows = [head, "|" + "---|" * 19]
    for r in results:
        if r["status"] in ("failed", "skipped"):
            rows.append(f"| {r['server']} | {r['model']} | {r.get('run', '–')} | "
                        + " | ".join(["–"] * 15)
                        + f" | **{r['status']}**: {r.get('reason', '')[:300]} |")
            continue
        note = "" if r["status"] == "ok" else r["status"]
        if r.get("errors"):
            note += f" e.g. {r['error_samples'][0][:120]}" if r.get("error_samples") else ""
        if r.get("client_cpu_pct", 0) > 90:
            note += " (Python load generator near 100 % CPU)"
        if r.get("wrk_status", "ok") != "ok":
            note += f" wrk: {r['wrk_status']}"
        rows.append(
            f"| {r['server']} | {r['model']} | {r['run']} | {fmt(r['rps'])} | {fmt(r['p50_ms'], 1)} "
            f"| {fmt(r['p90_ms'], 1)} | {fmt(r['p99_ms'], 1)} | {r['errors']} "
            f"| {fmt(r['server_cpu_ms_per_req'], 2)} | {fmt(r['client_cpu_pct'])} "
            f"| {fmt(r.get('wrk_rps'))} | {_pcts(r)} | {fmt(r.get('wrk_errors'))} "
            f"| {fmt(r.get('wrk_cpu_ms_per_req'), 3)} | {fmt(r.get('wrk_own_cpu_pct'))} "
            f"| {fmt(r['idle_rss_mb'])} | {fmt(r['idle_pss_mb'])} | {fmt(r['ready_s'], 1)} "
            f"| {note.strip()} |")
    return "\n".join(rows)


def _pcts(r: dict) -> str:
    if r.get("wrk_p50_ms") is None:
        return "–"
    return f"{r['wrk_p50_ms']:.2f} / {r['wrk_p95_ms']:.2f} / {r['wrk_p99_ms']:.2f}"


def _rng(vals, nd=0):
    vals = [v for v in vals if v is not None]
    if not vals:
        return "–"
    lo, hi = min(vals), max(vals)
    return fmt(float(lo), nd) if fmt(float(lo), nd) == fmt(float(hi), nd) else \
        f"{fmt(float(lo), nd)}–{fmt(float(hi), nd)}"


def _groups(results: list[dict]) -> dict[tuple, list[dict]]:
    seen: dict[tuple, list[dict]] = {}
    for r in results:
        seen.setdefault((r["server"], r["model"]), []).append(r)
    return seen


def summary(results: list[dict]) -> str:
    """One line per server and model: the range over its runs (compare like PEERS.md does)."""
    rows = ["| server | model | req/s (Python gen.) | p99 ms | server CPU ms/req | req/s (wrk) "
            "| wrk p50 ms | wrk p95 ms | wrk p99 ms | wrk: server CPU ms/req | idle PSS MB "
            "| ready after s | errors |", "|" + "---|" * 13]
    for (srv, model), rs in _groups(results).items():
        ok = [r for r in rs if r["status"] not in ("failed", "skipped")]
        if not ok:
            why = rs[-1].get("reason", "")[:160]
            rows.append(f"| {srv} | {model} | " + " | ".join(["–"] * 10)
                        + f" | {rs[-1]['status']}: {why} |")
            continue
        errors = sum(r["errors"] + r.get("wrk_errors", 0) for r in ok)
        rows.append(f"| {srv} | {model} | {_rng([r['rps'] for r in ok])} "
                    f"| {_rng([r['p99_ms'] for r in ok])} "
                    f"| {_rng([r['server_cpu_ms_per_req'] for r in ok], 2)} "
                    f"| {_rng([r.get('wrk_rps') for r in ok])} "
                    f"| {_rng([r.get('wrk_p50_ms') for r in ok], 2)} "
                    f"| {_rng([r.get('wrk_p95_ms') for r in ok], 2)} "
                    f"| {_rng([r.get('wrk_p99_ms') for r in ok], 2)} "
                    f"| {_rng([r.get('wrk_cpu_ms_per_req') for r in ok], 3)} "
                    f"| {_rng([r['idle_pss_mb'] for r in ok])} | {_rng([r['ready_s'] for r in ok], 1)} "
                    f"| {errors} |")
    return "\n".join(rows)


def ratios(results: list[dict]) -> str:
    """brickwork's req/s over each other server's, per model and generator, from this run: the
    median of brickwork's runs over the median of the other's (runs were interleaved)."""
    import statistics

    groups = _groups(results)
    lines = []
    for key, label in (("rps", "Python generator"), ("wrk_rps", "wrk")):
        for (srv, model), rs in groups.items():
            if srv == "brickwork":
                continue
            mine = [r.get(key) for r in groups.get(("brickwork", model), []) if r.get(key)]
            theirs = [r.get(key) for r in rs if r.get(key)]
            if mine and theirs:
                ratio = statistics.median(mine) / statistics.median(theirs)
                lines.append(f"| {model} | {label} | brickwork / {srv} | **{ratio:.2f}×** "
                             f"| {statistics.median(mine):,.0f} / {statistics.median(theirs):,.0f} |")
    if not lines:
        return ""
    return ("| model | generator | ratio | req/s (medians) |\n|---|---|---|---|\n"
            + "\n".join(lines))


def generator_note(results: list[dict]) -> str:
    ok = [r for r in results if r.get("rps") and r.get("client_cpu_pct")]
    if not ok:
        return ""
    top = max(ok, key=lambda r: r["rps"])
    cap = max(r["rps"] * 100.0 / r["client_cpu_pct"] for r in ok)
    return (f"Load generator check: at the highest rate measured ({top['rps']:,.0f} req/s, "
            f"{top['server']}/{top['model']}) the generator used {top['client_cpu_pct']:.0f} % of "
            f"one core; its best CPU cost per request extrapolates to ~{cap:,.0f} req/s on a full "
            f"core. Rows where it was near 100 % are flagged.")


# ----------------------------------------------------------------------------------- main
def main() -> int:
    bootstrap()
    a = parse_args()
    import numpy as np

    import loadgen
    import models
    import procstats
    from peers import PEERS

    def log(*m):
        print(*m, file=sys.stderr, flush=True)

    def on_term(*_):
        raise KeyboardInterrupt

    signal.signal(signal.SIGTERM, on_term)
    subreaper = procstats.become_subreaper()
    loop_kind = loadgen.install_fast_loop()
    servers = [s.strip() for s in a.servers.split(",") if s.strip()]
    model_list = [m.strip() for m in a.model.split(",") if m.strip()]
    for s in servers:
        if s not in PEERS:
            sys.exit(f"unknown server {s!r}; known: {', '.join(PEERS)}")
    for m in model_list:
        if m not in models.OUT_DIM:
            sys.exit(f"unknown model {m!r}; known: {', '.join(models.OUT_DIM)}")

    a.gens = [g.strip() for g in a.generators.split(",") if g.strip()]
    a.wrk = None
    if "wrk" in a.gens:
        a.wrk = find_wrk()
        if a.wrk is None:
            log("[bench] wrk not found (Debian: apt-get install wrk): Python generator only")
            a.gens.remove("wrk")
    if "python" not in a.gens:
        # the Python phase is what checks every answer; keep it, short, before wrk
        a.requests = min(a.requests, 500)
    cache = models.build()
    stamp = time.strftime("%Y%m%d-%H%M%S")
    rundir = HERE / "runs" / stamp
    rundir.mkdir(parents=True, exist_ok=True)
    pool_x = models.inputs(256)
    meta = {"date": time.strftime("%Y-%m-%d %H:%M:%S %Z"), "host": platform.node(),
            "cpus": os.cpu_count(), "python": platform.python_version(),
            "loadavg_start": os.getloadavg(), "args": vars(a), "event_loop": loop_kind,
            "subreaper": subreaper, "versions": {},
            "wrk": (subprocess.run([a.wrk, "-v"], capture_output=True, text=True).stdout.strip()
                    .splitlines() or [""])[0] if a.wrk else None}
    results: list[dict] = []
    env_state: dict[str, tuple[bool, str]] = {}
    log(f"[bench] results and server logs in {rundir}")
    expected = {m: models.reference(m, pool_x).astype(np.float32) for m in model_list}
    configs = []
    for model in model_list:
        for s in servers:
            peer = PEERS[s]
            if model not in peer.models or peer.skip_reason(model):
                why = peer.skip_reason(model) or f"{s} does not serve {model}"
                log(f"[bench] {s}/{model}: skipped: {why}")
                results.append({"server": s, "model": model, "status": "skipped", "reason": why})
                continue
            if peer.venv:
                if peer.venv not in env_state:
                    log(f"[bench] {s}: preparing venv .venvs/{peer.venv}")
                    env_state[peer.venv] = envs.ensure(peer.venv, log=log)
                    if env_state[peer.venv][0]:
                        meta["versions"][s] = envs.versions(peer.venv, peer.dists)
                ok, why = env_state[peer.venv]
                if not ok:
                    results.append({"server": s, "model": model, "status": "failed",
                                    "reason": f"install: {why}"})
                    continue
            configs.append((peer, model))
    try:
        # interleaved: run 1 of every config, then run 2, ... so a busy spell of the shared
        # host spreads over all servers instead of landing on one
        for i in range(1, a.runs + 1):
            for peer, model in configs:
                s = peer.name
                log(f"[bench] {s}/{model} run {i}: starting")
                r = run_one(peer, model, i, a, cache, rundir / f"{s}-{model}-{i}",
                            expected[model], pool_x, log)
                results.append(r)
                if r["status"] == "failed":
                    log(f"[bench] {s}/{model} run {i}: FAILED: {r['reason']}")
                else:
                    log(f"[bench] {s}/{model} run {i}: {r['rps']:.0f} req/s, "
                        f"p99 {r['p99_ms']:.1f} ms, errors {r['errors']}, "
                        f"cpu {r['server_cpu_ms_per_req']:.2f} ms/req, "
                        f"PSS {r['idle_pss_mb']:.0f} MB, ready {r['ready_s']:.1f}s, "
                        f"load-gen CPU {r['client_cpu_pct']:.0f}%"
                        + (f"; wrk {r['wrk_rps']:.0f} req/s, p50/p99 {r['wrk_p50_ms']:.2f}/"
                           f"{r['wrk_p99_ms']:.2f} ms, cpu {r['wrk_cpu_ms_per_req']:.3f} ms/req"
                           if "wrk_rps" in r else ""))
                time.sleep(1.0)
    except KeyboardInterrupt:
        log("[bench] interrupted: stopping servers")
        stop_all(None)
        meta["interrupted"] = True
    finally:
        stop_all(None)
    meta["loadavg_end"] = os.getloadavg()
    out = {"meta": meta, "results": results}
    md = table(results)
    print(f"\n{meta['date']}, {meta['cpus']} CPUs, {a.requests} requests after {a.warmup} "
          f"warm-up, {a.concurrency} closed-loop clients, load avg at start "
          f"{meta['loadavg_start'][0]:.2f}\n")
    sm = summary(results)
    rt = ratios(results)
    gen = generator_note(results)
    meta["generator_note"] = gen
    text = sm + "\n\nRatios (this run):\n\n" + rt + "\n\n" + gen + "\n\nEvery run:\n\n" + md
    print(text)
    (rundir / "results.json").write_text(json.dumps(out, indent=1))
    (rundir / "results.md").write_text(text + "\n")
    if a.json:
        Path(a.json).write_text(json.dumps(out, indent=1))
    log(f"[bench] wrote {rundir / 'results.json'}" + (f" and {a.json}" if a.json else ""))
    return 0


if __name__ == "__main__":
    sys.exit(main())
