"""Every member's ONNX equals its sklearn model; both votes are at least as good as the best member."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

pytest.importorskip("skl2onnx")
ort = pytest.importorskip("onnxruntime")

from examples.digits_ensemble import models  # noqa: E402


@pytest.fixture(scope="module")
def paths(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    return models.build(tmp_path_factory.mktemp("digits"))


def test_members_share_one_signature(paths: dict[str, Path]) -> None:
    for path in paths.values():
        sess = ort.InferenceSession(str(path), providers=["CPUExecutionProvider"])
        (inp,) = sess.get_inputs()
        assert (inp.name, inp.type, inp.shape[1]) == ("input", "tensor(float)", 64)
        assert [(o.name, o.type) for o in sess.get_outputs()] == [
            ("label", "tensor(int64)"),
            ("probabilities", "tensor(float)"),
        ]
        assert path.parent.name.startswith("digits")  # written into the cache dir given


def test_sklearn_members_onnx_equal_sklearn(paths: dict[str, Path]) -> None:
    x_tr, x_te, y_tr, _ = models.load_split()
    for name, model in models.train_sklearn(x_tr, y_tr).items():
        sess = ort.InferenceSession(str(paths[name]), providers=["CPUExecutionProvider"])
        label, probs = models.run_member(sess, x_te)
        assert np.abs(probs - model.predict_proba(x_te)).max() < 1e-5, name
        np.testing.assert_array_equal(label, model.predict(x_te))


def test_votes_at_least_as_good_as_best_member(paths: dict[str, Path]) -> None:
    for members in (paths, {k: v for k, v in paths.items() if k != "cnn"}):
        acc = models.evaluate(members)
        best = max(acc[name] for name in members)
        assert best > 0.95
        assert acc["soft_vote"] >= best, acc
        assert acc["majority_vote"] >= best, acc


def test_cnn_is_built_when_torch_is_there(paths: dict[str, Path]) -> None:
    pytest.importorskip("torch")
    assert list(paths) == list(models.MEMBERS)


def test_majority_vote_breaks_ties_by_probability() -> None:
    labels = [np.array([1, 2]), np.array([3, 2]), np.array([1, 4]), np.array([3, 4])]
    probs = [np.eye(10, dtype=np.float32)[lab] for lab in labels]
    probs[2] = probs[2] * 0.9 + 0.01  # member 2 is less sure of its "1" and "4"
    np.testing.assert_array_equal(models.majority_vote(labels, probs), [3, 2])
    np.testing.assert_array_equal(models.soft_vote(probs), [3, 2])
