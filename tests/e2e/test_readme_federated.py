"""The README's federated section runs as written: make the sites' data, `brickwork fed run` the
CNN, `brickwork serve` what it exported, and the served model answers with the trained accuracy."""

from __future__ import annotations

import json
import re
import shlex
import subprocess
import sys
from pathlib import Path

import httpx
import numpy as np
import pytest
from tests.e2e import serve_helpers

from brickwork.federated import load_npz

ROOT = Path(__file__).resolve().parents[2]
CLI = [sys.executable, "-c", "import sys; from brickwork.cli import main; sys.exit(main())"]


def commands() -> list[list[str]]:
    section = (ROOT / "README.md").read_text().split("## Federated training", 1)[1].split("\n## ", 1)[0]
    block = re.search(r"```bash\n(.*?)```", section, re.S)
    assert block, "README has no bash block under '## Federated training'"
    return [shlex.split(line.split("#", 1)[0]) for line in block.group(1).splitlines() if line.strip()]


@pytest.mark.slow
@pytest.mark.timeout(600)
def test_readme_federated_train_then_serve() -> None:
    pytest.importorskip("torch")
    pytest.importorskip("onnxruntime")
    data, train, serve = commands()
    assert data[:2] == [".venv/bin/python", "-m"] and train[:3] == [".venv/bin/brickwork", "fed", "run"]
    assert serve[:2] == [".venv/bin/brickwork", "serve"]
    subprocess.run([sys.executable, *data[1:]], cwd=ROOT, check=True, capture_output=True, timeout=120)
    out = subprocess.run([*CLI, *train[1:], "--json", "--no-plot"], cwd=ROOT, capture_output=True, text=True,
                         timeout=540)
    assert out.returncode == 0, out.stderr[-3000:]
    report = json.loads(out.stdout)
    assert Path(report["pipeline"]) == ROOT / serve[2]  # the file the README serves is the one written
    x, y = load_npz(ROOT / "examples/federated/.data/test.npz")
    body = {"inputs": [{"name": "input", "datatype": "FP32", "shape": list(x.shape), "data": x.ravel().tolist()}]}
    with serve_helpers.served([ROOT / serve[2]], cwd=ROOT) as server:
        r = httpx.post(f"{server.url}/v2/models/digits_cnn/infer", json=body, timeout=60)
    assert r.status_code == 200, r.text
    labels = np.asarray(next(o for o in r.json()["outputs"] if o["name"] == "label")["data"])
    assert float(np.mean(labels == y)) == pytest.approx(report["rounds"][-1]["accuracy"], abs=0.005)
    assert report["rounds"][-1]["accuracy"] > 0.95
