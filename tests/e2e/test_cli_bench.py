"""`brickwork bench` without an example: a generated request with plausible values (a model that
rejects empty strings and all-zero tensors answers), announced on stderr; `bench module:attr`
imports the module from the working directory, as a user runs the console script."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

SRC = Path(__file__).resolve().parents[2] / "src"

PICKY = '''
from typing import Annotated

import numpy as np

import brickwork as bw


def picky(text: str, x: Annotated[np.ndarray, bw.Tensor("FP32", (4,))], n: int) -> float:
    """Refuses what a zero-filled request sends: an empty string, all-zero features, n = 0."""
    if not text.strip():
        raise ValueError("empty text")
    if not np.any(x) or np.any(x < 0) or np.any(x >= 1):
        raise ValueError(f"features out of range: {x}")
    if n <= 0:
        raise ValueError("n must be positive")
    return float(x.sum()) + len(text) + n


graph = bw.graph(bw.function(picky), name="picky")
'''

YAML = "name: picky\nbricks:\n  picky: {python: \"picky:picky\"}\ngraph: picky\n"


def run_cli(*args: str, cwd: Path, tmp: Path) -> subprocess.CompletedProcess[str]:
    """Like the installed `brickwork` script: its own folder, not the cwd, is on sys.path."""
    runner = tmp / "bin" / "brickwork_cli.py"
    runner.parent.mkdir(exist_ok=True)
    runner.write_text("import sys\nfrom brickwork.cli import main\nsys.exit(main())\n")
    env = {**os.environ, "PYTHONPATH": str(SRC), "PYTHONWARNINGS": "ignore"}
    return subprocess.run([sys.executable, str(runner), *args], cwd=cwd, capture_output=True, text=True,
                          timeout=120, env=env)


def test_generated_request_is_realistic_and_announced(tmp_path):
    work = tmp_path / "work"
    work.mkdir()
    (work / "picky.py").write_text(PICKY)
    (work / "p.yaml").write_text(YAML)
    report = work / "r.json"
    out = run_cli("bench", "p.yaml", "--requests", "40", "--concurrency", "4", "--warmup", "2",
                  "--no-progress", "--json", str(report), cwd=work, tmp=tmp_path)
    assert out.returncode == 0, out.stdout + out.stderr
    figures = json.loads(report.read_text())
    assert figures["ok"] == 40 and figures["errors"] == {}
    assert "has no `example` and no --input was given" in out.stderr
    assert "text: BYTES[1] ['" in out.stderr and "x: float32[1, 4]" in out.stderr and "n: int64[1]" in out.stderr


def test_bench_module_attr_imports_from_the_working_directory(tmp_path):
    work = tmp_path / "work"
    work.mkdir()
    (work / "picky.py").write_text(PICKY)
    out = run_cli("bench", "picky:graph", "--requests", "20", "--concurrency", "2", "--warmup", "1",
                  "--no-progress", cwd=work, tmp=tmp_path)
    assert out.returncode == 0, out.stdout + out.stderr
    assert "pipeline 'picky': 20 requests" in out.stdout
