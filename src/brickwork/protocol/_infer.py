"""One v2 infer request in, one v2 infer response out — the body codec of the infer endpoint.

The tensor-level codec (JSON/binary ⇄ numpy) is :mod:`brickwork.protocol._tensors`, shared with the
client; this module adds the request-level rules: which inputs and outputs a model has, the
``binary_data_output``/``binary_data`` choices, the request ``id`` and its timeout.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

import numpy as np
import orjson

from ..errors import InvalidInput
from ..spec import TensorSpec, dtype_of
from ._tensors import decode_tensor, dumps, encode_tensor, load_json

__all__ = ["InferRequest", "decode_request", "encode_response"]

JSON_HEADERS = [(b"content-type", b"application/json")]


@dataclass(slots=True)
class InferRequest:
    inputs: dict[str, np.ndarray]
    outputs: list[tuple[str, bool]] | None  # requested (name, binary); None = all, default form
    binary_output: bool
    id: str | None
    timeout_s: float | None
    # one input, decoded on the fast path: its datatype, rank and fixed dims are the spec's,
    # so the engine's validation has nothing left to check
    checked: bool = False


def decode_request(body: bytes, header_length: int | None, inputs: Mapping[str, TensorSpec],
                   outputs: Mapping[str, TensorSpec], model: str) -> InferRequest:
    size = len(body)
    if header_length is None:
        doc = load_json(body)
        pos = size
    else:
        if not 0 <= header_length <= size:
            raise InvalidInput(f"Inference-Header-Content-Length is {header_length} but the body "
                               f"has {size} bytes")
        doc = load_json(memoryview(body)[:header_length])
        pos = header_length
    if type(doc) is not dict:
        raise InvalidInput("the request body must be a JSON object with an 'inputs' list")
    items = doc.get("inputs")
    if type(items) is not list or not items:
        raise InvalidInput(f"'inputs' must be a non-empty list of tensors; model {model!r} takes "
                           f"{[s.to_dict() for s in inputs.values()]}")
    tensors: dict[str, np.ndarray] = {}
    checked = True
    for item in items:
        fast = _fast_item(item, inputs)
        if fast is not None:
            name, arr = fast
            if name in tensors:
                raise InvalidInput(f"input {name!r} is given twice")
            tensors[name] = arr
            continue
        checked = False
        _precheck(item, inputs, model)  # names, datatypes and fixed dims before any value is made
        name, arr, pos = decode_tensor(item, body, pos)
        if name in tensors:
            raise InvalidInput(f"input {name!r} is given twice")
        tensors[name] = arr
    if pos != size:
        raise InvalidInput(f"{size - pos} bytes of binary data after the last binary tensor")
    if len(tensors) != len(inputs):
        missing = sorted(set(inputs) - set(tensors))
        raise InvalidInput(f"missing input(s) {missing} for model {model!r}")
    params = doc.get("parameters")
    binary_output = False
    timeout_s = None
    if params is not None:
        if type(params) is not dict:
            raise InvalidInput("'parameters' must be an object")
        binary_output = _flag(params, "binary_data_output", "parameters")
        timeout_s = _timeout(params)
    req_id = doc.get("id")
    if req_id is not None and type(req_id) is not str:
        raise InvalidInput(f"'id' must be a string, got {_short(req_id)}")
    wanted = doc.get("outputs")
    requested: list[tuple[str, bool]] | None = None
    if wanted is not None:
        requested = _requested(wanted, outputs, binary_output, model)
    return InferRequest(tensors, requested, binary_output, req_id, timeout_s, checked and len(tensors) == 1)


_FAST_KEYS = frozenset(("name", "datatype", "shape", "data"))
_FAST_KINDS = "fi"  # what np.asarray of a JSON list may give for a float tensor on the fast path


def _fast_item(item: Any, inputs: Mapping[str, TensorSpec]) -> tuple[str, np.ndarray] | None:
    """The common JSON input in one pass: a floating-point tensor of the model's datatype and
    shape, flat numeric ``data``, no parameters. None: anything else (or anything wrong), which
    the full path then decodes or refuses with its own message."""
    if type(item) is not dict or item.keys() != _FAST_KEYS:
        return None
    name = item["name"]
    spec = inputs.get(name) if type(name) is str else None
    if spec is None or item["datatype"] != spec.dtype:
        return None
    np_dtype = _FLOAT_NP.get(spec.dtype)
    shape = item["shape"]
    data = item["data"]
    if np_dtype is None or type(shape) is not list or type(data) is not list or not data:
        return None
    want = spec.shape
    if len(shape) != len(want):
        return None
    count = 1
    for w, d in zip(want, shape):
        if type(d) is not int or d < 0 or (w != d and w != -1):
            return None
        count *= d
    if count != len(data) or type(data[0]) is list:
        return None
    try:
        arr = np.asarray(data)
    except (ValueError, TypeError, OverflowError):
        return None
    if arr.dtype.kind not in _FAST_KINDS or arr.ndim != 1:
        return None
    return name, arr.astype(np_dtype, copy=False).reshape(shape)


_FLOAT_NP: dict[str, np.dtype[Any]] = {"FP16": np.dtype("<f2"), "FP32": np.dtype("<f4"), "FP64": np.dtype("<f8")}


def _short(value: Any) -> str:
    text = repr(value)
    return text if len(text) <= 80 else text[:77] + "..."


def _flag(params: dict[str, Any], key: str, where: str) -> bool:
    value = params.get(key, False)
    if type(value) is not bool:
        raise InvalidInput(f"{where}.{key} must be true or false, got {_short(value)}")
    return value


def _precheck(item: Any, inputs: Mapping[str, TensorSpec], model: str) -> None:
    """What the model's own spec can refuse from the JSON alone: an unknown name, another
    datatype, another rank or fixed dimension — so a wrong tensor costs nothing to decode."""
    if type(item) is not dict:
        return  # decode_tensor names the problem
    name = item.get("name")
    if type(name) is not str:
        return
    spec = inputs.get(name)
    if spec is None:
        raise InvalidInput(f"unknown input {_short(name)}; model {model!r} takes {sorted(inputs)}")
    datatype = item.get("datatype")
    if datatype != spec.dtype and type(datatype) is str:
        raise InvalidInput(f"input {name!r}: expected datatype {spec.dtype}, got {_short(datatype)}")
    shape = item.get("shape")
    if type(shape) is not list:
        return
    if len(shape) != len(spec.shape):
        if all(type(d) is int and d >= 0 for d in shape):
            raise InvalidInput(f"input {name!r}: expected rank {spec.rank} {list(spec.shape)}, "
                               f"got shape {_short(shape)}")
        return
    for want, have in zip(spec.shape, shape):
        if want != have and want != -1 and type(have) is int and have >= 0:
            raise InvalidInput(f"input {name!r}: expected shape {list(spec.shape)}, "
                               f"got {_short(shape)}")


def _timeout(params: dict[str, Any]) -> float | None:
    """``timeout_s`` (seconds, brickwork's) or ``timeout`` (microseconds, as tritonclient
    sends it)."""
    if "timeout_s" in params:
        value = params["timeout_s"]
        scale = 1.0
    elif "timeout" in params:
        value = params["timeout"]
        scale = 1e-6
    else:
        return None
    if type(value) not in (int, float) or not value > 0 or not math.isfinite(value * scale):
        raise InvalidInput(f"the request timeout (parameters.timeout_s, or parameters.timeout in "
                           f"microseconds) must be a number > 0, got {_short(value)}")
    return float(value) * scale


def _requested(wanted: Any, outputs: Mapping[str, TensorSpec], binary_output: bool,
               model: str) -> list[tuple[str, bool]]:
    if type(wanted) is not list:
        raise InvalidInput("'outputs' must be a list of {name, parameters}")
    out: list[tuple[str, bool]] = []
    seen: set[str] = set()
    for w in wanted:
        if type(w) is not dict:
            raise InvalidInput(f"each of 'outputs' must be an object with a 'name', got {_short(w)}")
        name = w.get("name")
        if type(name) is not str or name not in outputs:
            raise InvalidInput(f"unknown output {_short(name)} in 'outputs'; model {model!r} returns "
                               f"{sorted(outputs)}")
        if name in seen:
            raise InvalidInput(f"output {name!r} is requested twice in 'outputs'; ask for each once")
        seen.add(name)
        params = w.get("parameters")
        binary = binary_output
        if params is not None:
            if type(params) is not dict:
                raise InvalidInput(f"outputs[{name!r}].parameters must be an object, got {_short(params)}")
            if "binary_data" in params:
                binary = _flag(params, "binary_data", f"outputs[{name!r}].parameters")
        out.append((name, binary))
    return out


def encode_response(model: str, req: InferRequest, result: Mapping[str, np.ndarray],
                    output_names: tuple[str, ...], rungs: Mapping[str, str]
                    ) -> tuple[list[tuple[bytes, bytes]], bytes]:
    """Headers and body. Numeric JSON data stays a numpy array all the way into orjson."""
    if req.outputs is None and not req.binary_output and req.id is None and not rungs:
        body = _fast_response(model, result, output_names)
        if body is not None:
            return JSON_HEADERS, body
    wanted = req.outputs
    if wanted is None:
        wanted = [(name, req.binary_output) for name in output_names]
    items = []
    raws = []
    for name, binary in wanted:
        item, raw = encode_tensor(name, result[name], binary=binary)
        items.append(item)
        if raw is not None:
            raws.append(raw)
    doc: dict[str, Any] = {"model_name": model, "model_version": "1", "outputs": items}
    if req.id is not None:
        doc["id"] = req.id
    members = getattr(result, "members", None)  # deadline ensembles (an InferResult's)
    if rungs or members:
        # v2 parameter values must be scalars: one "rung.<ladder>" key per fallback ladder,
        # one "members.<ensemble>" key per deadline ensemble (answering members, comma-joined).
        params = {f"rung.{ladder}": label for ladder, label in rungs.items()}
        if members:
            params.update(member_parameters(members))
        doc["parameters"] = params
    header = dumps(doc)
    if not raws:
        return JSON_HEADERS, header
    headers = [(b"content-type", b"application/octet-stream"),
               (b"inference-header-content-length", str(len(header)).encode())]
    return headers, b"".join([header, *raws])


_PREFIXES: dict[tuple[str, tuple[str, ...]], tuple[bytes, tuple[bytes, ...]]] = {}
_NUMERIC = "fiub"


def _fast_response(model: str, result: Mapping[str, np.ndarray],
                   output_names: tuple[str, ...]) -> bytes | None:
    """The common answer (every output in JSON, numeric, no id or parameters) from bytes made
    once per model: the same body ``dumps`` makes of the document, without building it.
    None: another answer, which the full path encodes."""
    if getattr(result, "members", None):
        return None
    key = (model, output_names)
    fixed = _PREFIXES.get(key)
    if fixed is None:
        fixed = (b'{"model_name":' + orjson.dumps(model) + b',"model_version":"1","outputs":[',
                 tuple(b'{"name":' + orjson.dumps(n) + b',"datatype":"' for n in output_names))
        if len(_PREFIXES) < 1024:
            _PREFIXES[key] = fixed
    head, items = fixed
    parts = [head]
    for i, name in enumerate(output_names):
        arr = result[name]
        dtype = arr.dtype
        if dtype.kind not in _NUMERIC or dtype.byteorder == ">" or not arr.flags.c_contiguous:
            return None
        if i:
            parts.append(b",")
        parts += (items[i], dtype_of(dtype).encode(), b'","shape":', orjson.dumps(arr.shape), b',"data":',
                  orjson.dumps(arr.reshape(-1), option=orjson.OPT_SERIALIZE_NUMPY), b"}")
    parts.append(b"]}")
    return b"".join(parts)


def member_parameters(members: Mapping[str, tuple[str, ...]]) -> dict[str, str]:
    """``{"members.<ensemble>": "a,b"}``: which members of each deadline ensemble answered."""
    return {f"members.{name}": ",".join(labels) for name, labels in members.items()}
