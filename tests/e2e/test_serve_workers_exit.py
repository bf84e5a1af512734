"""``brickwork serve --workers 2`` exits on SIGTERM with framework bricks (ONNX Runtime, torch),
idle and after requests. Before the fix the parent's compile() created the ONNX Runtime
session before ``fork()``; each worker inherited it without its threads and deadlocked closing
it at shutdown, so the server never exited (and a second signal did nothing)."""

from __future__ import annotations

import os
import shutil
import signal
import subprocess
import time
from pathlib import Path

import httpx
import pytest
from tests.e2e import serve_helpers as sh

pytestmark = pytest.mark.timeout(180)

EXIT_WITHIN_S = 30.0  # generous: the machine is shared; a deadlock never exits at all
QUICKSTART = Path(__file__).resolve().parents[2] / "examples" / "quickstart"

TORCH_YAML = """name: lin
bricks:
  lin: {torch: lin.pt, inputs: {x: [FP32, [-1, 4]]}, outputs: {y: [FP32, [-1, 2]]}}
graph: lin
"""


def _onnx(folder: Path) -> tuple[Path, str, dict]:
    for name in ("pipeline.yaml", "steps.py", "scorer.onnx"):
        shutil.copy(QUICKSTART / name, folder / name)
    body = {"inputs": [{"name": "text", "datatype": "BYTES", "shape": [2], "data": ["I love it", "awful"]}]}
    return folder / "pipeline.yaml", "quickstart", body


def _torch(folder: Path) -> tuple[Path, str, dict]:
    torch = pytest.importorskip("torch")
    torch.manual_seed(0)
    torch.jit.script(torch.nn.Linear(4, 2)).save(str(folder / "lin.pt"))
    (folder / "lin.yaml").write_text(TORCH_YAML)
    body = {"inputs": [{"name": "x", "datatype": "FP32", "shape": [2, 4], "data": [0.5] * 8}]}
    return folder / "lin.yaml", "lin", body


@pytest.mark.parametrize("requests", [0, 20], ids=["idle", "after-requests"])
@pytest.mark.parametrize("make", [_onnx, _torch], ids=["onnx", "torch"])
def test_two_workers_exit_on_sigterm(tmp_path: Path, make, requests: int) -> None:
    path, model, body = make(tmp_path)
    served = sh.start([path], "--workers", "2", cwd=tmp_path)
    try:
        with httpx.Client(timeout=30.0) as http:
            for _ in range(requests):
                r = http.post(f"{served.url}/v2/models/{model}/infer", json=body)
                assert r.status_code == 200, r.text
        t0 = time.monotonic()
        served.proc.send_signal(signal.SIGTERM)
        try:
            code = served.proc.wait(EXIT_WITHIN_S)
        except subprocess.TimeoutExpired:
            pytest.fail(f"brickwork serve --workers 2 ({model}) still running {EXIT_WITHIN_S:g} s after SIGTERM")
        assert code == 0, code
        print(f"\n{model} ({requests} requests): exited {time.monotonic() - t0:.2f} s after SIGTERM")
    finally:
        if served.proc.poll() is None:  # hung: its forked workers too (a session of their own)
            os.killpg(served.proc.pid, signal.SIGKILL)
            served.proc.wait(10)
