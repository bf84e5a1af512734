"""A brick that casts named tensors to another datatype, refusing values that do not fit.

compile() inserts only lossless casts on its own (INT32→INT64, FP32→FP64, …); a lossy one
(FP64→FP32, FP32→INT64, INT64→INT32) is the user's decision, made with this brick::

    producer >> bw.cast({"x": "FP32"}) >> consumer          # Python
    narrow: {cast: {x: FP32}}                               # YAML: graph: producer >> narrow >> consumer

Each tensor keeps its name and shape; the cast republishes it with the new datatype (later
steps see the cast tensor). Its input specs are taken from the edge when the graph compiles
(or declared with ``inputs``). Precision may be lost (FP64→FP32 rounds, INT64→FP32 above
2**24 rounds), but a value that the target cannot hold is refused with
:class:`~brickwork.InvalidInput`, naming the tensor, the item and the value:

* a finite float beyond the target float's range (it would become infinity);
* NaN or infinity into an integer or BOOL;
* a float with a fractional part into an integer (round it in a python brick first);
* an integer outside the target integer's range (INT64 → INT32, negative → UINT*);
* anything but 0 and 1 into BOOL.

Text (BYTES) is neither a source nor a target: decoding and encoding text is a python brick.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any

import numpy as np

from ..errors import ConfigError, GraphError, InvalidInput, SpecError
from ..spec import DTYPES, Signature, Tensors, TensorSpec, dtype_of, to_numpy_dtype
from ._base import TENSORS, BaseBrick, BrickSpec, ConfigKey

__all__ = ["CastBrick"]

_TARGETS = [d for d in DTYPES if d not in ("BYTES", "BF16")]


class CastBrick(BaseBrick):
    """Cast tensors (``targets``: tensor name -> datatype); ``inputs`` optionally declares
    their specs before the cast (default: what compile() sees on the edge)."""

    kind = "cast"
    blocking = False
    replaces_inputs = True  # compile(): its outputs republish the tensors it reads
    config_keys = (
        ConfigKey("cast", {"type": "object", "minProperties": 1,
                           "additionalProperties": {"enum": _TARGETS}},
                  "tensor name -> the datatype to cast it to (a value that does not fit is "
                  "refused, see the cast brick)", required=True),
        ConfigKey("inputs", TENSORS, "the tensors' specs before the cast; default: what "
                  "compile() sees on the edge"),
    )

    def __init__(self, targets: Mapping[str, Any], *, name: str | None = None,
                 inputs: Any = None) -> None:
        if not isinstance(targets, Mapping) or not targets:
            raise ConfigError(f"a cast brick needs {{tensor: datatype}}, got {targets!r}")
        self.targets = {str(k): dtype_of(v) for k, v in targets.items()}
        for tensor, dtype in self.targets.items():
            if dtype not in _TARGETS:
                raise ConfigError(f"cast of {tensor!r} to {dtype}: a cast brick casts between "
                                  f"numbers and BOOL ({', '.join(_TARGETS)}); text needs a "
                                  "python brick that encodes or decodes it")
        super().__init__(name or "cast_" + "_".join(self.targets))
        self._declared = inputs is not None
        if inputs is not None:
            from .function import _specs

            specs = {s.name: s for s in _specs(inputs, self.name)}
            self.bind(specs.get)

    def bind(self, visible: Callable[[str], TensorSpec | None]) -> None:
        """Take the input specs from the edge (``visible(name)``: the spec compile() sees for
        that tensor name, or None); a declared brick keeps its declared inputs."""
        if self._declared and self._signature is not None:
            return
        ins, outs = [], []
        for tensor, dtype in self.targets.items():
            src = visible(tensor)
            if src is None:
                raise GraphError(f"cast brick {self.name!r}: no tensor {tensor!r} to cast here")
            if src.dtype in ("BYTES", "BF16"):
                raise GraphError(f"cast brick {self.name!r}: {tensor!r} is {src.dtype}; a cast "
                                 "brick casts numbers (text needs a python brick)")
            ins.append(src.renamed(tensor))
            outs.append(TensorSpec(tensor, dtype, src.shape))
        self._signature = Signature(ins, outs)

    @property
    def signature(self) -> Signature:
        if self._signature is None:
            raise SpecError(f"cast brick {self.name!r} learns its input specs when the graph "
                            "compiles; compile the graph, or declare inputs=")
        return self._signature

    def _call(self, inputs: Tensors) -> Tensors:
        return {t: _cast(inputs[t], dtype, t, self.name) for t, dtype in self.targets.items()}

    def warmup(self) -> None:
        """Nothing to warm up (a numpy cast)."""

    def spec(self) -> BrickSpec:
        config: dict[str, Any] = {"cast": dict(self.targets)}
        if self._signature is not None:
            config["inputs"] = [s.to_dict() for s in self._signature.inputs]
        return BrickSpec(self.kind, self.name, config)

    @classmethod
    def from_config(cls, config: dict[str, Any], base_dir: Path, name: str) -> CastBrick:
        from .onnx import config_options

        opts = config_options(config, "cast", cls.config_keys)
        return cls(config.get("cast") or {}, name=name, inputs=opts.get("inputs"))


def _cast(array: np.ndarray, dtype: str, tensor: str, brick: str) -> np.ndarray:
    target = to_numpy_dtype(dtype)
    a = np.asarray(array)
    if a.dtype == target:
        return a
    bad = _misfits(a, target)
    if bad.any():
        index = np.argwhere(bad)[0]
        item = int(index[0]) if index.size else 0
        value = a[tuple(index)] if index.size else a
        shown = value.item() if hasattr(value, "item") else value
        raise InvalidInput(
            f"cast brick {brick!r}: {tensor!r} item {item} holds {shown!r}, which "
            f"{dtype} cannot hold ({_why(a, target, value)})"
        )
    return a.astype(target)


def _misfits(a: np.ndarray, target: np.dtype) -> np.ndarray:
    """True where a value of ``a`` does not fit ``target``."""
    if target == np.bool_:
        with np.errstate(invalid="ignore"):
            return ~((a == 0) | (a == 1))
    if np.issubdtype(target, np.floating):
        if not np.issubdtype(a.dtype, np.floating) and not np.issubdtype(a.dtype, np.integer):
            return np.zeros(a.shape, bool)
        big = float(np.finfo(target).max)
        with np.errstate(invalid="ignore"):
            return np.isfinite(a) & (np.abs(a.astype(np.float64)) > big)
    info = np.iinfo(target)
    if np.issubdtype(a.dtype, np.floating):
        with np.errstate(invalid="ignore"):
            return (~np.isfinite(a) | (a != np.trunc(a)) | (a < float(info.min))
                    | (a >= float(info.max) + 1))
    if a.dtype == np.bool_:
        return np.zeros(a.shape, bool)
    src = np.iinfo(a.dtype)
    if src.min >= info.min and src.max <= info.max:
        return np.zeros(a.shape, bool)
    exact = a.astype(object)  # Python ints: compared without wrapping
    return np.asarray((exact < info.min) | (exact > info.max), dtype=bool)


def _why(a: np.ndarray, target: np.dtype, value: Any) -> str:
    if target == np.bool_:
        return "only 0 and 1 become BOOL"
    if np.issubdtype(target, np.floating):
        return f"beyond ±{float(np.finfo(target).max):.6g}"
    if np.issubdtype(a.dtype, np.floating):
        if not np.isfinite(value):
            return "NaN and infinity have no integer value"
        if value != np.trunc(value):
            return "it has a fractional part; round it in a python brick first"
    info = np.iinfo(target)
    return f"outside {info.min}..{info.max}"
