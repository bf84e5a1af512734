"""Safe adapters that compile() may insert on an edge, and the rule deciding when.

Only conversions that lose nothing are inserted on their own: widening casts (INT32→INT64,
FP32→FP64, UINT8→FP32 …), adding a size-1 axis, removing a size-1 axis. Renames are inserted
only where the user declared them. Everything else is refused by compile() with an
:class:`~brickwork.errors.InterfaceMismatch` that names both ends.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

import numpy as np

from .spec import TensorSpec, to_numpy_dtype

__all__ = ["LOSSLESS_CASTS", "Adapter", "fit"]

# (from, to) pairs where every value of `from` is exactly representable in `to`.
LOSSLESS_CASTS: frozenset[tuple[str, str]] = frozenset(
    {
        ("BOOL", t) for t in ("UINT8", "INT8", "INT16", "INT32", "INT64", "FP16", "FP32", "FP64")
    }
    | {("INT8", t) for t in ("INT16", "INT32", "INT64", "FP16", "FP32", "FP64")}
    | {("UINT8", t) for t in ("UINT16", "UINT32", "UINT64", "INT16", "INT32", "INT64",
                               "FP16", "FP32", "FP64")}
    | {("INT16", t) for t in ("INT32", "INT64", "FP32", "FP64")}
    | {("UINT16", t) for t in ("UINT32", "UINT64", "INT32", "INT64", "FP32", "FP64")}
    | {("INT32", t) for t in ("INT64", "FP64")}
    | {("UINT32", t) for t in ("UINT64", "INT64", "FP64")}
    | {("FP16", "FP32"), ("FP16", "FP64"), ("FP32", "FP64")}
)


@dataclass(frozen=True, slots=True)
class Adapter:
    """One conversion applied to a tensor on its way into a brick."""

    kind: Literal["cast", "expand_dims", "squeeze", "rename"]
    tensor: str  # the name the brick's port sees
    detail: str  # target dtype for "cast", the axis for dims, the source name for "rename"

    def apply(self, array: np.ndarray) -> np.ndarray:
        if self.kind == "cast":
            return array.astype(to_numpy_dtype(self.detail), copy=False)
        if self.kind == "expand_dims":
            return np.expand_dims(array, int(self.detail))
        if self.kind == "squeeze":
            return np.squeeze(array, axis=int(self.detail))
        return array

    def __str__(self) -> str:
        if self.kind == "cast":
            return f"cast {self.tensor} to {self.detail}"
        if self.kind == "rename":
            return f"rename {self.detail} to {self.tensor}"
        return f"{self.kind}({self.tensor}, axis={self.detail})"


def _dims_fit(src: tuple[int, ...], dst: tuple[int, ...]) -> bool:
    return len(src) == len(dst) and all(a == -1 or b == -1 or a == b for a, b in zip(src, dst))


def fit(src: TensorSpec, dst: TensorSpec) -> tuple[Adapter, ...] | str:
    """Adapters that turn a tensor of spec ``src`` into one ``dst`` accepts, or the reason
    none exists (a sentence to put into an InterfaceMismatch)."""
    adapters: list[Adapter] = []
    if src.dtype != dst.dtype:
        if (src.dtype, dst.dtype) not in LOSSLESS_CASTS:
            lossy = "BYTES" not in (src.dtype, dst.dtype)
            hint = (
                f"insert a cast brick before it if losing precision is acceptable: "
                f"bw.cast({{{src.name!r}: {dst.dtype!r}}}) in Python, "
                f"{{cast: {{{src.name}: {dst.dtype}}}}} in YAML (values that do not fit are refused)"
                if lossy
                else "insert a brick that decodes or encodes the text"
            )
            return f"datatype {src.dtype} cannot become {dst.dtype} without loss; {hint}"
        adapters.append(Adapter("cast", dst.name, dst.dtype))
    if _dims_fit(src.shape, dst.shape):
        return tuple(adapters)
    # one size-1 axis more or less, never the batch axis
    if len(dst.shape) == len(src.shape) + 1:
        for axis in range(len(dst.shape) - 1, 0, -1):
            if dst.shape[axis] in (1, -1) and _dims_fit(
                src.shape, dst.shape[:axis] + dst.shape[axis + 1 :]
            ):
                return (*adapters, Adapter("expand_dims", dst.name, str(axis)))
    if len(src.shape) == len(dst.shape) + 1:
        for axis in range(len(src.shape) - 1, 0, -1):
            if src.shape[axis] == 1 and _dims_fit(
                src.shape[:axis] + src.shape[axis + 1 :], dst.shape
            ):
                return (*adapters, Adapter("squeeze", dst.name, str(axis)))
    return (
        f"shape {list(src.shape)} does not fit {list(dst.shape)} "
        "(only a size-1 axis may be added or removed on its own); "
        "insert a reshape brick or fix the producer's output shape"
    )
