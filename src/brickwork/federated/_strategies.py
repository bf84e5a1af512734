"""How the server turns the round's averaged client update into new global weights, and which
clients take part in a round.

All strategies receive the same thing: ``delta``, the (weighted or, under DP, noised) mean of
``client_weights - global_weights``. FedAvg and FedProx apply it as is (``w + delta`` is the
example-weighted mean of the clients' weights); FedProx differs on the client side (the
``proximal_mu`` it puts in every fit config). FedAdam and FedYogi treat ``-delta`` as a gradient
for a server-side optimiser (Reddi et al., 2021, "Adaptive Federated Optimization").
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, Protocol

import numpy as np

from ..errors import ConfigError

__all__ = ["FedAdam", "FedAvg", "FedProx", "FedYogi", "Strategy", "make_strategy", "sample_clients"]


class Strategy(Protocol):
    name: str

    def fit_config(self) -> dict[str, Any]:
        """Extra entries for every client's fit config."""
        ...

    def apply(self, weights: Sequence[np.ndarray], delta: Sequence[np.ndarray]) -> list[np.ndarray]:
        """New global weights from the current ones and the round's mean update."""
        ...

    def state(self) -> dict[str, np.ndarray]:
        """Arrays to checkpoint (optimiser moments); restored by ``load_state``."""
        ...

    def load_state(self, state: Mapping[str, np.ndarray]) -> None: ...


@dataclass(slots=True)
class FedAvg:
    """Federated averaging: the new weights are the mean of the clients', weighted by examples."""

    name: str = "fedavg"

    def fit_config(self) -> dict[str, Any]:
        return {}

    def apply(self, weights: Sequence[np.ndarray], delta: Sequence[np.ndarray]) -> list[np.ndarray]:
        return [(w + d).astype(w.dtype) for w, d in zip(weights, delta)]

    def state(self) -> dict[str, np.ndarray]:
        return {}

    def load_state(self, state: Mapping[str, np.ndarray]) -> None:
        return None


@dataclass(slots=True)
class FedProx(FedAvg):
    """FedAvg whose clients add ``mu/2 * ||w - w_global||^2`` to their local loss (Li et al., 2020)."""

    mu: float = 0.01
    name: str = "fedprox"

    def fit_config(self) -> dict[str, Any]:
        return {"proximal_mu": self.mu}


@dataclass(slots=True)
class _Adaptive:
    """Server-side adaptive optimiser on the pseudo-gradient ``-delta``."""

    lr: float = 0.1
    beta1: float = 0.9
    beta2: float = 0.99
    tau: float = 1e-3
    name: str = "fedadam"
    _m: list[np.ndarray] = field(default_factory=list)
    _v: list[np.ndarray] = field(default_factory=list)

    def fit_config(self) -> dict[str, Any]:
        return {}

    def _second(self, v: np.ndarray, d2: np.ndarray) -> np.ndarray:
        raise NotImplementedError

    def apply(self, weights: Sequence[np.ndarray], delta: Sequence[np.ndarray]) -> list[np.ndarray]:
        if not self._m:
            self._m = [np.zeros_like(d, dtype=np.float64) for d in delta]
            self._v = [np.full_like(d, self.tau**2, dtype=np.float64) for d in delta]
        out = []
        for i, (w, d) in enumerate(zip(weights, delta)):
            self._m[i] = self.beta1 * self._m[i] + (1 - self.beta1) * d
            self._v[i] = self._second(self._v[i], np.square(d))
            out.append((w + self.lr * self._m[i] / (np.sqrt(self._v[i]) + self.tau)).astype(w.dtype))
        return out

    def state(self) -> dict[str, np.ndarray]:
        s = {f"m{i}": m for i, m in enumerate(self._m)}
        s.update({f"v{i}": v for i, v in enumerate(self._v)})
        return s

    def load_state(self, state: Mapping[str, np.ndarray]) -> None:
        n = sum(1 for k in state if k.startswith("m"))
        self._m = [np.asarray(state[f"m{i}"]) for i in range(n)]
        self._v = [np.asarray(state[f"v{i}"]) for i in range(n)]


@dataclass(slots=True)
class FedAdam(_Adaptive):
    name: str = "fedadam"

    def _second(self, v: np.ndarray, d2: np.ndarray) -> np.ndarray:
        return self.beta2 * v + (1 - self.beta2) * d2


@dataclass(slots=True)
class FedYogi(_Adaptive):
    name: str = "fedyogi"

    def _second(self, v: np.ndarray, d2: np.ndarray) -> np.ndarray:
        return v - (1 - self.beta2) * d2 * np.sign(v - d2)


_KINDS: dict[str, Any] = {"fedavg": FedAvg, "fedprox": FedProx, "fedadam": FedAdam, "fedyogi": FedYogi}


def make_strategy(spec: Mapping[str, Any] | str | None) -> Strategy:
    """``"fedavg"`` or ``{name: fedprox, mu: 0.01}`` / ``{name: fedadam, lr: 0.1, ...}``."""
    if spec is None:
        return FedAvg()
    options = {"name": spec} if isinstance(spec, str) else dict(spec)
    name = str(options.pop("name", "fedavg")).lower()
    if name not in _KINDS:
        raise ConfigError(f"strategy: unknown name {name!r}; use one of {sorted(_KINDS)}")
    try:
        strategy: Strategy = _KINDS[name](**options)
    except TypeError as exc:
        raise ConfigError(f"strategy {name}: {exc}") from exc
    return strategy


def sample_clients(ids: Sequence[str], *, fraction: float, min_clients: int, rng: np.random.Generator) -> list[str]:
    """``max(min_clients, ceil(fraction * len(ids)))`` distinct clients, in their given order."""
    k = min(len(ids), max(min_clients, int(np.ceil(fraction * len(ids)))))
    if k >= len(ids):
        return list(ids)
    chosen = set(rng.choice(len(ids), size=k, replace=False).tolist())
    return [c for i, c in enumerate(ids) if i in chosen]
