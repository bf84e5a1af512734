"""dump_graph with a path: model paths relative to the written YAML, in-memory models saved
beside it (and reloadable by another process once this one has gone); without a path a graph
holding an in-memory model is refused with the reason."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

import brickwork as bw
from brickwork.graph import dump_graph, load_graph

ROOT = Path(__file__).resolve().parents[2]


def fitted():
    from sklearn.linear_model import LogisticRegression

    rng = np.random.default_rng(0)
    x = rng.normal(size=(60, 3))
    return LogisticRegression().fit(x, (x[:, 0] > 0).astype(np.int64)), x[:4]


def test_in_memory_sklearn_model_is_refused_without_a_path():
    model, _ = fitted()
    graph = bw.graph(bw.sklearn(model, name="risk"), name="risk")
    with pytest.raises(bw.ConfigError, match="in-memory model.*temporary.*dump_graph\\(graph, path="):
        dump_graph(graph)


def test_in_memory_sklearn_model_is_written_beside_the_yaml_and_loads_in_a_new_process(tmp_path):
    model, x = fitted()
    graph = bw.graph(bw.sklearn(model, name="risk"), name="risk")
    target = tmp_path / "out" / "pipeline.yaml"
    text = dump_graph(graph, target)
    assert target.read_text() == text
    assert "sklearn: risk.joblib" in text and (tmp_path / "out" / "risk.joblib").is_file()
    expected = model.predict(x).tolist()
    code = ("import json, sys, numpy as np; from brickwork.graph import load_pipeline\n"
            "with load_pipeline(sys.argv[1]) as p:\n"
            "    print(json.dumps(p.infer({'features': np.array(json.loads(sys.argv[2]))})['label'].tolist()))")
    out = subprocess.run([sys.executable, "-c", code, str(target), json.dumps(x.tolist())], cwd=tmp_path,
                         capture_output=True, text=True, timeout=120)
    assert out.returncode == 0, out.stderr
    assert json.loads(out.stdout.strip().splitlines()[-1]) == expected


def test_file_paths_are_written_relative_to_the_yaml(tmp_path):
    parsed = load_graph(ROOT / "examples" / "quickstart" / "pipeline.yaml")
    target = tmp_path / "copy" / "pipeline.yaml"
    dump_graph(parsed.graph, target)
    again = load_graph(target)  # loads from another folder: scorer.onnx found through the relative path
    assert again.graph.compile() is not None


def test_readme_dump_snippet_runs(tmp_path):
    readme = (ROOT / "README.md").read_text()
    block = readme.split("from brickwork.graph import dump_graph, load_graph", 1)[1].split("```", 1)[0]
    code = "from brickwork.graph import dump_graph, load_graph" + block
    code = code.replace('"build/quickstart/pipeline.yaml"', repr(str(tmp_path / "q" / "pipeline.yaml")))
    out = subprocess.run([sys.executable, "-c", code], cwd=ROOT, capture_output=True, text=True, timeout=120)
    assert out.returncode == 0, out.stderr
    assert "name: quickstart" in out.stdout and (tmp_path / "q" / "pipeline.yaml").is_file()
