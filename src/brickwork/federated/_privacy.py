"""Differential privacy for federated averaging (DP-FedAvg, McMahan et al., 2018).

Each client clips its update (new weights minus the round's global weights) to L2 norm
``clip``; the server averages the clipped updates *unweighted* (so one client moves the mean by
at most ``clip / m``) and adds Gaussian noise of standard deviation ``noise_multiplier * clip / m``.
That is the Gaussian mechanism with sensitivity ``clip / m`` per round, for client-level privacy
(adding or removing one client's whole data set).

The spent budget is tracked with Rényi DP: ``T`` rounds at noise multiplier ``z`` give
``RDP(alpha) = T * alpha / (2 z^2)``, converted to ``(epsilon, delta)`` with
``epsilon = min_alpha RDP(alpha) + log(1/delta) / (alpha - 1)``. Client sampling would amplify
privacy; the accountant ignores it, so the reported epsilon is an upper bound.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

__all__ = ["Privacy", "clip_update", "epsilon", "gaussian_noise"]

_ALPHAS = tuple([1.0 + x / 10.0 for x in range(1, 100)] + [float(a) for a in range(11, 257)])


@dataclass(frozen=True, slots=True)
class Privacy:
    """``clip``: L2 bound of one client's update. ``noise_multiplier``: noise std / clip
    (0 clips without noise, and the budget is infinite). ``delta``: the delta of the report."""

    clip: float = 1.0
    noise_multiplier: float = 1.0
    delta: float = 1e-5

    def __post_init__(self) -> None:
        if self.clip <= 0 or self.noise_multiplier < 0 or not 0 < self.delta < 1:
            raise ValueError(f"privacy needs clip > 0, noise_multiplier >= 0, 0 < delta < 1; got {self}")


def clip_update(update: Sequence[np.ndarray], clip: float) -> tuple[list[np.ndarray], float]:
    """Scale ``update`` so its global L2 norm is at most ``clip``; returns (clipped, original norm)."""
    norm = math.sqrt(sum(float(np.sum(np.square(u, dtype=np.float64))) for u in update))
    factor = min(1.0, clip / norm) if norm > 0 else 1.0
    return [np.asarray(u, dtype=np.float64) * factor for u in update], norm


def gaussian_noise(shapes: Sequence[tuple[int, ...]], std: float, rng: np.random.Generator) -> list[np.ndarray]:
    return [rng.normal(0.0, std, size=s) for s in shapes]


def epsilon(rounds: int, noise_multiplier: float, delta: float) -> float:
    """(epsilon, delta)-DP after ``rounds`` Gaussian mechanisms at ``noise_multiplier``."""
    if rounds <= 0:
        return 0.0
    if noise_multiplier <= 0:
        return math.inf
    best = math.inf
    for a in _ALPHAS:
        rdp = rounds * a / (2.0 * noise_multiplier**2)
        best = min(best, rdp + math.log(1.0 / delta) / (a - 1.0))
    return best
