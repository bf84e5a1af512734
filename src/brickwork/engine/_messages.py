"""The control messages between the engine and a worker process (see ``_worker`` for what each
does, ``_wire`` for how they are laid out on the pipe)."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field

import numpy as np

from ..bricks import BrickSpec
from ..errors import RequestError
from ._shm import TensorRef

__all__ = ["BatchDone", "BatchFailed", "Forget", "Ping", "Pong", "RunBatch", "Shutdown", "WorkerFailed",
           "WorkerReady", "WorkerStart"]


@dataclass(frozen=True, slots=True)
class WorkerStart:
    stage: str
    index: int
    brick: BrickSpec
    device: str
    kind_target: str | None = None  # "module:Class" of the brick's kind, registered in the worker too


@dataclass(frozen=True, slots=True)
class WorkerReady:
    pid: int


@dataclass(frozen=True, slots=True)
class WorkerFailed:
    """The brick could not be built or loaded; the message says why."""

    message: str


@dataclass(frozen=True, slots=True)
class RunBatch:
    seq: int
    in_arena: str
    out_arena: str
    inputs: tuple[TensorRef, ...]
    pickled: Mapping[str, np.ndarray] = field(default_factory=dict)


@dataclass(frozen=True, slots=True)
class BatchDone:
    seq: int
    outputs: tuple[TensorRef, ...]
    pickled: Mapping[str, np.ndarray]
    compute_s: float
    copied: int  # bytes the worker copied into the response arena
    out_needed: int  # response-arena bytes this batch would have needed


@dataclass(frozen=True, slots=True)
class BatchFailed:
    seq: int
    error: RequestError


@dataclass(frozen=True, slots=True)
class Shutdown:
    pass


@dataclass(frozen=True, slots=True)
class Forget:
    """The engine released these arenas (idle): unmap them, so /dev/shm gets the room back."""

    names: tuple[str, ...]


@dataclass(frozen=True, slots=True)
class Ping:
    seq: int


@dataclass(frozen=True, slots=True)
class Pong:
    seq: int
