"""examples/digits_ensemble on its real models: both votes over the ONNX members (three
scikit-learn models, plus the torch CNN when torch is importable) reach at least the best
member's held-out accuracy, and each member runs once per call although two ensembles use it."""

from __future__ import annotations

import importlib.util
from pathlib import Path

import numpy as np
import pytest

pytest.importorskip("onnxruntime")
pytest.importorskip("skl2onnx")

from examples.digits_ensemble import build, models

from brickwork.graph import load_pipeline

HERE = Path(build.__file__).parent
HAS_TORCH = importlib.util.find_spec("torch") is not None
FILES = ["pipeline_sklearn.yaml", *(["pipeline.yaml"] if HAS_TORCH else [])]


@pytest.fixture(scope="module")
def member_accuracy() -> dict[str, float]:
    paths = build.build()
    acc = models.evaluate(paths)
    return {name: acc[name] for name in paths}


@pytest.mark.parametrize("file", FILES)
def test_votes_reach_the_best_members_accuracy(file: str, member_accuracy: dict[str, float]) -> None:
    _, x_test, _, y_test = models.load_split()
    with load_pipeline(HERE / file) as pipe:
        members = [name for name in pipe.plan.stages]
        pipe.reset_stats()
        out = pipe.infer({"input": x_test})
        stats = pipe.stats()["stages"]
    assert set(members) == ({"forest", "mlp", "logreg", "cnn"} if file == "pipeline.yaml"
                            else {"forest", "mlp", "logreg"})
    best = max(member_accuracy[m] for m in members)
    soft = float((out["soft_label"] == y_test).mean())
    vote = float((out["vote_label"] == y_test).mean())
    assert soft >= best and vote >= best, (soft, vote, member_accuracy)
    assert out["mean_probabilities"].shape == (len(y_test), 10)
    np.testing.assert_allclose(out["mean_probabilities"].sum(axis=1), 1.0, atol=1e-5)
    for m in members:  # the two ensembles' requests to a member were merged into one call
        assert (stats[m]["requests"], stats[m]["batches"]) == (2, 1), (m, stats[m])
