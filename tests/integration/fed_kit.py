"""Clients for the federated tests, imported by name in each client's own process.

``softmax`` is a user-written client (the Client protocol on plain numpy: softmax regression by
full-batch gradient descent), cheap to start; ``faulty`` wraps it with a fault on one round:
SIGKILL itself, hang, return NaN, or return the wrong shape. Every client can write its pid to
``pid_dir`` so a test can check (and stop) it by PID."""

from __future__ import annotations

import os
import signal
import time
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np

from brickwork.federated import load_npz

CLASSES = 10


class Softmax:
    def __init__(self, data: str, *, lr: float = 0.5, steps: int = 20, slow_s: float = 0.0) -> None:
        x, y = load_npz(data)
        self.x = np.asarray(x, dtype=np.float64) / 16.0
        self.y = np.asarray(y, dtype=np.int64)
        self.lr, self.steps, self.slow_s = lr, steps, slow_s

    def get_weights(self) -> list[np.ndarray]:
        return [np.zeros((self.x.shape[1], CLASSES)), np.zeros(CLASSES)]

    def _probs(self, w: Sequence[np.ndarray]) -> np.ndarray:
        z = self.x @ w[0] + w[1]
        z -= z.max(axis=1, keepdims=True)
        e = np.exp(z)
        return e / e.sum(axis=1, keepdims=True)

    def fit(self, weights: Sequence[np.ndarray], config: Mapping[str, Any]) -> tuple[list[np.ndarray], int, dict]:
        time.sleep(self.slow_s)
        w = [np.array(a, dtype=np.float64) for a in weights]
        onehot = np.eye(CLASSES)[self.y]
        for _ in range(int(config.get("steps", self.steps))):
            g = (self._probs(w) - onehot) / len(self.y)
            w[0] -= self.lr * self.x.T @ g
            w[1] -= self.lr * g.sum(axis=0)
        loss, _, _ = self.evaluate(w, config)
        return w, len(self.y), {"loss": loss}

    def evaluate(self, weights: Sequence[np.ndarray], config: Mapping[str, Any]) -> tuple[float, int, dict]:
        p = self._probs(weights)
        loss = float(-np.mean(np.log(p[np.arange(len(self.y)), self.y] + 1e-12)))
        return loss, len(self.y), {"accuracy": float(np.mean(p.argmax(1) == self.y))}


class Faulty(Softmax):
    def __init__(self, data: str, *, fault: str | None = None, on_round: int = 2, pid_dir: str | None = None,
                 **kw: Any) -> None:
        super().__init__(data, **kw)
        self.fault, self.on_round = fault, on_round
        if pid_dir:
            (Path(pid_dir) / f"{os.getpid()}.pid").write_text(data)

    def fit(self, weights: Sequence[np.ndarray], config: Mapping[str, Any]) -> tuple[list[np.ndarray], int, dict]:
        w, n, m = super().fit(weights, config)
        if config["round"] == self.on_round:
            if self.fault == "sigkill":
                os.kill(os.getpid(), signal.SIGKILL)
            if self.fault == "hang":
                time.sleep(3600)
            if self.fault == "nan":
                w[0][0, 0] = np.nan
            if self.fault == "shape":
                w[0] = w[0][:, :3]
        return w, n, m


def softmax(data: str, **kw: Any) -> Softmax:
    return Softmax(data, **kw)


def faulty(data: str, **kw: Any) -> Faulty:
    return Faulty(data, **kw)


def split(folder: Path, sites: int = 3) -> dict[str, Path]:
    """The examples' non-IID digits split, over ``sites`` sites, into ``folder``."""
    from examples.federated.data import split as digits_split

    return digits_split(folder, sites=sites)
