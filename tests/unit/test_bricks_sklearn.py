"""SklearnBrick: ports by method, native and ONNX runs, the parity gate, the recipe."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

import brickwork as bw
from brickwork.bricks import brick_from_spec

pytest.importorskip("sklearn")
from sklearn.linear_model import LinearRegression, LogisticRegression
from sklearn.preprocessing import StandardScaler
from sklearn.tree import DecisionTreeClassifier

from brickwork.bricks.sklearn import SklearnBrick

RNG = np.random.default_rng(0)
X = RNG.standard_normal((120, 4))
Y = (X[:, 0] + X[:, 1] > 0).astype(np.int64) + (X[:, 2] > 1)  # classes 0, 1, 2


@pytest.fixture(scope="module")
def clf() -> LogisticRegression:
    return LogisticRegression(max_iter=200).fit(X, Y)


def test_predict_publishes_labels(clf: LogisticRegression) -> None:
    brick = SklearnBrick(clf, name="clf")
    assert str(brick.signature) == "(features: FP64[?, 4]) -> (label: INT64[?])"
    out = brick({"features": X[:10]})
    assert out["label"].dtype == np.int64
    assert out["label"].tolist() == clf.predict(X[:10]).tolist()


def test_predict_proba_publishes_probabilities_and_label(clf: LogisticRegression) -> None:
    brick = SklearnBrick(clf, method="predict_proba")
    sig = brick.signature
    assert sig.output("probabilities").shape == (-1, 3) and sig.output("probabilities").dtype == "FP64"
    out = brick({"features": X[:10]})
    np.testing.assert_allclose(out["probabilities"], clf.predict_proba(X[:10]))
    assert out["label"].tolist() == clf.predict(X[:10]).tolist()


def test_string_classes_are_bytes_labels() -> None:
    names = np.array(["low", "mid", "high"], dtype=object)[Y]
    brick = SklearnBrick(DecisionTreeClassifier(random_state=0).fit(X, names))
    assert brick.signature.output("label").dtype == "BYTES"
    out = brick({"features": X[:5]})["label"]
    assert out.dtype == object and out.tolist() == names[:5].tolist()


def test_regressor_and_transformer_ports() -> None:
    reg = SklearnBrick(LinearRegression().fit(X, X @ [1.0, 2.0, 3.0, 4.0]))
    assert str(reg.signature) == "(features: FP64[?, 4]) -> (prediction: FP64[?])"
    np.testing.assert_allclose(reg({"features": X[:3]})["prediction"], X[:3] @ [1, 2, 3, 4], atol=1e-9)
    scaler = SklearnBrick(StandardScaler().fit(X), method="transform")
    assert scaler.signature.output("transformed").shape == (-1, 4)
    np.testing.assert_allclose(scaler({"features": X})["transformed"].mean(axis=0), 0, atol=1e-9)


def test_wrong_feature_count_is_invalid_input(clf: LogisticRegression) -> None:
    with pytest.raises(bw.InvalidInput, match=r"input 'features'.*expected shape \[-1, 4\]"):
        SklearnBrick(clf)({"features": np.zeros((2, 5))})


def test_nan_rejected_by_sklearn_is_invalid_input(clf: LogisticRegression) -> None:
    with pytest.raises(bw.InvalidInput, match="NaN"):
        SklearnBrick(clf)({"features": np.full((1, 4), np.nan)})


def test_bad_method_and_unknown_width_are_config_errors(clf: LogisticRegression) -> None:
    with pytest.raises(bw.ConfigError, match="method must be one of"):
        SklearnBrick(clf, method="fit")
    with pytest.raises(bw.ConfigError, match="has no method 'transform'"):
        SklearnBrick(clf, method="transform")

    class Rule:
        def predict(self, x: np.ndarray) -> np.ndarray:
            return x[:, 0]

    with pytest.raises(bw.ConfigError, match="pass n_features="):
        SklearnBrick(Rule())
    assert SklearnBrick(Rule(), n_features=2).signature.input("features").shape == (-1, 2)


def test_path_is_loaded_with_joblib_and_spec_round_trips(clf: LogisticRegression, tmp_path: Path) -> None:
    import joblib

    path = tmp_path / "clf.joblib"
    joblib.dump(clf, path)
    brick = SklearnBrick(path, method="predict_proba")
    assert brick.name == "clf"
    assert brick.spec().config["sklearn"] == str(path.resolve())
    again = brick_from_spec(brick.spec())
    assert again.signature == brick.signature
    np.testing.assert_allclose(again({"features": X[:4]})["probabilities"], clf.predict_proba(X[:4]))


def test_in_memory_model_spec_saves_to_a_file_the_brick_owns(clf: LogisticRegression) -> None:
    brick = SklearnBrick(clf, name="mem")
    spec = brick.spec()
    saved = Path(spec.config["sklearn"])
    assert saved.is_file() and saved.name == "mem.joblib"
    assert brick_from_spec(spec)({"features": X[:6]})["label"].tolist() == clf.predict(X[:6]).tolist()
    del brick, spec
    import gc

    gc.collect()
    assert not saved.exists()  # the temp dir goes with the brick


# -- to_onnx -----------------------------------------------------------------------------
skl2onnx = pytest.importorskip("skl2onnx")


def test_to_onnx_matches_sklearn(clf: LogisticRegression) -> None:
    brick = SklearnBrick(clf, method="predict_proba", to_onnx=True, sample=X)
    assert str(brick.signature) == (
        "(features: FP32[?, 4]) -> (probabilities: FP32[?, 3], label: INT64[?])")
    out = brick({"features": X[:20].astype(np.float32)})
    np.testing.assert_allclose(out["probabilities"], clf.predict_proba(X[:20]), atol=1e-5)
    assert out["label"].tolist() == clf.predict(X[:20]).tolist()
    assert brick._onnx is not None and brick._onnx.providers == ["CPUExecutionProvider"]


def test_to_onnx_regressor_prediction_is_one_value_per_item() -> None:
    reg = LinearRegression().fit(X, X @ [1.0, 2.0, 3.0, 4.0])
    brick = SklearnBrick(reg, to_onnx=True)
    assert brick.signature.output("prediction").shape == (-1,)
    np.testing.assert_allclose(brick({"features": X[:3].astype(np.float32)})["prediction"],
                               reg.predict(X[:3]), rtol=1e-5)


def test_parity_drift_is_refused(clf: LogisticRegression, monkeypatch: pytest.MonkeyPatch) -> None:
    native = SklearnBrick._run_native

    def drifted(self: SklearnBrick, x: np.ndarray) -> dict:
        out = native(self, x)
        out["probabilities"] = out["probabilities"] + 0.01
        return out

    monkeypatch.setattr(SklearnBrick, "_run_native", drifted)
    with pytest.raises(bw.ConfigError, match=r"drifts from sklearn.*max \|Δprobabilities\| = 0.01"):
        SklearnBrick(clf, method="predict_proba", to_onnx=True)
    assert SklearnBrick(clf, method="predict_proba", to_onnx=True, parity_atol=0.02)


def test_converted_spec_needs_no_sklearn_model(clf: LogisticRegression) -> None:
    brick = SklearnBrick(clf, method="predict_proba", to_onnx=True, name="lr")
    spec = brick.spec()
    assert spec.config["converted"].endswith("lr.onnx") and spec.config["sklearn"] is None
    again = brick_from_spec(spec)
    assert again.model is None and again.signature == brick.signature
    x = X[:5].astype(np.float32)
    np.testing.assert_allclose(again({"features": x})["probabilities"],
                               brick({"features": x})["probabilities"])


def test_sklearn_in_a_pipeline_after_a_python_brick(clf: LogisticRegression) -> None:
    def scale(raw: np.ndarray) -> np.ndarray:
        return raw / 2.0

    prep = bw.function(scale, batch=True, inputs=[bw.TensorSpec("raw", "FP32", (-1, 4))],
                       outputs=[bw.TensorSpec("features", "FP32", (-1, 4))])
    with (prep >> bw.sklearn(clf, name="clf")).compile() as pipeline:
        out = pipeline.infer({"raw": X[:8].astype(np.float32)})
    assert [a.kind for _, b in pipeline.plan.adapters for a in b.adapters] == ["cast"]
    assert out["label"].tolist() == clf.predict(X[:8].astype(np.float32) / 2.0).tolist()


def test_the_factory_takes_onnx_options_as_yaml_does(clf: LogisticRegression) -> None:
    """bw.sklearn(..., onnx_options=) was refused although YAML accepted onnx_options; they
    configure the converted model's session and travel in the recipe (worker processes)."""
    pytest.importorskip("skl2onnx")
    node = bw.sklearn(clf, to_onnx=True, onnx_options={"intra_op_threads": 1}, name="lr")
    assert node.brick._onnx.intra_op_threads == 1
    config = node.brick.spec().config
    assert config["onnx_options"] == {"intra_op_threads": 1}
    rebuilt = brick_from_spec(node.brick.spec())
    assert rebuilt._onnx.intra_op_threads == 1
    assert rebuilt({"features": X[:3].astype(np.float32)})["label"].tolist() == clf.predict(X[:3]).tolist()
