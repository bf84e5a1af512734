"""Client factories for the digits sites: ``factory(data_path, **options) -> Client``.

Each runs in its own process and opens only ``data_path``."""

from __future__ import annotations

from typing import Any

import numpy as np

from brickwork.federated import SklearnClient, TorchClient, load_npz

__all__ = ["cnn", "logreg", "make_cnn"]


def logreg(data: str, *, eta0: float = 0.001, alpha: float = 1e-4, epochs: int = 1, seed: int = 0) -> SklearnClient:
    """Logistic regression (one-vs-rest, log loss) by SGD on raw pixels."""
    from sklearn.linear_model import SGDClassifier

    x, y = load_npz(data)
    model = SGDClassifier(loss="log_loss", learning_rate="constant", eta0=eta0, alpha=alpha, random_state=seed)
    return SklearnClient(model, x, y, classes=np.arange(10), epochs=epochs, seed=seed)


def make_cnn(seed: int = 0) -> Any:
    """A small CNN on (N, 64) raw pixels 0..16 -> logits (N, 10); scaling and reshape inside."""
    import torch
    from torch import nn

    torch.manual_seed(seed)

    class DigitsCNN(nn.Module):
        def __init__(self) -> None:
            super().__init__()
            self.conv = nn.Conv2d(1, 16, 3, padding=1)
            self.fc = nn.Linear(16 * 4 * 4, 10)

        def forward(self, x: torch.Tensor) -> torch.Tensor:
            h = torch.relu(self.conv(x.reshape(-1, 1, 8, 8) / 16.0))
            h = nn.functional.max_pool2d(h, 2)
            return self.fc(h.flatten(1))

    return DigitsCNN()


def cnn(data: str, *, lr: float = 0.1, epochs: int = 1, batch_size: int = 16, momentum: float = 0.5,
        seed: int = 0) -> TorchClient:
    x, y = load_npz(data)
    return TorchClient(make_cnn(seed), x, y, lr=lr, epochs=epochs, batch_size=batch_size, momentum=momentum,
                       seed=seed)
