"""Messages between the server and a client process: frozen dataclasses of numpy arrays and
plain values, sent over a ``multiprocessing`` pipe between processes the server spawned itself
(never read from a network socket)."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

import numpy as np

__all__ = [
    "EvalIns", "EvalRes", "ExportIns", "ExportRes", "FitIns", "FitRes", "Peer", "Ready",
    "Refusal", "RevealIns", "RevealRes", "Stop", "WeightsIns", "WeightsRes",
]


# server -> client
@dataclass(frozen=True, slots=True)
class Peer:
    """Another participant of a secure-aggregation round: its id and Diffie-Hellman public key."""

    client_id: str
    public_key: int


@dataclass(frozen=True, slots=True)
class FitIns:
    round: int
    weights: tuple[np.ndarray, ...]
    config: Mapping[str, Any]
    peers: tuple[Peer, ...] | None = None  # secure aggregation: mask against these
    clip: float | None = None  # differential privacy: clip the update's L2 norm to this


@dataclass(frozen=True, slots=True)
class EvalIns:
    round: int
    weights: tuple[np.ndarray, ...]
    config: Mapping[str, Any]


@dataclass(frozen=True, slots=True)
class RevealIns:
    """Secure aggregation's recovery: give the pairwise seeds shared with these dropped clients."""

    round: int
    dropped: tuple[str, ...]


@dataclass(frozen=True, slots=True)
class WeightsIns:
    pass


@dataclass(frozen=True, slots=True)
class ExportIns:
    weights: tuple[np.ndarray, ...]
    path: str


@dataclass(frozen=True, slots=True)
class Stop:
    pass


# client -> server
@dataclass(frozen=True, slots=True)
class Ready:
    client_id: str
    pid: int
    public_key: int | None


@dataclass(frozen=True, slots=True)
class FitRes:
    """A client's update: ``n_examples * (new - global)`` layer by layer, or, under secure
    aggregation, one masked ``uint64`` vector of the fixed-point encoded update."""

    client_id: str
    round: int
    update: tuple[np.ndarray, ...]
    n_examples: int
    weight: float
    metrics: Mapping[str, float] = field(default_factory=dict)
    fit_s: float = 0.0
    masked: bool = False


@dataclass(frozen=True, slots=True)
class EvalRes:
    client_id: str
    round: int
    loss: float
    n_examples: int
    metrics: Mapping[str, float] = field(default_factory=dict)


@dataclass(frozen=True, slots=True)
class RevealRes:
    client_id: str
    round: int
    seeds: Mapping[str, int]


@dataclass(frozen=True, slots=True)
class WeightsRes:
    client_id: str
    weights: tuple[np.ndarray, ...]


@dataclass(frozen=True, slots=True)
class ExportRes:
    client_id: str
    path: str
    inputs: tuple[str, ...]
    outputs: tuple[str, ...]
    example: Mapping[str, Any] = field(default_factory=dict)


@dataclass(frozen=True, slots=True)
class Refusal:
    """The client could not answer: its fit raised, or its update is malformed (NaN, shape)."""

    client_id: str
    round: int
    reason: str
