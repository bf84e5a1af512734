"""The README's "When things go wrong" YAML loads as written and its ladder answers: the two
ONNX models and the rules module it names are written into a folder beside it, the primary's
workers are really broken (its model file corrupted, its workers killed, so the replacements
cannot load), and the simpler model answers, labelled."""

from __future__ import annotations

import os
import re
import signal
import time
from pathlib import Path

import numpy as np
import pytest
from tests.e2e.fault_kit import running

from brickwork.graph import load_graph

onnx = pytest.importorskip("onnx")
pytest.importorskip("onnxruntime")
from onnx import TensorProto, helper, numpy_helper  # noqa: E402

pytestmark = pytest.mark.timeout(120)

ROOT = Path(__file__).resolve().parents[2]

RULES_PY = '''
from typing import Annotated, TypedDict

import numpy as np

import brickwork as bw


class Score(TypedDict):
    fraud_score: Annotated[np.ndarray, bw.Tensor("FP32", (1,))]


def score(features: Annotated[np.ndarray, bw.Tensor("FP32", (4,))]) -> Score:
    return {"fraud_score": (features[:, :1] > 0.9).astype(np.float32)}
'''

GBM_W = [0.5, -0.25, 1.0, 0.1]
LR_W = [-1.0, 0.5, 0.25, 2.0]


def readme_yaml() -> str:
    section = (ROOT / "README.md").read_text().split("## When things go wrong", 1)[1].split("\n## ", 1)[0]
    block = re.search(r"```yaml\n(.*?)```", section, re.S)
    assert block, "README has no yaml block under '## When things go wrong'"
    return block.group(1)


def linear_sigmoid(path: Path, weights: list[float]) -> None:
    """fraud_score = sigmoid(features @ w): [N, 4] -> [N, 1]."""
    w = numpy_helper.from_array(np.array(weights, np.float32).reshape(4, 1), "w")
    graph = helper.make_graph(
        [helper.make_node("MatMul", ["features", "w"], ["z"]),
         helper.make_node("Sigmoid", ["z"], ["fraud_score"])],
        "score",
        [helper.make_tensor_value_info("features", TensorProto.FLOAT, ["N", 4])],
        [helper.make_tensor_value_info("fraud_score", TensorProto.FLOAT, ["N", 1])],
        initializer=[w])
    path.parent.mkdir(exist_ok=True)
    onnx.save(helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)]), str(path))


def expected(features: np.ndarray, weights: list[float]) -> np.ndarray:
    return 1.0 / (1.0 + np.exp(-(features @ np.array(weights, np.float32).reshape(4, 1))))


def test_readme_fallback_ladder_loads_and_the_simpler_model_answers_when_the_primary_is_down(
        tmp_path: Path) -> None:
    text = readme_yaml()
    (tmp_path / "pipeline.yaml").write_text(text)
    linear_sigmoid(tmp_path / "models" / "fraud-gbm.onnx", GBM_W)
    linear_sigmoid(tmp_path / "models" / "fraud-lr.onnx", LR_W)
    (tmp_path / "fraud_rules.py").write_text(RULES_PY)

    parsed = load_graph(tmp_path / "pipeline.yaml")
    pipe = parsed.compile()
    gbm = pipe.plan.stages["gbm"]
    assert gbm.worker == "process" and gbm.options.replicas == 2
    assert gbm.policy.timeout_s == 0.2 and gbm.policy.retries == 1
    assert gbm.policy.breaker is not None and gbm.policy.breaker.failures == 5
    features = np.array([[0.2, 0.4, 0.6, 0.8], [1.0, 0.0, 0.5, 0.25]], np.float32)
    pids: list[int] = []
    try:
        out = pipe.infer({"features": features})
        assert out.rungs == {"gbm": "gbm"} and not out.degraded
        np.testing.assert_allclose(out["fraud_score"], expected(features, GBM_W), rtol=1e-5)

        # the primary goes down for good: its model file is gone bad, its workers are killed,
        # and the replacements cannot load it
        (tmp_path / "models" / "fraud-gbm.onnx").write_bytes(b"not an onnx model")
        pids = [r["pid"] for r in pipe.stats()["stages"]["gbm"]["replica_info"]]
        for pid in pids:
            os.kill(pid, signal.SIGKILL)
        t0 = time.monotonic()
        out = pipe.infer({"features": features})
        assert out.rungs == {"gbm": "small"} and out.degraded
        np.testing.assert_allclose(out["fraud_score"], expected(features, LR_W), rtol=1e-5)
        assert time.monotonic() - t0 < 5
        assert pipe.ready()  # the ladder can answer, so the pipeline says it is ready
        assert pipe.stats()["fallbacks"]["gbm"] == {"gbm": 1, "small": 1}
    finally:
        pipe.close()
    assert not any(running(p) for p in pids)
