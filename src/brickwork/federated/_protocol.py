"""The seam a user implements: a ``Client`` that holds its own data and trains on it.

    class MyClient:
        def get_weights(self) -> list[np.ndarray]: ...
        def fit(self, weights, config) -> tuple[list[np.ndarray], int, dict[str, float]]: ...
        def evaluate(self, weights, config) -> tuple[float, int, dict[str, float]]: ...
        def export_onnx(self, weights, path) -> Exported: ...        # optional

A client is built in its own process by a factory named in the config
(``"package.module:function"``), called as ``factory(data_path, **options)``: the data path is
the only thing that tells a client where its data is, and only the client opens it.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, Protocol, runtime_checkable

import numpy as np

__all__ = ["Client", "Exported", "FitResult", "Metrics", "Weights"]

Weights = list[np.ndarray]
Metrics = dict[str, float]
FitResult = tuple[Weights, int, Metrics]


@runtime_checkable
class Client(Protocol):
    """One site's model and data. Weights are a list of arrays in a fixed order and shape."""

    def get_weights(self) -> Weights:
        """The model's current weights (the server starts round 1 from one client's)."""
        ...

    def fit(self, weights: Sequence[np.ndarray], config: Mapping[str, Any]) -> FitResult:
        """Train from ``weights`` on local data: ``(new_weights, n_examples, metrics)``.

        ``config`` holds the run's ``fit`` options plus ``round`` and, under FedProx,
        ``proximal_mu`` (the weight of ``mu/2 * ||w - weights||^2`` in the local loss)."""
        ...

    def evaluate(self, weights: Sequence[np.ndarray], config: Mapping[str, Any]) -> tuple[float, int, Metrics]:
        """``(loss, n_examples, metrics)`` of ``weights`` on local data (``accuracy`` if it has one)."""
        ...


@dataclass(frozen=True, slots=True)
class Exported:
    """What ``export_onnx`` wrote: the file and its input/output tensor names."""

    path: str
    inputs: tuple[str, ...]
    outputs: tuple[str, ...]
    example: Mapping[str, Any] = field(default_factory=dict)
