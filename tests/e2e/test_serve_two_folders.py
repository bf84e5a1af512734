"""Two copies of the quickstart in two folders, each with its own `steps.decision`, served side
by side by one `brickwork serve` (v1 and v2 of a pipeline): each answers with its own module, in
thread workers and in worker processes (which re-import the module from the brick's spec)."""

from __future__ import annotations

import shutil
from pathlib import Path

import httpx
import pytest
from tests.e2e.serve_helpers import served

ROOT = Path(__file__).resolve().parents[2]


def copy_quickstart(folder: Path, name: str, label: str) -> Path:
    shutil.copytree(ROOT / "examples" / "quickstart", folder)
    steps = folder / "steps.py"
    steps.write_text(steps.read_text() + f"\n\ndef decision(probability: float) -> str:\n    return {label!r}\n")
    yaml_path = folder / "pipeline.yaml"
    yaml_path.write_text(yaml_path.read_text().replace("name: quickstart", f"name: {name}"))
    return yaml_path


@pytest.mark.parametrize("backend", ["local", "process"])
def test_each_folder_answers_with_its_own_module(tmp_path, backend):
    v1 = copy_quickstart(tmp_path / "v1", "sentiment-v1", "answer of v1")
    v2 = copy_quickstart(tmp_path / "v2", "sentiment-v2", "answer of v2")
    body = {"inputs": [{"name": "text", "datatype": "BYTES", "shape": [1], "data": ["great"]}]}
    with served([v1, v2], "--backend", backend, cwd=tmp_path) as s, httpx.Client(timeout=30) as http:
        for model, expected in (("sentiment-v1", "answer of v1"), ("sentiment-v2", "answer of v2")):
            r = http.post(f"{s.url}/v2/models/{model}/infer", json=body)
            assert r.status_code == 200, r.text
            out = {o["name"]: o["data"] for o in r.json()["outputs"]}
            assert out["decision"] == [expected]
