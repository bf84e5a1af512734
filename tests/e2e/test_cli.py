"""The brickwork command as a user runs it: a subprocess on the quickstart example."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
QUICKSTART = ROOT / "examples" / "quickstart" / "pipeline.yaml"


def brickwork(*args: str, stdin: str | None = None) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "brickwork.cli", *args], capture_output=True, text=True,
                          input=stdin, timeout=120, cwd=ROOT, env={**os.environ, "PYTHONWARNINGS": "ignore"})


def test_validate_ok_and_lists_adapters():
    out = brickwork("validate", str(QUICKSTART))
    assert out.returncode == 0, out.stderr
    assert "pipeline.yaml: ok" in out.stdout
    assert "adapter before decision.probability: squeeze(probability, axis=1)" in out.stdout


def test_validate_fails_with_exit_1_and_the_reason(tmp_path):
    bad = tmp_path / "bad.yaml"
    bad.write_text("bricks:\n  s: {onnx: missing.onnx}\ngraph: s\n")
    out = brickwork("validate", str(bad))
    assert out.returncode == 1
    assert "bad.yaml: invalid" in out.stderr and "missing.onnx" in out.stderr


def test_run_with_inline_json_file_and_example(tmp_path):
    out = brickwork("run", str(QUICKSTART), "--input", '{"text": ["I love this, great!", "awful"]}')
    assert out.returncode == 0, out.stderr
    assert json.loads(out.stdout)["decision"] == ["positive", "negative"]

    request = tmp_path / "req.json"
    request.write_text('{"text": ["bad and terrible"]}')
    out = brickwork("run", str(QUICKSTART), "--input-file", str(request))
    assert json.loads(out.stdout)["decision"] == ["negative"]

    out = brickwork("run", str(QUICKSTART), "--input-file", "-", stdin='{"text": ["the best"]}')
    assert json.loads(out.stdout)["decision"] == ["positive"]

    out = brickwork("run", str(QUICKSTART))  # the YAML's example request
    assert len(json.loads(out.stdout)["probability"]) == 2


def test_run_reports_bad_input_clearly():
    out = brickwork("run", str(QUICKSTART), "--input", '{"txt": ["x"]}')
    assert out.returncode == 1 and "unknown input(s) ['txt']" in out.stderr
    out = brickwork("run", str(QUICKSTART), "--input", "{not json")
    assert out.returncode == 1 and "input is not valid JSON" in out.stderr


def test_graph_renders_mermaid_and_dot():
    out = brickwork("graph", str(QUICKSTART))
    assert out.returncode == 0 and out.stdout.startswith("flowchart LR")
    assert "scorer [thread x1, batch<=32]" in out.stdout
    assert "cast probability to FP64; squeeze(probability, axis=1)" in out.stdout
    out = brickwork("graph", str(QUICKSTART), "--format", "dot")
    assert out.stdout.startswith('digraph "quickstart"')
