"""`brickwork fed run` as a subprocess: train, export, then `brickwork serve` the result; and
`--resume` after the server process is SIGKILLed mid-run."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import httpx
import numpy as np
import pytest
from tests.e2e import serve_helpers
from tests.integration import fed_kit

pytestmark = pytest.mark.timeout(300)
ROOT = Path(__file__).resolve().parents[2]
CLI = [sys.executable, "-c", "import sys; from brickwork.cli import main; sys.exit(main())"]


def write_config(folder: Path, data: dict[str, Path], *, client: str, rounds: int, extra: str = "",
                 options: str = "{}") -> Path:
    sites = "\n".join(f"  - {{id: site{i}, data: {data[f'site{i}']}}}" for i in range(3))
    path = folder / "fed.yaml"
    path.write_text(f"""name: fedtest
client: {client}
options: {options}
clients:
{sites}
rounds: {rounds}
sampling: {{min_clients: 2}}
deadline_s: 60
secure_aggregation: true
{extra}
""")
    return path


def test_fed_run_exports_a_pipeline_that_brickwork_serve_serves(tmp_path: Path) -> None:
    pytest.importorskip("skl2onnx")
    pytest.importorskip("onnxruntime")
    data = fed_kit.split(tmp_path / "data", sites=3)
    cfg = write_config(tmp_path, data, client="examples.federated.clients:logreg", rounds=4,
                       extra=f"test: {data['test']}\npreload: [sklearn.linear_model, sklearn.metrics]\n"
                             "export: {onnx: out/fedtest.onnx, pipeline: out/fedtest.serve.yaml}")
    out = subprocess.run([*CLI, "fed", "run", str(cfg), "--json", "--plot", str(tmp_path / "acc.png")], cwd=ROOT,
                         capture_output=True, text=True, timeout=240)
    assert out.returncode == 0, out.stderr[-3000:]
    report = json.loads(out.stdout)
    assert [r["round"] for r in report["rounds"]] == [1, 2, 3, 4]
    assert "round 4/4" in out.stderr and "[####" in out.stderr  # the bar and the line
    assert (tmp_path / "acc.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    trained_acc = report["rounds"][-1]["accuracy"]
    pipeline = Path(report["pipeline"])
    assert pipeline == tmp_path / "out" / "fedtest.serve.yaml" and Path(report["onnx"]).is_file()

    x, y = fed_kit.load_npz(data["test"])
    body = {"inputs": [{"name": "input", "datatype": "FP32", "shape": list(x.shape),
                        "data": x.astype(np.float32).ravel().tolist()}]}
    with serve_helpers.served([pipeline], cwd=tmp_path) as server:
        r = httpx.post(f"{server.url}/v2/models/fedtest/infer", json=body, timeout=30)
    assert r.status_code == 200, r.text
    outputs = {o["name"]: o for o in r.json()["outputs"]}
    labels = np.asarray(outputs["label"]["data"])
    served_acc = float(np.mean(labels == y))
    assert served_acc > 0.85
    assert abs(served_acc - trained_acc) < 0.01  # the served model is the trained one


def _gone(pid: int) -> bool:
    try:
        status = Path(f"/proc/{pid}/status").read_text()
    except OSError:
        return True
    return "zombie" in status.lower()


def test_resume_after_the_server_is_killed(tmp_path: Path) -> None:
    data = fed_kit.split(tmp_path / "data", sites=3)
    pids = tmp_path / "pids"
    pids.mkdir()
    cfg = write_config(tmp_path, data, client="tests.integration.fed_kit:faulty", rounds=6,
                       options=f"{{slow_s: 0.4, pid_dir: {pids}}}")
    proc = subprocess.Popen([*CLI, "fed", "run", str(cfg), "-q"], cwd=ROOT, stdout=subprocess.DEVNULL,
                            stderr=subprocess.PIPE, text=True, start_new_session=True)
    try:
        deadline = time.monotonic() + 120
        while not (tmp_path / ".fed/fedtest/round-0002.json").exists():
            assert proc.poll() is None, proc.stderr.read() if proc.stderr else ""
            assert time.monotonic() < deadline, "no checkpoint of round 2"
            time.sleep(0.05)
        os.kill(proc.pid, signal.SIGKILL)
        proc.wait(10)
        client_pids = [int(p.stem) for p in pids.glob("*.pid")]
        assert len(client_pids) == 3
        deadline = time.monotonic() + 20  # the clients see their pipe close and leave by themselves
        while not all(_gone(p) for p in client_pids) and time.monotonic() < deadline:
            time.sleep(0.1)
        left = [p for p in client_pids if not _gone(p)]
        for p in left:
            os.kill(p, signal.SIGKILL)
        assert not left, f"client processes outlived the killed server: {left}"
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait(10)
    out = subprocess.run([*CLI, "fed", "run", str(cfg), "--resume", "--json", "--no-plot"], cwd=ROOT,
                         capture_output=True, text=True, timeout=240)
    assert out.returncode == 0, out.stderr[-3000:]
    report = json.loads(out.stdout)
    assert report["resumed_from"] >= 2
    assert [r["round"] for r in report["rounds"]] == [1, 2, 3, 4, 5, 6]
    assert report["rounds"][-1]["accuracy"] > report["rounds"][0]["accuracy"]
