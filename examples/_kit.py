"""Helpers the examples share: a BYTES tensor from strings; for tests and demos, find a brick in a
loaded graph and make one fail."""

from __future__ import annotations

import dataclasses
from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np

from brickwork.errors import WorkerCrashed
from brickwork.graph import Node

__all__ = ["find_node", "make_unavailable", "text_tensor"]


def text_tensor(values: Sequence[str]) -> np.ndarray:
    """A 1-D BYTES tensor (numpy object array) of ``values``, for batch functions' outputs."""
    out = np.empty(len(values), dtype=object)
    out[:] = values
    return out


def find_node(step: Any, name: str) -> Node:
    """The node called ``name`` anywhere inside a graph (sequences, switches, ladders, ...)."""
    todo = [step]
    while todo:
        s = todo.pop()
        if isinstance(s, Node):
            if s.name == name:
                return s
            continue
        if not dataclasses.is_dataclass(s):
            continue
        for f in dataclasses.fields(s):
            value = getattr(s, f.name)
            if isinstance(value, Mapping):
                todo += list(value.values())
            elif isinstance(value, tuple | list):
                todo += list(value)
            else:
                todo.append(value)
    raise KeyError(f"no brick named {name!r} in the graph")


def make_unavailable(node: Node, reason: str = "model host unreachable") -> None:
    """Every call of the node's brick fails as a crashed worker would (a machinery failure,
    which moves a fallback ladder to its next rung). Call before ``compile()``."""

    def crash(inputs: Any) -> Any:
        raise WorkerCrashed(f"brick {node.name!r}: {reason}")

    node.brick._call = crash  # type: ignore[attr-defined]
