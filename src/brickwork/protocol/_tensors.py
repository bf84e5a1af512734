"""The Open Inference Protocol v2 wire format, both directions, straight to and from numpy.

Used by the server (requests in, responses out) and by the client (requests out, responses
in), so the two ends cannot drift apart. A tensor travels either as JSON (``data``: row-major,
flat or nested) or, with Triton's binary tensor extension, as raw little-endian bytes after the
JSON header (``parameters.binary_data_size``; the header's length is the HTTP header
``Inference-Header-Content-Length``). BYTES elements in binary form are each a 4-byte
little-endian length followed by the bytes.

Decoding is strict, and never allocates from what a shape *claims*: a shape's element count is
compared with the data actually received (list length, byte count) before any array is made,
so ``shape: [1000000, 1000000]`` with four floats is a 400, not a 4 TB allocation.

NaN and infinities: standard JSON cannot spell them, so a JSON body carrying ``NaN`` is
malformed (400); binary FP tensors pass any IEEE value through and the model decides. In JSON
*responses* orjson writes NaN/inf as ``null``; ask for binary outputs to keep them.
"""

from __future__ import annotations

import math
import struct
from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np
import orjson

from ..errors import InvalidInput
from ..spec import DTYPES, dtype_of

__all__ = [
    "HEADER_LENGTH",
    "decode_tensor",
    "dumps",
    "encode_tensor",
    "load_json",
    "pack_bytes",
    "unpack_bytes",
]

HEADER_LENGTH = "Inference-Header-Content-Length"
MAX_RANK = 32
_MAX_COUNT = 2**63 - 1  # no tensor may claim more elements (or a dimension more) than int64 holds
_DUMPS_OPTS = orjson.OPT_SERIALIZE_NUMPY
_LEN = struct.Struct("<I")

# v2 name -> little-endian numpy dtype (None for BYTES and BF16)
_NP: dict[str, np.dtype | None] = {
    name: (np.dtype(row.numpy).newbyteorder("<") if row.numpy and row.numpy != "object" else None)
    for name, row in DTYPES.items()
}
_INT_KINDS = "iu"
# what a JSON array may hold for each target kind (numpy kinds of np.asarray(data))
_JSON_KINDS = {"b": "b", "i": "iub", "u": "iub", "f": "iufb"}


def load_json(body: bytes | memoryview, what: str = "request") -> Any:
    try:
        return orjson.loads(body)
    except orjson.JSONDecodeError as exc:
        raise InvalidInput(f"the {what} body is not valid JSON: {exc}") from None


def _shape(value: Any, where: str) -> tuple[int, ...]:
    if not isinstance(value, list):
        raise InvalidInput(f"{where}: 'shape' must be a list of ints >= 0, got {value!r}")
    if len(value) > MAX_RANK:
        raise InvalidInput(f"{where}: shape has {len(value)} dimensions; at most {MAX_RANK}")
    nonzero = 1
    for d in value:
        if type(d) is not int or d < 0:
            raise InvalidInput(f"{where}: 'shape' must be a list of ints >= 0, got {value!r}")
        if d:
            nonzero *= d
    if nonzero > _MAX_COUNT:  # even with a 0 dimension: numpy cannot hold such a shape
        raise InvalidInput(f"{where}: 'shape' {value!r} is too large (its dimensions multiply "
                           f"past 2**63)")
    return tuple(value)


def decode_tensor(item: Any, body: bytes | memoryview, pos: int, *,
                  where: str = "input") -> tuple[str, np.ndarray, int]:
    """Decode one entry of ``inputs``/``outputs``. ``body`` is the whole HTTP body and ``pos``
    where this tensor's binary data would start; returns ``(name, array, next_pos)``."""
    if not isinstance(item, dict):
        raise InvalidInput(f"each {where} must be an object with name, datatype, shape and data")
    name = item.get("name")
    if not isinstance(name, str) or not name:
        raise InvalidInput(f"an {where} has no 'name' (got {name!r})")
    label = f"{where} {name!r}"
    datatype = item.get("datatype")
    if type(datatype) is not str or datatype not in DTYPES:
        raise InvalidInput(f"{label}: unknown datatype {datatype!r}; use one of {', '.join(DTYPES)}")
    shape = _shape(item.get("shape"), label)
    count = math.prod(shape)
    params = item.get("parameters")
    if params is not None and type(params) is not dict:
        raise InvalidInput(f"{label}: 'parameters' must be an object, got {params!r}"[:300])
    size = params.get("binary_data_size") if params else None
    if size is not None:
        if type(size) is not int or size < 0:
            raise InvalidInput(f"{label}: binary_data_size must be an int >= 0, got {size!r}")
        end = pos + size
        if end > len(body):
            raise InvalidInput(f"{label}: binary_data_size {size} runs past the end of the body "
                               f"({len(body) - pos} bytes left)")
        raw = memoryview(body)[pos:end]
        if datatype == "BYTES":
            arr = unpack_bytes(raw, count, label)
        else:
            np_dtype = _NP[datatype]
            if np_dtype is None:
                raise InvalidInput(f"{label}: datatype {datatype} is not supported; send FP32")
            if size != count * np_dtype.itemsize:
                raise InvalidInput(f"{label}: shape {list(shape)} needs {count * np_dtype.itemsize} "
                                   f"bytes of {datatype}, got {size}")
            arr = np.frombuffer(raw, dtype=np_dtype)
        return name, arr.reshape(shape), end
    if "data" not in item:
        raise InvalidInput(f"{label} has neither 'data' nor parameters.binary_data_size")
    return name, _from_json(item["data"], datatype, shape, count, label), pos


def _from_json(data: Any, datatype: str, shape: tuple[int, ...], count: int,
               label: str) -> np.ndarray:
    if not isinstance(data, list):
        raise InvalidInput(f"{label}: 'data' must be a list, got {type(data).__name__}")
    if datatype == "BYTES":
        flat = data if all(type(x) is str for x in data) else _flatten(data, label)
        if len(flat) != count:
            raise InvalidInput(f"{label}: shape {list(shape)} has {count} elements, data has {len(flat)}")
        arr = np.empty(count, dtype=object)
        arr[:] = flat
        return arr.reshape(shape)
    np_dtype = _NP[datatype]
    if np_dtype is None:
        raise InvalidInput(f"{label}: datatype {datatype} is not supported in JSON; send FP32")
    # Cheap length check first: a flat list must match the shape's element count exactly.
    if data and type(data[0]) is not list and len(data) != count:
        raise InvalidInput(f"{label}: shape {list(shape)} has {count} elements, data has {len(data)}")
    try:
        arr = np.asarray(data)
    except (ValueError, TypeError, OverflowError) as exc:
        raise InvalidInput(f"{label}: 'data' is not a regular array of numbers: {exc}") from None
    if arr.size != count:
        raise InvalidInput(f"{label}: shape {list(shape)} has {count} elements, data has {arr.size}")
    if count and arr.dtype.kind in "fO" and np_dtype.kind in _INT_KINDS:
        # Python ints no one numpy type holds together (0 and 2**63 for UINT64) come out as
        # float or object: convert them to the declared type directly, range-checked
        if _all_ints(data):
            try:
                arr = np.asarray(data, dtype=np_dtype)
            except OverflowError:
                raise InvalidInput(f"{label}: a value is out of range for {datatype}") from None
    if count and arr.dtype.kind not in _JSON_KINDS[np_dtype.kind]:
        what = "true/false" if np_dtype.kind == "b" else (
            "integers" if np_dtype.kind in _INT_KINDS else "numbers")
        raise InvalidInput(f"{label}: {datatype} data must be {what}, got {_sample(arr)}")
    if np_dtype.kind in _INT_KINDS and count and arr.dtype != np_dtype:
        info = np.iinfo(np_dtype)
        lo, hi = arr.min(), arr.max()
        if lo < info.min or hi > info.max:
            raise InvalidInput(f"{label}: value {lo if lo < info.min else hi} is out of range "
                               f"for {datatype}")
    return arr.astype(np_dtype, copy=False).reshape(shape)


def _all_ints(data: list[Any]) -> bool:
    """Every leaf of a (nested) JSON list is a plain int (not a bool, not a float)."""
    stack = [data]
    while stack:
        for x in stack.pop():
            if type(x) is list:
                stack.append(x)
            elif type(x) is not int:
                return False
    return True


def _sample(arr: np.ndarray) -> str:
    flat = arr.reshape(-1)
    return repr(flat[0].item() if hasattr(flat[0], "item") else flat[0])


def _flatten(data: list[Any], label: str) -> list[Any]:
    out: list[Any] = []
    stack = [iter(data)]
    while stack:
        for x in stack[-1]:
            if type(x) is list:
                stack.append(iter(x))
                break
            if type(x) is not str:
                raise InvalidInput(f"{label}: BYTES data must be strings, got {x!r}")
            out.append(x)
        else:
            stack.pop()
    return out


def unpack_bytes(raw: memoryview | bytes, count: int, label: str = "tensor") -> np.ndarray:
    """Binary BYTES: ``count`` elements, each a uint32 LE length then the bytes."""
    n = len(raw)
    if count * 4 > n:  # every element needs its 4-byte length: refuse before allocating
        raise InvalidInput(f"{label}: shape claims {count} BYTES elements but only {n} bytes came")
    out = np.empty(count, dtype=object)
    pos = 0
    view = memoryview(raw)
    for i in range(count):
        if pos + 4 > n:
            raise InvalidInput(f"{label}: BYTES element {i} has no length prefix")
        (length,) = _LEN.unpack_from(view, pos)
        pos += 4
        if pos + length > n:
            raise InvalidInput(f"{label}: BYTES element {i} claims {length} bytes, {n - pos} left")
        out[i] = bytes(view[pos:pos + length])
        pos += length
    if pos != n:
        raise InvalidInput(f"{label}: {n - pos} bytes left over after {count} BYTES elements")
    return out


def pack_bytes(arr: np.ndarray) -> bytes:
    parts: list[bytes] = []
    for x in arr.reshape(-1).tolist():
        b = x if isinstance(x, bytes) else str(x).encode("utf-8")
        parts.append(_LEN.pack(len(b)))
        parts.append(b)
    return b"".join(parts)


def encode_tensor(name: str, arr: np.ndarray, *, binary: bool) -> tuple[dict[str, Any], Any]:
    """One ``outputs``/``inputs`` entry and, for binary, its raw bytes (else None). The JSON
    form keeps numeric data as a flat numpy array: orjson serialises it without a Python list."""
    datatype = dtype_of(arr.dtype)
    item: dict[str, Any] = {"name": name, "datatype": datatype, "shape": list(arr.shape)}
    if datatype == "BYTES":
        if binary:
            raw: Any = pack_bytes(arr)
            item["parameters"] = {"binary_data_size": len(raw)}
            return item, raw
        item["data"] = [_text(x, name) for x in arr.reshape(-1).tolist()]
        return item, None
    if arr.dtype.byteorder == ">" or not arr.flags.c_contiguous:
        arr = np.ascontiguousarray(arr, dtype=arr.dtype.newbyteorder("<"))
    if binary:
        raw = arr.data.cast("B") if arr.size else b""
        item["parameters"] = {"binary_data_size": arr.nbytes}
        return item, raw
    item["data"] = arr.reshape(-1)
    return item, None


def _text(x: Any, name: str) -> str:
    if isinstance(x, bytes):
        try:
            return x.decode("utf-8")
        except UnicodeDecodeError:
            raise InvalidInput(f"output {name!r} holds bytes that are not UTF-8 text; "
                               "request it with parameters.binary_data: true") from None
    return str(x)


def dumps(doc: Mapping[str, Any]) -> bytes:
    return orjson.dumps(doc, option=_DUMPS_OPTS)


def join_body(header: bytes, raws: Sequence[Any]) -> bytes:
    return b"".join([header, *raws]) if raws else header
