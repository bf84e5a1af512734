"""Run inside a private network namespace (only loopback exists, so every Ray node is
127.0.0.1): a real two-node Ray cluster, three pipelines under load, and node_b killed
mid-load. Prints one JSON line with what happened. Usage: python ray_two_nodes.py WORKDIR
"""

from __future__ import annotations

import json
import os
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

work = Path(sys.argv[1])
os.environ.update(RAY_USAGE_STATS_ENABLED="0", RAY_AUTH_MODE="disabled")  # no one else can reach it
ray_bin = str(Path(sys.executable).parent / "ray")


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def node(name: str, *args: str) -> subprocess.Popen[bytes]:
    with open(work / f"{name}.log", "wb") as log:
        return subprocess.Popen([ray_bin, "start", "--block", "--disable-usage-stats", "--num-cpus=2",
                                 "--node-ip-address=127.0.0.1", "--object-store-memory=200000000", *args],
                                stdout=log, stderr=subprocess.STDOUT, start_new_session=True)


def kill_group(proc: subprocess.Popen[bytes]) -> None:
    try:
        os.killpg(proc.pid, signal.SIGKILL)
    except ProcessLookupError:
        pass
    proc.wait(30)


port = free_port()
temp = Path(tempfile.mkdtemp(prefix="bwr-", dir="/tmp"))  # Unix socket paths must stay < 108 bytes
head = node("head", "--head", f"--port={port}", f"--temp-dir={temp}", "--include-dashboard=false",
            '--resources={"node_a": 1}')
other = None
result: dict[str, object] = {"temp": str(temp)}
try:
    import ray

    deadline = time.monotonic() + 120
    while subprocess.run([ray_bin, "status", f"--address=127.0.0.1:{port}"],
                         capture_output=True).returncode != 0:  # the head's GCS and raylet are up
        assert time.monotonic() < deadline and head.poll() is None, "the head node never came up"
        time.sleep(1.0)
    ray.init(address=f"127.0.0.1:{port}", log_to_driver=False, configure_logging=False,
             _node_ip_address="127.0.0.1")
    other = node("node_b", f"--address=127.0.0.1:{port}", f"--temp-dir={temp}", '--resources={"node_b": 1}')
    while len([n for n in ray.nodes() if n["Alive"]]) < 2:
        assert time.monotonic() < deadline and other.poll() is None, \
            "node_b never joined: " + (work / "node_b.log").read_text()[-2000:]
        time.sleep(0.2)
    node_b = next(n["NodeID"] for n in ray.nodes() if n["Alive"] and "node_b" in n["Resources"])
    result["addresses"] = sorted({n["NodeManagerAddress"] for n in ray.nodes()})

    import numpy as np

    from brickwork.cluster import RayBackend
    from brickwork.graph import load_graph

    # spread: two replicas over both nodes, no fallback: the survivor answers, the lost replica
    # is re-placed on node_a. pinned: one replica that only node_b can host, behind a timeout:
    # with a fallback rung the static default answers (labelled), without one a clear error.
    bricks = {
        "spread": "    replicas: 2\n    ray: {spread: true, num_cpus: 1}\n",
        "pinned": "    timeout_s: 1.0\n    ray: {resources: {node_b: 0.5}}\n"
                  "    fallback: [{default: {y: [-1.0]}}]\n",
        "pinned_bare": "    timeout_s: 1.0\n    ray: {resources: {node_b: 0.5}}\n",
    }
    pipelines = {}
    for name, extra in bricks.items():
        (work / f"{name}.yaml").write_text(
            f"name: {name}\nbricks:\n  model:\n    fake: true\n    delay_s: 0.01\n"
            f"    health_timeout_s: 2.0\n{extra}graph: model\n")
        pipelines[name] = load_graph(work / f"{name}.yaml").compile(
            backend=RayBackend(address=f"127.0.0.1:{port}"))
    for pipeline in pipelines.values():
        pipeline.__enter__()
    try:
        def nodes_of(name: str) -> list[str]:
            return [r["node"] for r in pipelines[name].stats()["stages"]["model"]["replica_info"]]

        result["placed_on_b"] = {name: nodes_of(name).count(node_b) for name in pipelines}
        counts = {name: {"ok": 0, "fallback": 0, "error": 0} for name in pipelines}
        errors: dict[str, set[str]] = {name: set() for name in pipelines}
        stop = threading.Event()
        lock = threading.Lock()

        def load(name: str) -> None:
            while not stop.is_set():
                try:
                    out = pipelines[name].infer({"x": np.ones(2, np.float32)}, timeout_s=30)
                    key = "fallback" if out.degraded else "ok"
                except Exception as exc:
                    key = "error"
                    errors[name].add(type(exc).__name__)
                    time.sleep(0.05)
                with lock:
                    counts[name][key] += 1

        threads = [threading.Thread(target=load, args=(name,)) for name in pipelines for _ in range(3)]
        for t in threads:
            t.start()
        time.sleep(3.0)
        before = {name: dict(c) for name, c in counts.items()}
        kill_group(other)  # node_b is lost mid-load
        other = None
        lost_at = time.monotonic()

        def replaced() -> bool:
            info = pipelines["spread"].stats()["stages"]["model"]["replica_info"]
            return all(r["alive"] and r["node"] != node_b for r in info)

        while not replaced() and time.monotonic() - lost_at < 120:
            time.sleep(0.2)
        result["replaced_after_s"] = round(time.monotonic() - lost_at, 2) if replaced() else None
        time.sleep(2.0)
        stop.set()
        for t in threads:
            t.join(60)
        result["before"] = before
        result["counts"] = counts
        result["errors"] = {name: sorted(e) for name, e in errors.items()}
        result["after"] = pipelines["spread"].infer({"x": np.full(2, 3.0, np.float32)})["y"].tolist()
        result["deaths"] = sum(r["deaths"] for r in pipelines["spread"].stats()["stages"]["model"]["replica_info"])
    finally:
        for pipeline in pipelines.values():
            pipeline.__exit__(None, None, None)
    ray.shutdown()
finally:
    if other is not None:
        kill_group(other)
    kill_group(head)
    shutil.rmtree(temp, ignore_errors=True)
print(json.dumps(result), flush=True)
