"""Ready clients: a torch classifier (``TorchClient``) and a scikit-learn linear model trained
by ``partial_fit`` and exchanged by its coefficients (``SklearnClient``), plus ``load_npz`` for
a site's data file (``x`` and ``y`` arrays). torch, scikit-learn and skl2onnx are imported only
by the client that needs them, in its own process."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np

from ._protocol import Exported, Metrics, Weights

__all__ = ["SklearnClient", "TorchClient", "load_npz"]


def load_npz(path: str | Path) -> tuple[np.ndarray, np.ndarray]:
    """``(x, y)`` from an ``.npz`` holding arrays ``x`` and ``y``."""
    with np.load(Path(path)) as z:
        return np.asarray(z["x"]), np.asarray(z["y"])


def _example(x: np.ndarray, input_name: str) -> dict[str, Any]:
    return {input_name: np.asarray(x[:2], dtype=np.float32).tolist()}


class SklearnClient:
    """A linear scikit-learn classifier with ``partial_fit`` (``SGDClassifier``, ``Perceptron``,
    ``PassiveAggressiveClassifier``): weights are ``[coef_, intercept_]``, every client fixes the
    same ``classes`` so the shapes agree even when a site never sees some classes.

    Fit config: ``epochs`` (passes over the local data, default 1) and, under FedProx,
    ``proximal_mu`` (after each pass the weights are pulled back by ``eta0 * mu * (w - w_global)``)."""

    def __init__(self, estimator: Any, x: np.ndarray, y: np.ndarray, *, classes: Sequence[Any],
                 x_test: np.ndarray | None = None, y_test: np.ndarray | None = None, epochs: int = 1,
                 seed: int = 0, input_name: str = "input") -> None:
        self.estimator = estimator
        self.x, self.y = np.asarray(x, dtype=np.float64), np.asarray(y)
        self.x_test = self.x if x_test is None else np.asarray(x_test, dtype=np.float64)
        self.y_test = self.y if y_test is None else np.asarray(y_test)
        self.classes = np.asarray(classes)
        self.epochs = epochs
        self.rng = np.random.default_rng(seed)
        self.input_name = input_name
        if getattr(estimator, "coef_", None) is None:  # allocate [coef_, intercept_], then start at zero
            estimator.partial_fit(self.x[:1], self.y[:1], classes=self.classes)
            estimator.coef_ = np.zeros_like(estimator.coef_)
            estimator.intercept_ = np.zeros_like(estimator.intercept_)

    def get_weights(self) -> Weights:
        return [np.array(self.estimator.coef_), np.array(self.estimator.intercept_)]

    def _set(self, weights: Sequence[np.ndarray]) -> None:
        self.estimator.coef_ = np.array(weights[0], dtype=np.float64)
        self.estimator.intercept_ = np.array(weights[1], dtype=np.float64)

    def fit(self, weights: Sequence[np.ndarray], config: Mapping[str, Any]) -> tuple[Weights, int, Metrics]:
        self._set(weights)
        mu = float(config.get("proximal_mu", 0.0))
        eta = float(getattr(self.estimator, "eta0", 0.01) or 0.01)
        for _ in range(int(config.get("epochs", self.epochs))):
            order = self.rng.permutation(len(self.x))
            self.estimator.partial_fit(self.x[order], self.y[order], classes=self.classes)
            if mu > 0:
                self.estimator.coef_ -= eta * mu * (self.estimator.coef_ - weights[0])
                self.estimator.intercept_ -= eta * mu * (self.estimator.intercept_ - weights[1])
        loss, _, metrics = self._score(self.x, self.y)
        return self.get_weights(), len(self.x), {"loss": loss, **metrics}

    def _score(self, x: np.ndarray, y: np.ndarray) -> tuple[float, int, Metrics]:
        from sklearn.metrics import log_loss

        acc = float(np.mean(self.estimator.predict(x) == y))
        if hasattr(self.estimator, "predict_proba"):
            loss = float(log_loss(y, self.estimator.predict_proba(x), labels=self.classes))
        else:
            loss = 1.0 - acc
        return loss, len(x), {"accuracy": acc}

    def evaluate(self, weights: Sequence[np.ndarray], config: Mapping[str, Any]) -> tuple[float, int, Metrics]:
        self._set(weights)
        return self._score(self.x_test, self.y_test)

    def export_onnx(self, weights: Sequence[np.ndarray], path: str) -> Exported:
        from skl2onnx import to_onnx
        from skl2onnx.common.data_types import FloatTensorType

        self._set(weights)
        onx = to_onnx(self.estimator, initial_types=[(self.input_name, FloatTensorType([None, self.x.shape[1]]))],
                      options={"zipmap": False}, target_opset={"": 17, "ai.onnx.ml": 3})
        tmp = Path(path).with_suffix(".tmp")
        tmp.write_bytes(onx.SerializeToString())
        tmp.replace(path)
        outputs = tuple(o.name for o in onx.graph.output)
        return Exported(str(path), (self.input_name,), outputs, _example(self.x, self.input_name))


class TorchClient:
    """A torch classifier whose ``forward`` returns logits; weights are its ``state_dict`` values
    in order. Local training: SGD on cross-entropy.

    Fit config (each overrides the constructor's): ``epochs``, ``batch_size``, ``lr``, ``momentum``;
    under FedProx ``proximal_mu`` adds ``mu/2 * ||w - w_global||^2`` to the loss. The ONNX export
    takes ``input`` and returns ``label`` (int64) and ``probabilities`` (softmax)."""

    def __init__(self, model: Any, x: np.ndarray, y: np.ndarray, *, x_test: np.ndarray | None = None,
                 y_test: np.ndarray | None = None, epochs: int = 1, batch_size: int = 32, lr: float = 0.05,
                 momentum: float = 0.0, seed: int = 0, threads: int | None = 1, input_name: str = "input") -> None:
        import torch

        if threads:
            torch.set_num_threads(threads)
        torch.manual_seed(seed)
        self.torch = torch
        self.model = model
        self.x = torch.from_numpy(np.asarray(x, dtype=np.float32))
        self.y = torch.from_numpy(np.asarray(y, dtype=np.int64))
        self.x_test = self.x if x_test is None else torch.from_numpy(np.asarray(x_test, dtype=np.float32))
        self.y_test = self.y if y_test is None else torch.from_numpy(np.asarray(y_test, dtype=np.int64))
        self.defaults = {"epochs": epochs, "batch_size": batch_size, "lr": lr, "momentum": momentum}
        self.gen = torch.Generator().manual_seed(seed)
        self.input_name = input_name

    def get_weights(self) -> Weights:
        return [v.detach().cpu().numpy().copy() for v in self.model.state_dict().values()]

    def _set(self, weights: Sequence[np.ndarray]) -> None:
        keys = list(self.model.state_dict().keys())
        state = {k: self.torch.from_numpy(np.array(w)) for k, w in zip(keys, weights)}
        self.model.load_state_dict(state, strict=True)

    def fit(self, weights: Sequence[np.ndarray], config: Mapping[str, Any]) -> tuple[Weights, int, Metrics]:
        torch = self.torch
        opts = {**self.defaults, **{k: config[k] for k in self.defaults if k in config}}
        self._set(weights)
        mu = float(config.get("proximal_mu", 0.0))
        anchor = [p.detach().clone() for p in self.model.parameters()] if mu > 0 else []
        opt = torch.optim.SGD(self.model.parameters(), lr=float(opts["lr"]), momentum=float(opts["momentum"]))
        self.model.train()
        total, seen = 0.0, 0
        for _ in range(int(opts["epochs"])):
            for idx in torch.randperm(len(self.x), generator=self.gen).split(int(opts["batch_size"])):
                loss = torch.nn.functional.cross_entropy(self.model(self.x[idx]), self.y[idx])
                if anchor:
                    prox = sum(((p - a) ** 2).sum() for p, a in zip(self.model.parameters(), anchor))
                    loss = loss + mu / 2 * prox
                opt.zero_grad()
                loss.backward()
                opt.step()
                total += float(loss.detach()) * len(idx)
                seen += len(idx)
        return self.get_weights(), len(self.x), {"loss": total / max(1, seen)}

    def evaluate(self, weights: Sequence[np.ndarray], config: Mapping[str, Any]) -> tuple[float, int, Metrics]:
        torch = self.torch
        self._set(weights)
        self.model.eval()
        with torch.no_grad():
            logits = self.model(self.x_test)
            loss = float(torch.nn.functional.cross_entropy(logits, self.y_test))
            acc = float((logits.argmax(1) == self.y_test).float().mean())
        return loss, len(self.x_test), {"accuracy": acc}

    def export_onnx(self, weights: Sequence[np.ndarray], path: str) -> Exported:
        torch = self.torch
        self._set(weights)
        self.model.eval()
        inner = self.model

        class Head(torch.nn.Module):  # type: ignore[name-defined]
            def __init__(self) -> None:
                super().__init__()
                self.inner = inner

            def forward(self, x: Any) -> Any:
                probs = torch.softmax(self.inner(x), dim=1)
                return torch.argmax(probs, dim=1), probs

        tmp = Path(path).with_suffix(".tmp")
        with torch.no_grad():
            torch.onnx.export(Head(), (self.x[:2],), str(tmp), input_names=[self.input_name],
                              output_names=["label", "probabilities"],
                              dynamic_axes={self.input_name: {0: "batch"}, "label": {0: "batch"},
                                            "probabilities": {0: "batch"}},
                              opset_version=17, dynamo=False)
        tmp.replace(path)
        return Exported(str(path), (self.input_name,), ("label", "probabilities"),
                        _example(self.x.numpy(), self.input_name))
