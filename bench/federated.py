"""Federated training: brickwork vs Flower 1.42 on the same task, one run each, ratio from that run.

    .venv/bin/python bench/federated.py                    # creates bench/.venvs/flwr on first use
    .venv/bin/python bench/federated.py --json out.json    # also writes the figures

Task: scikit-learn's digits, split non-IID over 3 sites (examples/federated/data.py), an SGD
logistic regression (log loss, eta0 0.001, zeros to start), 3 rounds of FedAvg with 2 local
epochs each, accuracy on the held-out 30 %. Each side runs in its own fresh process and venv:
Flower's simulation runtime (its Ray backend, legacy NumPyClient + FedAvg, server-side
evaluate_fn) in bench/.venvs/flwr, brickwork's ``federated.run`` (one process per client,
evaluator process) in brickwork's own environment. Flower pins old fastapi/starlette/uvicorn
and its own Ray, so it cannot share brickwork's venv.

Reported per side: the accuracy after each round, the process's wall time (interpreter start to
exit, what a user waits), the time inside the run call, and per round the duration, the slowest
client's local training (fit) and the overhead (duration - fit: everything that is not training).
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent
ROOT = HERE.parent
VENV = HERE / ".venvs" / "flwr"
PACKAGES = ["flwr[simulation]==1.42.0", "scikit-learn", "numpy"]
MARKER = VENV / ".bench-installed.json"


def ensure_flower(log=print) -> tuple[bool, str]:
    """Create bench/.venvs/flwr with Flower 1.42 (reused while the package list is the same)."""
    if MARKER.exists() and json.loads(MARKER.read_text()).get("packages") == PACKAGES:
        return True, "ready"
    base = getattr(sys, "_base_executable", None) or sys.executable
    logf = HERE / ".venvs" / "flwr.install.log"
    logf.parent.mkdir(parents=True, exist_ok=True)
    log(f"[bench] creating {VENV} (log: {logf})")
    try:
        with open(logf, "w") as f:
            subprocess.run([base, "-m", "venv", str(VENV)], check=True, stdout=f, stderr=subprocess.STDOUT)
            py = str(VENV / "bin" / "python")
            subprocess.run([py, "-m", "pip", "install", "-q", "--upgrade", "pip"], stdout=f, stderr=subprocess.STDOUT)
            subprocess.run([py, "-m", "pip", "install", *PACKAGES], check=True, stdout=f, stderr=subprocess.STDOUT,
                           timeout=1800)
    except (subprocess.CalledProcessError, subprocess.TimeoutExpired, OSError) as exc:
        return False, f"installing Flower failed: {exc} (see {logf})"
    MARKER.write_text(json.dumps({"packages": PACKAGES, "installed_at": time.strftime("%Y-%m-%d %H:%M:%S")}))
    return True, "installed"


def side(cmd: list[str], env: dict[str, str]) -> dict:
    t0 = time.perf_counter()
    out = subprocess.run(cmd, capture_output=True, text=True, env=env, cwd=ROOT, timeout=900)
    wall = time.perf_counter() - t0
    if out.returncode != 0:
        raise RuntimeError(f"{cmd[1]} failed ({out.returncode}): {out.stderr[-2000:]}")
    result = json.loads(out.stdout.strip().splitlines()[-1])
    result["wall_s"] = wall
    return result


def fmt(r: dict) -> str:
    acc = " → ".join(f"{a:.3f}" for a in r["accuracy_per_round"])
    over = ", ".join(f"{o:.2f}" for o in r["overhead_s"])
    steady = r["overhead_s"][1:] or r["overhead_s"]
    return (f"| {r['side']} | {r['accuracy']:.3f} ({acc}) | {r['wall_s']:.1f} | {r['run_s']:.1f} | {over} | "
            f"{sum(steady) / len(steady) * 1000:.0f} | {sum(r['fit_s']):.2f} |")


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--rounds", type=int, default=3)
    p.add_argument("--epochs", type=int, default=2)
    p.add_argument("--clients", type=int, default=3)
    p.add_argument("--json", default=None, help="write the figures here")
    a = p.parse_args()
    sys.path.insert(0, str(ROOT))
    from examples.federated.data import split

    data = HERE / ".cache" / "federated"
    split(data, sites=a.clients)
    task = [str(data), "--rounds", str(a.rounds), "--epochs", str(a.epochs), "--clients", str(a.clients)]
    env = {**os.environ, "PYTHONWARNINGS": "ignore"}
    env["PYTHONPATH"] = os.pathsep.join([str(ROOT / "src"), str(ROOT), env.get("PYTHONPATH", "")])
    results = [side([sys.executable, str(HERE / "federated" / "brickwork_side.py"), *task], env),
               side([sys.executable, str(HERE / "federated" / "brickwork_side.py"), *task, "--secure"], env)]
    ok, why = ensure_flower()
    if ok:
        flower_env = {k: v for k, v in env.items() if k != "PYTHONPATH"}
        results.append(side([str(VENV / "bin" / "python"), str(HERE / "federated" / "flwr_side.py"), *task],
                            flower_env))
    print(f"{a.clients} clients x {a.rounds} rounds x {a.epochs} local epochs, digits non-IID, "
          f"{time.strftime('%Y-%m-%d %H:%M UTC', time.gmtime())}, "
          f"load average {os.getloadavg()[0]:.1f} on {os.cpu_count()} CPUs")
    print("| side | accuracy (per round) | wall s | in run s | overhead per round s | steady overhead ms "
          "| local training s |")
    print("|---|---|---|---|---|---|---|")
    for r in results:
        print(fmt(r))
    if ok:
        b, f = results[0], results[-1]
        steady_b, steady_f = (sum(r["overhead_s"][1:]) / max(1, len(r["overhead_s"]) - 1) * 1000 for r in (b, f))
        print(f"\nbrickwork / Flower wall time: {b['wall_s'] / f['wall_s']:.2f} "
              f"({f['wall_s'] / b['wall_s']:.1f}x faster); accuracy {b['accuracy']:.3f} vs {f['accuracy']:.3f}; "
              f"steady-state overhead per round {steady_b:.0f} ms vs {steady_f:.0f} ms")
    else:
        print(f"\nFlower side not run: {why}")
    if a.json:
        Path(a.json).write_text(json.dumps({"results": results, "flower": why}, indent=1))
    return 0


if __name__ == "__main__":
    sys.exit(main())
