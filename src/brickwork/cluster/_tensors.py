"""Tensors that stay in the Ray cluster.

When one Ray stage feeds another, its output need not come back to the ingress: the actor
puts it in Ray's object store and answers with a :class:`RemoteTensor`, an object reference
plus the rows of it this value stands for. The ingress cuts a batch's outputs back into
requests (row slices of the reference, no bytes moved) and hands them to the next stage's
actor, which fetches them from the object store of the node that made them. Anything the
ingress itself must read (a pipeline output, an adapter, a routing or voting tensor) is asked
for as a plain array instead, so a RemoteTensor never reaches code that expects numpy.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np

__all__ = ["RemoteTensor"]


@dataclass(frozen=True, slots=True)
class RemoteTensor:
    """Rows ``[start, start + shape[0])`` of the array behind ``ref`` (a ``ray.ObjectRef``).
    Quacks like an ndarray as far as the stage queue needs (``shape``, ``ndim``, ``dtype``,
    ``nbytes``, row slices)."""

    ref: Any
    dtype: np.dtype[Any]
    shape: tuple[int, ...]
    start: int = 0

    @property
    def ndim(self) -> int:
        return len(self.shape)

    @property
    def nbytes(self) -> int:
        return int(np.prod(self.shape, dtype=np.int64)) * self.dtype.itemsize

    def __getitem__(self, key: slice) -> RemoteTensor:
        if not isinstance(key, slice) or key.step not in (None, 1):
            raise TypeError("a RemoteTensor supports row slices only (tensor[a:b])")
        begin, end, _ = key.indices(self.shape[0])
        return RemoteTensor(self.ref, self.dtype, (max(end - begin, 0), *self.shape[1:]),
                            self.start + begin)

    def resolve(self, whole: np.ndarray) -> np.ndarray:
        """This value's rows of ``whole`` (the array behind ``ref``, fetched by the caller)."""
        return whole[self.start:self.start + self.shape[0]]
