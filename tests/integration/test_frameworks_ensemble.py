"""Three real scikit-learn models (logistic regression, random forest, MLP), converted to ONNX
with skl2onnx, voting on sklearn's digits data set through bw.ensemble."""

from __future__ import annotations

import warnings
from typing import Any

import numpy as np
import pytest

import brickwork as bw

pytest.importorskip("onnxruntime")
pytest.importorskip("skl2onnx")
datasets = pytest.importorskip("sklearn.datasets")
from sklearn.ensemble import RandomForestClassifier  # noqa: E402
from sklearn.linear_model import LogisticRegression  # noqa: E402
from sklearn.model_selection import train_test_split  # noqa: E402
from sklearn.neural_network import MLPClassifier  # noqa: E402


@pytest.fixture(scope="module")
def digits() -> dict[str, Any]:
    x, y = datasets.load_digits(return_X_y=True)
    x = (x / 16.0).astype(np.float32)
    x_train, x_test, y_train, y_test = train_test_split(
        x, y, test_size=0.5, random_state=0, stratify=y
    )
    # small on purpose (2 shared cores): members that are good but each wrong in their own way
    members = {
        "logreg": LogisticRegression(C=0.2, max_iter=300),
        "forest": RandomForestClassifier(n_estimators=12, max_depth=8, random_state=0),
        "mlp": MLPClassifier(hidden_layer_sizes=(16,), max_iter=150, random_state=0),
    }
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # the MLP stops early on purpose
        for model in members.values():
            model.fit(x_train, y_train)
    return {"models": members, "x": x_test, "y": y_test, "x_train": x_train}


def _accuracy(labels: np.ndarray, y: np.ndarray) -> float:
    return float(np.mean(labels == y))


def test_majority_vote_beats_or_ties_the_best_member(digits: dict[str, Any]) -> None:
    models, x, y = digits["models"], digits["x"], digits["y"]
    nodes = [bw.sklearn(m, name=n, to_onnx=True, sample=digits["x_train"][:128])
             for n, m in models.items()]
    member_acc = {}
    for node in nodes:
        with node.compile() as alone:
            member_acc[node.name] = _accuracy(alone.infer({"features": x})["label"], y)
    graph = bw.ensemble(nodes, combiner="majority", name="vote")
    with graph.compile() as pipeline:
        result = pipeline.infer({"features": x})
    assert set(pipeline.plan.stages) == {"logreg", "forest", "mlp"}
    assert all(b.kind == "sklearn" and b._onnx is not None
               for b in (s.brick for s in pipeline.plan.stages.values()))
    vote_acc = _accuracy(result["label"], y)
    print(f"majority: members {member_acc}, ensemble {vote_acc:.4f}")
    assert min(member_acc.values()) > 0.8  # every member really learned the task
    assert vote_acc >= max(member_acc.values())
    # the vote is a real majority: where two members agree, the ensemble says what they say
    votes = np.stack([models[n].predict(x) for n in ("logreg", "forest", "mlp")], axis=1)
    agree = (votes[:, 0] == votes[:, 1]) | (votes[:, 0] == votes[:, 2])
    majority = np.where(votes[:, 0] == votes[:, 1], votes[:, 0],
                        np.where(votes[:, 0] == votes[:, 2], votes[:, 0], votes[:, 1]))
    assert np.mean(result["label"][agree] == majority[agree]) > 0.99


def test_mean_of_probabilities_beats_or_ties_the_best_member(digits: dict[str, Any]) -> None:
    models, x, y = digits["models"], digits["x"], digits["y"]
    nodes = [bw.sklearn(m, name=f"{n}_p", method="predict_proba", to_onnx=True,
                        sample=digits["x_train"][:128]) for n, m in models.items()]
    graph = bw.ensemble(nodes, combiner="mean", label="digit", name="average")
    with graph.compile() as pipeline:
        result = pipeline.infer({"features": x})
    member_acc = {n: _accuracy(m.predict(x), y) for n, m in models.items()}
    expected = np.mean([m.predict_proba(x) for m in models.values()], axis=0)
    np.testing.assert_allclose(result["probabilities"], expected, atol=1e-4)
    assert result["probabilities"].dtype == np.float32
    mean_acc = _accuracy(result["digit"], y)
    print(f"mean: members {member_acc}, ensemble {mean_acc:.4f}")
    assert mean_acc >= max(member_acc.values())


def test_ensemble_of_native_and_onnx_members_agrees(digits: dict[str, Any]) -> None:
    """Members need not share a runtime: one native sklearn, two ONNX; the FP32 pipeline input
    reaches the native member's FP64 port through a lossless cast compile() inserts."""
    models, x = digits["models"], digits["x"]
    nodes = [
        bw.sklearn(models["logreg"], name="logreg_onnx", to_onnx=True),
        bw.sklearn(models["forest"], name="forest_native"),
        bw.sklearn(models["mlp"], name="mlp_onnx", to_onnx=True),
    ]
    with bw.ensemble(nodes, combiner="majority").compile() as pipeline:
        result = pipeline.infer({"features": x[:50]})
    assert [(s, b.port, [a.kind for a in b.adapters]) for s, b in pipeline.plan.adapters] == [
        ("forest_native", "features", ["cast"])
    ]
    assert result["label"].shape == (50,)
    assert result["label"].dtype == np.int64
