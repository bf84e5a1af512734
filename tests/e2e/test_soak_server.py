"""Soak: many requests through ``brickwork serve`` (a process-worker stage behind a fallback
ladder and a breaker, then an inline stage), with a few malformed requests and model errors
mixed in; after warm-up the server's and the worker's RSS may grow by at most 5 %.

The full run is 100,000 requests (``BRICKWORK_SOAK=1``; about 40 s on 2 cores);
the default suite runs a smaller one with the same checks.
"""

from __future__ import annotations

import os
import threading
import time
from pathlib import Path

import orjson
import pytest
from tests.e2e import serve_helpers as sh
from tests.e2e.fault_kit import RawClient, assert_gone, metrics, rss_bytes, workers

pytestmark = pytest.mark.timeout(900)

FULL = os.environ.get("BRICKWORK_SOAK") == "1"
TOTAL = 100_000 if FULL else 20_000
WARMUP = 10_000 if FULL else 5_000
CONCURRENCY = 8
MAX_GROWTH = 0.05

SOAK_YAML = """name: soak
bricks:
  model: {fake: true, scale: 2.0, fail_on: -13.0, worker: process, timeout_s: 2.0,
          breaker: {failures: 50, reset_after_s: 1.0},
          batching: {max_batch_size: 16, max_delay_s: 0.001}, fallback: [rules]}
  rules: {fake: true, scale: -2.0, worker: inline, blocking: false}
  post: {fake: true, input_name: y, output_name: z, scale: 0.5, worker: inline, blocking: false}
graph: model >> post
"""


def _request(i: int) -> tuple[bytes, int]:
    """Mostly valid; every 50th malformed (400), every 101st a model error (500)."""
    if i % 50 == 49:
        return b'{"inputs": [{"name": "x", "datatype": "FP32", "shape": [3], "data": [1, 2]}]}', 400
    x = [-13.0] if i % 101 == 100 else [float(i % 1000), 1.0, 2.0][: 1 + i % 3]
    doc = {"inputs": [{"name": "x", "datatype": "FP32", "shape": [len(x)], "data": x}]}
    return orjson.dumps(doc), 500 if x == [-13.0] else 200


def _drive(port: int, start: int, stop: int, failures: list[str]) -> None:
    lock = threading.Lock()
    nxt = start

    def client() -> None:
        nonlocal nxt
        conn = RawClient(port, timeout_s=30.0)
        try:
            while True:
                with lock:
                    i = nxt
                    if i >= stop:
                        return
                    nxt += 1
                body, want = _request(i)
                status, _, raw = conn.request("POST", "/v2/models/soak/infer", body,
                                              {"Content-Type": "application/json"})
                if status != want and len(failures) < 20:
                    failures.append(f"request {i}: HTTP {status}, wanted {want}: {raw[:200]!r}")
                elif status == 200:
                    z = orjson.loads(raw)["outputs"][0]["data"]
                    if z[0] != float(i % 1000) and len(failures) < 20:
                        failures.append(f"request {i}: wrong answer {z}")
        finally:
            conn.close()

    threads = [threading.Thread(target=client) for _ in range(CONCURRENCY)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(600)
    assert not any(t.is_alive() for t in threads), "the soak hung"


def test_soak_rss_growth_within_5_percent_after_warmup(tmp_path: Path) -> None:
    (tmp_path / "soak.yaml").write_text(SOAK_YAML)
    served = sh.start([tmp_path / "soak.yaml"], cwd=tmp_path)
    pids: list[int] = []
    try:
        pids = workers(served.proc.pid)
        assert len(pids) == 1
        failures: list[str] = []
        _drive(served.port, 0, WARMUP, failures)
        server0, worker0 = rss_bytes(served.proc.pid), rss_bytes(pids[0])
        t0 = time.monotonic()
        _drive(served.port, WARMUP, TOTAL, failures)
        took = time.monotonic() - t0
        server1, worker1 = rss_bytes(served.proc.pid), rss_bytes(pids[0])
        assert not failures, failures
        m = metrics(served.url)
        codes = {c: int(m.get(f'brickwork_requests_total{{model="soak",code="{c}"}}', 0)) for c in (200, 400, 500)}
        assert sum(codes.values()) == TOTAL, codes
        assert m['brickwork_stage_restarts_total{model="soak",stage="model"}'] == 0
        assert workers(served.proc.pid) == pids  # the same worker served the whole run
        report = (f"soak: {TOTAL} requests ({WARMUP} warm-up), {(TOTAL - WARMUP) / took:.0f} req/s, "
                  f"codes {codes}; RSS server {server0 / 2**20:.1f} -> {server1 / 2**20:.1f} MiB "
                  f"({(server1 - server0) / server0:+.2%}), worker {worker0 / 2**20:.1f} -> "
                  f"{worker1 / 2**20:.1f} MiB ({(worker1 - worker0) / worker0:+.2%})")
        print("\n" + report)
        assert server1 <= server0 * (1 + MAX_GROWTH), report
        assert worker1 <= worker0 * (1 + MAX_GROWTH), report
    finally:
        sh.stop(served.proc)
        assert_gone(pids)
