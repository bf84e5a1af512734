"""The currency: named tensors, their dtypes and their specs.

Everything that flows between bricks is a ``dict[str, numpy.ndarray]``, batched along axis 0.
A :class:`TensorSpec` describes one port: its name, its dtype (an Open Inference Protocol v2
wire name such as ``FP32`` or ``BYTES``) and its shape *including the batch axis*, where ``-1``
is a dynamic dimension. A :class:`Signature` is a brick's ordered inputs and outputs.

One table maps each dtype between numpy, the v2 wire name, ONNX and torch.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any, TypeAlias

import numpy as np

from .errors import InvalidInput, SpecError

__all__ = ["DTYPES", "DType", "Signature", "TensorSpec", "Tensors", "dtype_of", "to_numpy_dtype"]

Tensors: TypeAlias = dict[str, np.ndarray]


@dataclass(frozen=True, slots=True)
class DType:
    """One row of the dtype table."""

    name: str  # the v2 wire name: "FP32", "BYTES", ...
    numpy: str | None  # numpy dtype name; "object" for BYTES; None where numpy has none (BF16)
    onnx: int  # onnx.TensorProto enum value
    onnx_name: str  # as onnxruntime spells it: "tensor(float)"
    torch: str | None  # torch dtype attribute name
    size: int  # bytes per element on the wire; 0 for BYTES


DTYPES: dict[str, DType] = {
    d.name: d
    for d in (
        DType("BOOL", "bool", 9, "tensor(bool)", "bool", 1),
        DType("UINT8", "uint8", 2, "tensor(uint8)", "uint8", 1),
        DType("UINT16", "uint16", 4, "tensor(uint16)", "uint16", 2),
        DType("UINT32", "uint32", 12, "tensor(uint32)", "uint32", 4),
        DType("UINT64", "uint64", 13, "tensor(uint64)", "uint64", 8),
        DType("INT8", "int8", 3, "tensor(int8)", "int8", 1),
        DType("INT16", "int16", 5, "tensor(int16)", "int16", 2),
        DType("INT32", "int32", 6, "tensor(int32)", "int32", 4),
        DType("INT64", "int64", 7, "tensor(int64)", "int64", 8),
        DType("FP16", "float16", 10, "tensor(float16)", "float16", 2),
        DType("FP32", "float32", 1, "tensor(float)", "float32", 4),
        DType("FP64", "float64", 11, "tensor(double)", "float64", 8),
        DType("BF16", None, 16, "tensor(bfloat16)", "bfloat16", 2),
        DType("BYTES", "object", 8, "tensor(string)", None, 0),
    )
}

_ALIASES: dict[str, str] = {}
for _d in DTYPES.values():
    _ALIASES[_d.name.lower()] = _d.name
    _ALIASES[_d.onnx_name] = _d.name
    if _d.numpy:
        _ALIASES[_d.numpy] = _d.name
    if _d.torch:
        _ALIASES[f"torch.{_d.torch}"] = _d.name
_ALIASES.update(
    {
        "float": "FP32", "double": "FP64", "half": "FP16", "str": "BYTES", "string": "BYTES",
        "bytes": "BYTES", "object": "BYTES", "int": "INT64", "long": "INT64", "bfloat16": "BF16",
    }
)


def dtype_of(value: Any) -> str:
    """Normalise any dtype spelling (``np.float32``, ``"float32"``, ``"FP32"``,
    ``"tensor(float)"``, an ONNX enum int, ``torch.float32``) to its v2 wire name."""
    if type(value) in _NP_DTYPE_TYPES:  # the hot path: an array's dtype, seen before
        hit = _BY_NP_DTYPE.get(value)
        if hit is not None:
            return hit
        name = _dtype_of(value)
        if len(_BY_NP_DTYPE) < 256:
            _BY_NP_DTYPE[value] = name
        return name
    return _dtype_of(value)


_BY_NP_DTYPE: dict[Any, str] = {}
_NP_DTYPE_TYPES = frozenset(type(np.dtype(d.numpy)) for d in DTYPES.values() if d.numpy) | {
    type(np.dtype("U1")), type(np.dtype("S1"))}


def _dtype_of(value: Any) -> str:
    if isinstance(value, DType):
        return value.name
    if isinstance(value, int) and not isinstance(value, bool):
        for d in DTYPES.values():
            if d.onnx == value:
                return d.name
        raise SpecError(f"unknown ONNX element type {value}")
    if isinstance(value, str):
        key = value if value in DTYPES else _ALIASES.get(value.lower(), _ALIASES.get(value))
        if key is None:
            raise SpecError(
                f"unknown dtype {value!r}; use a v2 name such as {', '.join(DTYPES)}"
            )
        return key
    if value is str or value is bytes:
        return "BYTES"
    if isinstance(value, np.dtype):
        cached = _NUMPY_NAMES.get(value)
        if cached is not None:
            return cached
    text = str(value)
    if text.startswith("torch."):
        return dtype_of(text)
    try:
        np_dtype = np.dtype(value)
    except TypeError as exc:
        raise SpecError(f"unknown dtype {value!r}") from exc
    name = "BYTES" if np_dtype.kind in "OUS" else dtype_of(np_dtype.name)
    if np_dtype.kind not in "OUSV":
        _NUMPY_NAMES[np_dtype] = name
    return name


_NUMPY_NAMES: dict[np.dtype, str] = {}  # dtype_of's cache for numpy dtypes (the hot path)


def to_numpy_dtype(name: str) -> np.dtype:
    row = DTYPES[dtype_of(name)]
    if row.numpy is None:
        raise SpecError(f"{row.name} has no numpy dtype; convert it to FP32 at the brick's edge")
    return np.dtype(row.numpy)


def _shape(shape: Iterable[int | None] | None) -> tuple[int, ...]:
    if shape is None:
        return (-1,)
    out = []
    for dim in shape:
        if dim is None or (isinstance(dim, str)):  # ONNX symbolic dims are strings
            out.append(-1)
        elif isinstance(dim, int | np.integer) and (dim >= 0 or dim == -1):
            out.append(int(dim))
        else:
            raise SpecError(f"bad dimension {dim!r} in shape {tuple(shape)}; use ints >= 0 or -1")
    return tuple(out)


@dataclass(frozen=True, slots=True)
class TensorSpec:
    """One named port. ``shape`` includes the batch axis (dim 0); ``-1`` is dynamic."""

    name: str
    dtype: str
    shape: tuple[int, ...] = (-1,)

    def __init__(self, name: str, dtype: Any, shape: Iterable[int | None] | None = (-1,)) -> None:
        if not name or not isinstance(name, str):
            raise SpecError(f"a tensor needs a non-empty name, got {name!r}")
        object.__setattr__(self, "name", name)
        object.__setattr__(self, "dtype", dtype_of(dtype))
        object.__setattr__(self, "shape", _shape(shape))

    @property
    def rank(self) -> int:
        return len(self.shape)

    def renamed(self, name: str) -> TensorSpec:
        return TensorSpec(name, self.dtype, self.shape)

    def __str__(self) -> str:
        dims = ", ".join("?" if d == -1 else str(d) for d in self.shape)
        return f"{self.name}: {self.dtype}[{dims}]"

    def to_dict(self) -> dict[str, Any]:
        return {"name": self.name, "datatype": self.dtype, "shape": list(self.shape)}

    def check(self, array: np.ndarray, *, where: str = "input") -> np.ndarray:
        """Validate one runtime tensor against this spec; returns it (possibly cast for
        BYTES) or raises :class:`InvalidInput` naming the problem."""
        got = dtype_of(array.dtype)
        if got != self.dtype:
            raise InvalidInput(
                f"{where} {self.name!r}: expected datatype {self.dtype}, got {got}"
            )
        if array.ndim != self.rank:
            raise InvalidInput(
                f"{where} {self.name!r}: expected rank {self.rank} {list(self.shape)}, "
                f"got shape {list(array.shape)}"
            )
        for want, have in zip(self.shape, array.shape, strict=True):
            if want != -1 and want != have:
                raise InvalidInput(
                    f"{where} {self.name!r}: expected shape {list(self.shape)}, "
                    f"got {list(array.shape)}"
                )
        return array


@dataclass(frozen=True, slots=True)
class Signature:
    """A brick's ordered inputs and outputs."""

    inputs: tuple[TensorSpec, ...]
    outputs: tuple[TensorSpec, ...]

    def __init__(self, inputs: Sequence[TensorSpec], outputs: Sequence[TensorSpec]) -> None:
        for group, label in ((inputs, "input"), (outputs, "output")):
            names = [t.name for t in group]
            dupes = sorted({n for n in names if names.count(n) > 1})
            if dupes:
                raise SpecError(f"duplicate {label} name(s) {dupes} in signature")
        object.__setattr__(self, "inputs", tuple(inputs))
        object.__setattr__(self, "outputs", tuple(outputs))

    @property
    def input_names(self) -> tuple[str, ...]:
        return tuple(t.name for t in self.inputs)

    @property
    def output_names(self) -> tuple[str, ...]:
        return tuple(t.name for t in self.outputs)

    def input(self, name: str) -> TensorSpec:
        return _find(self.inputs, name, "input")

    def output(self, name: str) -> TensorSpec:
        return _find(self.outputs, name, "output")

    def __str__(self) -> str:
        ins = ", ".join(map(str, self.inputs))
        outs = ", ".join(map(str, self.outputs))
        return f"({ins}) -> ({outs})"

    def to_dict(self) -> dict[str, Any]:
        return {
            "inputs": [t.to_dict() for t in self.inputs],
            "outputs": [t.to_dict() for t in self.outputs],
        }

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> Signature:
        def specs(key: str) -> list[TensorSpec]:
            return [
                TensorSpec(t["name"], t.get("datatype", t.get("dtype")), t.get("shape", (-1,)))
                for t in data.get(key, ())
            ]

        return cls(specs("inputs"), specs("outputs"))


def _find(specs: tuple[TensorSpec, ...], name: str, label: str) -> TensorSpec:
    for spec in specs:
        if spec.name == name:
            return spec
    names = [s.name for s in specs]
    raise SpecError(f"no {label} named {name!r}; the {label}s are {names}")
