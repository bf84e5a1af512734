"""Four digit classifiers exported to ONNX with one shared signature, for an ensemble.

``build(cache_dir)`` trains on scikit-learn's bundled 8x8 digits (no download) with a
fixed split and seeds, and writes one ONNX file per member:

    input  "input"          float32 (N, 64)   raw pixel values 0..16, row-major 8x8
    output "label"          int64   (N,)
    output "probabilities"  float32 (N, 10)

Members: ``logreg`` (StandardScaler + LogisticRegression), ``forest`` (RandomForest),
``mlp`` (StandardScaler + MLPClassifier), and ``cnn`` (a small torch CNN, only when
torch can be imported). Each sklearn member keeps its own scaling inside the graph, so
every member takes the same raw input.
"""

from __future__ import annotations

import os
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np

__all__ = [
    "MEMBERS",
    "build",
    "evaluate",
    "load_split",
    "majority_vote",
    "run_member",
    "soft_vote",
    "train_sklearn",
]

MEMBERS: tuple[str, ...] = ("logreg", "forest", "mlp", "cnn")
N_FEATURES = 64
N_CLASSES = 10
_SEED = 0
_VERSION = "v1"
# Chosen so that both votes beat the best member with and without the CNN (NOTES.md).
_CNN_EPOCHS = 15


def load_split() -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """(x_train, x_test, y_train, y_test): float32 (N, 64) pixels and int64 labels.

    A stratified 70/30 split with a fixed seed: 1257 training and 540 held-out images.
    """
    from sklearn.datasets import load_digits
    from sklearn.model_selection import train_test_split

    digits = load_digits()
    x = digits.data.astype(np.float32)
    y = digits.target.astype(np.int64)
    x_tr, x_te, y_tr, y_te = train_test_split(x, y, test_size=0.3, random_state=_SEED, stratify=y)
    return x_tr, x_te, y_tr, y_te


def train_sklearn(x: np.ndarray, y: np.ndarray) -> dict[str, Any]:
    """The three scikit-learn members, fitted with fixed seeds."""
    from sklearn.ensemble import RandomForestClassifier
    from sklearn.linear_model import LogisticRegression
    from sklearn.neural_network import MLPClassifier
    from sklearn.pipeline import make_pipeline
    from sklearn.preprocessing import StandardScaler

    models: dict[str, Any] = {
        "logreg": make_pipeline(StandardScaler(), LogisticRegression(C=0.5, max_iter=3000)),
        "forest": RandomForestClassifier(n_estimators=200, random_state=_SEED, n_jobs=1),
        "mlp": make_pipeline(
            StandardScaler(),
            MLPClassifier(hidden_layer_sizes=(128,), alpha=1e-3, max_iter=600, random_state=_SEED),
        ),
    }
    for model in models.values():
        model.fit(x, y)
    return models


def _export_sklearn(model: Any, path: Path) -> None:
    from skl2onnx import to_onnx
    from skl2onnx.common.data_types import FloatTensorType

    onx = to_onnx(
        model,
        initial_types=[("input", FloatTensorType([None, N_FEATURES]))],
        options={"zipmap": False},
        target_opset={"": 17, "ai.onnx.ml": 3},
    )
    outputs = [o.name for o in onx.graph.output]
    if outputs != ["label", "probabilities"]:
        raise RuntimeError(f"unexpected skl2onnx outputs {outputs}; expected ['label', 'probabilities']")
    _write(path, onx.SerializeToString())


def _write(path: Path, data: bytes) -> None:
    tmp = path.with_suffix(".tmp")
    tmp.write_bytes(data)
    tmp.replace(path)


def _torch_available() -> bool:
    try:
        import torch  # noqa: F401
    except ImportError:
        return False
    return True


def _train_and_export_cnn(x: np.ndarray, y: np.ndarray, path: Path) -> None:
    import torch
    from torch import nn

    torch.manual_seed(_SEED)
    torch.set_num_threads(1)

    class DigitsCNN(nn.Module):
        def __init__(self) -> None:
            super().__init__()
            self.features = nn.Sequential(
                nn.Conv2d(1, 16, 3, padding=1),
                nn.ReLU(),
                nn.Conv2d(16, 32, 3, padding=1),
                nn.ReLU(),
                nn.MaxPool2d(2),
            )
            self.head = nn.Sequential(nn.Flatten(), nn.Dropout(0.2), nn.Linear(32 * 16, N_CLASSES))

        def logits(self, pixels: torch.Tensor) -> torch.Tensor:
            return self.head(self.features(pixels.reshape(-1, 1, 8, 8) / 16.0))

        def forward(self, pixels: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
            probs = torch.softmax(self.logits(pixels), dim=1)
            return torch.argmax(probs, dim=1), probs

    model = DigitsCNN()
    opt = torch.optim.Adam(model.parameters(), lr=3e-3)
    xt, yt = torch.from_numpy(x), torch.from_numpy(y)
    gen = torch.Generator().manual_seed(_SEED)
    model.train()
    for _ in range(_CNN_EPOCHS):
        for idx in torch.randperm(len(xt), generator=gen).split(64):
            loss = nn.functional.cross_entropy(model.logits(xt[idx]), yt[idx])
            opt.zero_grad()
            loss.backward()
            opt.step()
    model.eval()
    tmp = path.with_suffix(".tmp")
    with torch.no_grad():
        torch.onnx.export(
            model,
            (xt[:2],),
            str(tmp),
            input_names=["input"],
            output_names=["label", "probabilities"],
            dynamic_axes={"input": {0: "batch"}, "label": {0: "batch"}, "probabilities": {0: "batch"}},
            opset_version=17,
            dynamo=False,
        )
    tmp.replace(path)


def _default_cache() -> Path:
    return Path.home() / ".cache" / "brickwork" / "examples" / "digits_ensemble"


def build(
    cache_dir: str | os.PathLike[str] | None = None, *, with_cnn: bool | None = None, force: bool = False
) -> dict[str, Path]:
    """Train and export every member; returns ``{name: onnx path}`` in MEMBERS order.

    ``with_cnn=None`` adds the CNN when torch is importable. Existing files are reused
    unless ``force``.
    """
    root = Path(cache_dir) if cache_dir is not None else _default_cache()
    root.mkdir(parents=True, exist_ok=True)
    use_cnn = _torch_available() if with_cnn is None else with_cnn
    names = [n for n in MEMBERS if n != "cnn" or use_cnn]
    paths = {n: root / f"digits-{n}-{_VERSION}.onnx" for n in names}
    if not force and all(p.is_file() for p in paths.values()):
        return paths
    x_tr, _, y_tr, _ = load_split()
    for name, model in train_sklearn(x_tr, y_tr).items():
        _export_sklearn(model, paths[name])
    if use_cnn:
        _train_and_export_cnn(x_tr, y_tr, paths["cnn"])
    return paths


def run_member(session: Any, x: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """One member on (N, 64) float32 pixels -> (labels int64 (N,), probs float32 (N, 10))."""
    label, probs = session.run(["label", "probabilities"], {"input": np.asarray(x, dtype=np.float32)})
    return np.asarray(label, dtype=np.int64), np.asarray(probs, dtype=np.float32)


def soft_vote(probs: Sequence[np.ndarray], weights: Sequence[float] | None = None) -> np.ndarray:
    """Mean of the members' (N, 10) probabilities -> labels (N,) int64."""
    stacked = np.stack([np.asarray(p, dtype=np.float64) for p in probs])
    w = np.ones(len(stacked)) if weights is None else np.asarray(weights, dtype=np.float64)
    mean = np.tensordot(w / w.sum(), stacked, axes=1)
    return mean.argmax(axis=1).astype(np.int64)


def majority_vote(labels: Sequence[np.ndarray], probs: Sequence[np.ndarray]) -> np.ndarray:
    """Most frequent label per row; a tie goes to the tied label with most summed probability."""
    votes = np.stack(labels)  # (M, N)
    counts = np.zeros((votes.shape[1], N_CLASSES))
    for row in votes:
        counts[np.arange(votes.shape[1]), row] += 1
    tie_break = np.sum(np.stack(probs), axis=0) / (len(probs) + 1)  # < 1, so counts win
    return (counts + tie_break).argmax(axis=1).astype(np.int64)


def evaluate(paths: Mapping[str, str | os.PathLike[str]]) -> dict[str, float]:
    """Held-out accuracy of each member (via ONNX Runtime) and of both votes."""
    import onnxruntime as ort

    _, x_te, _, y_te = load_split()
    labels: list[np.ndarray] = []
    probs: list[np.ndarray] = []
    result: dict[str, float] = {}
    for name, path in paths.items():
        sess = ort.InferenceSession(str(path), providers=["CPUExecutionProvider"])
        label, prob = run_member(sess, x_te)
        labels.append(label)
        probs.append(prob)
        result[name] = float((label == y_te).mean())
    result["soft_vote"] = float((soft_vote(probs) == y_te).mean())
    result["majority_vote"] = float((majority_vote(labels, probs) == y_te).mean())
    return result
