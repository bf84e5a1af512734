"""The v2 gRPC infer messages ⇄ numpy: the gRPC counterpart of :mod:`._infer`, with the same
strictness (a shape's element count is checked against the data received before any array is
made) and the same request-level rules (known inputs, each once, all given; known outputs).

Inputs come either all in ``raw_input_contents`` (one little-endian buffer per input, in input
order; BYTES elements each a 4-byte little-endian length then the bytes) or each in its typed
``contents`` field. Outputs always go back in ``raw_output_contents``, as Triton does, which is
what tritonclient reads first. ``messages`` holds the message classes (built from the
committed descriptor of ``grpc_service.proto``). Needs ``protobuf`` (the ``grpc`` extra), so
``brickwork.protocol`` does not import this module; import it by name.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from typing import Any

import numpy as np

from ..errors import InvalidInput
from ..spec import DTYPES, TensorSpec, dtype_of
from . import _grpc_pb as messages
from ._infer import InferRequest, member_parameters
from ._tensors import _NP, MAX_RANK, pack_bytes, unpack_bytes

__all__ = ["decode_grpc_request", "encode_grpc_response", "messages", "tensor_metadata"]

# v2 datatype -> the InferTensorContents field that carries it (FP16/BF16: raw only)
_CONTENTS = {
    "BOOL": "bool_contents", "INT8": "int_contents", "INT16": "int_contents",
    "INT32": "int_contents", "INT64": "int64_contents", "UINT8": "uint_contents",
    "UINT16": "uint_contents", "UINT32": "uint_contents", "UINT64": "uint64_contents",
    "FP32": "fp32_contents", "FP64": "fp64_contents", "BYTES": "bytes_contents",
}
_NARROW = frozenset({"INT8", "INT16", "UINT8", "UINT16"})  # carried in a wider field


def tensor_metadata(specs: Mapping[str, TensorSpec]) -> list[Any]:
    T = messages.ModelMetadataResponse.TensorMetadata
    return [T(name=s.name, datatype=s.dtype, shape=list(s.shape)) for s in specs.values()]


def decode_grpc_request(msg: Any, inputs: Mapping[str, TensorSpec], outputs: Mapping[str, TensorSpec],
                        model: str) -> InferRequest:
    """A ``ModelInferRequest`` into the same :class:`InferRequest` the HTTP codec makes
    (``binary_output`` is meaningless here: outputs always travel raw)."""
    items = msg.inputs
    if not items:
        raise InvalidInput(f"'inputs' must be a non-empty list of tensors; model {model!r} takes "
                           f"{[s.to_dict() for s in inputs.values()]}")
    raws = msg.raw_input_contents
    if raws and len(raws) != len(items):
        raise InvalidInput(f"raw_input_contents has {len(raws)} entries for {len(items)} inputs; "
                           "give every input raw, or none")
    tensors: dict[str, np.ndarray] = {}
    for i, item in enumerate(items):
        name = item.name
        if name not in inputs:
            raise InvalidInput(f"unknown input {name!r}; model {model!r} takes {sorted(inputs)}")
        if name in tensors:
            raise InvalidInput(f"input {name!r} is given twice")
        tensors[name] = _decode_tensor(item, raws[i] if raws else None, f"input {name!r}")
    if len(tensors) != len(inputs):
        missing = sorted(set(inputs) - set(tensors))
        raise InvalidInput(f"missing input(s) {missing} for model {model!r}")
    requested = None
    if msg.outputs:
        requested = []
        for o in msg.outputs:
            if o.name not in outputs:
                raise InvalidInput(f"unknown output {o.name!r}; model {model!r} returns {sorted(outputs)}")
            requested.append((o.name, True))
    return InferRequest(tensors, requested, True, msg.id or None, _timeout(msg.parameters))


def _decode_tensor(item: Any, raw: bytes | None, label: str) -> np.ndarray:
    datatype = item.datatype
    if datatype not in DTYPES:
        raise InvalidInput(f"{label}: unknown datatype {datatype!r}; use one of {', '.join(DTYPES)}")
    shape = tuple(item.shape)
    if len(shape) > MAX_RANK:
        raise InvalidInput(f"{label}: shape has {len(shape)} dimensions; at most {MAX_RANK}")
    if any(d < 0 for d in shape):
        raise InvalidInput(f"{label}: 'shape' must be ints >= 0, got {list(shape)}")
    count = math.prod(shape)
    if raw is not None:
        if item.HasField("contents"):
            raise InvalidInput(f"{label}: both raw_input_contents and contents are given")
        if datatype == "BYTES":
            return unpack_bytes(raw, count, label).reshape(shape)
        np_dtype = _NP[datatype]
        if np_dtype is None:
            raise InvalidInput(f"{label}: datatype {datatype} is not supported; send FP32")
        if len(raw) != count * np_dtype.itemsize:
            raise InvalidInput(f"{label}: shape {list(shape)} needs {count * np_dtype.itemsize} "
                               f"bytes of {datatype}, got {len(raw)}")
        return np.frombuffer(raw, dtype=np_dtype).reshape(shape)
    field = _CONTENTS.get(datatype)
    if field is None:
        raise InvalidInput(f"{label}: {datatype} travels only in raw_input_contents")
    data = getattr(item.contents, field)
    if len(data) != count:
        raise InvalidInput(f"{label}: shape {list(shape)} has {count} elements, "
                           f"contents.{field} has {len(data)}")
    if datatype == "BYTES":
        arr = np.empty(count, dtype=object)
        arr[:] = list(data)
        return arr.reshape(shape)
    np_dtype = _NP[datatype]
    assert np_dtype is not None
    if datatype in _NARROW and count:
        wide = np.asarray(data, dtype=np.int64)
        info = np.iinfo(np_dtype)
        lo, hi = int(wide.min()), int(wide.max())
        if lo < info.min or hi > info.max:
            raise InvalidInput(f"{label}: value {lo if lo < info.min else hi} is out of range for {datatype}")
        return wide.astype(np_dtype).reshape(shape)
    return np.asarray(data, dtype=np_dtype).reshape(shape)


def _timeout(params: Any) -> float | None:
    """``timeout`` (int64 microseconds, as tritonclient sends it) or ``timeout_s``."""
    if "timeout" in params:
        p, scale = params["timeout"], 1e-6
    elif "timeout_s" in params:
        p, scale = params["timeout_s"], 1.0
    else:
        return None
    kind = p.WhichOneof("parameter_choice")
    value = getattr(p, kind) if kind in ("int64_param", "uint64_param", "double_param") else None
    if value is None or not value > 0:
        raise InvalidInput(f"the request timeout must be a number > 0, got {p}".strip())
    return float(value) * scale


def encode_grpc_response(model: str, req: InferRequest, result: Mapping[str, np.ndarray],
                         output_names: tuple[str, ...], rungs: Mapping[str, str]) -> Any:
    names = output_names if req.outputs is None else [n for n, _ in req.outputs]
    T = messages.ModelInferResponse.InferOutputTensor
    tensors = []
    raws = []
    for name in names:
        arr = result[name]
        datatype = dtype_of(arr.dtype)
        tensors.append(T(name=name, datatype=datatype, shape=arr.shape))
        if datatype == "BYTES":
            raws.append(pack_bytes(arr))
        else:
            if arr.dtype.byteorder == ">":
                arr = arr.astype(arr.dtype.newbyteorder("<"))
            raws.append(arr.tobytes())
    params = {f"rung.{ladder}": messages.InferParameter(string_param=label) for ladder, label in rungs.items()}
    members = getattr(result, "members", None)  # deadline ensembles (an InferResult's)
    if members:
        params.update({k: messages.InferParameter(string_param=v)
                       for k, v in member_parameters(members).items()})
    return messages.ModelInferResponse(model_name=model, model_version="1", id=req.id or "",
                                 outputs=tensors, raw_output_contents=raws, parameters=params)
