"""The v2 wire codec shared by the server and the client: round trips and strict rejections."""

from __future__ import annotations

import struct

import numpy as np
import orjson
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from hypothesis.extra import numpy as hnp

from brickwork.errors import InvalidInput
from brickwork.protocol import decode_tensor, encode_tensor, pack_bytes, unpack_bytes

NUMERIC = ["BOOL", "UINT8", "UINT16", "UINT32", "UINT64", "INT8", "INT16", "INT32", "INT64",
           "FP16", "FP32", "FP64"]
NP = {"BOOL": "bool", "UINT8": "uint8", "UINT16": "uint16", "UINT32": "uint32", "UINT64": "uint64",
      "INT8": "int8", "INT16": "int16", "INT32": "int32", "INT64": "int64", "FP16": "float16",
      "FP32": "float32", "FP64": "float64"}


def roundtrip(arr: np.ndarray, binary: bool) -> np.ndarray:
    item, raw = encode_tensor("t", arr, binary=binary)
    header = orjson.dumps(item, option=orjson.OPT_SERIALIZE_NUMPY)
    body = header + (bytes(raw) if raw is not None else b"")
    name, out, end = decode_tensor(orjson.loads(header), body, len(header))
    assert name == "t" and end == len(body)
    return out


@settings(max_examples=60, deadline=None)
@given(st.sampled_from(NUMERIC).flatmap(lambda d: hnp.arrays(
    NP[d], hnp.array_shapes(min_dims=1, max_dims=3, min_side=0, max_side=4),
    elements={"allow_nan": False, "allow_infinity": False} if d.startswith("FP") else None)),
    st.booleans())
def test_numeric_tensors_round_trip_exactly(arr, binary):
    out = roundtrip(arr, binary)
    assert out.dtype == arr.dtype and out.shape == arr.shape
    np.testing.assert_array_equal(out, arr)


@settings(max_examples=40, deadline=None)
@given(st.lists(st.text(max_size=8), min_size=0, max_size=6), st.booleans())
def test_bytes_tensors_round_trip(texts, binary):
    arr = np.empty(len(texts), dtype=object)
    arr[:] = texts
    out = roundtrip(arr, binary)
    got = [x.decode() if isinstance(x, bytes) else x for x in out.tolist()]
    assert got == texts and out.shape == arr.shape


def test_nan_passes_through_binary_and_is_null_in_json():
    arr = np.array([[np.nan, np.inf, 1.0]], dtype=np.float32)
    out = roundtrip(arr, binary=True)
    assert np.isnan(out[0, 0]) and np.isinf(out[0, 1])
    item, _ = encode_tensor("t", arr, binary=False)
    assert orjson.loads(orjson.dumps(item, option=orjson.OPT_SERIALIZE_NUMPY))["data"][:2] == [None, None]


def bad(item, body=b"", pos=0):
    with pytest.raises(InvalidInput) as err:
        decode_tensor(item, body, pos)
    return str(err.value)


def test_shapes_that_claim_more_than_the_data_are_refused_before_allocating():
    assert "1000000000000 elements" in bad({"name": "x", "datatype": "FP32", "shape": [10**6, 10**6],
                                            "data": [1.0]})
    huge = {"name": "x", "datatype": "FP32", "shape": [10**12], "parameters": {"binary_data_size": 8}}
    assert "needs 4000000000000 bytes" in bad(huge, b"\0" * 8)
    text = {"name": "s", "datatype": "BYTES", "shape": [10**12], "parameters": {"binary_data_size": 8}}
    assert "claims 1000000000000 BYTES elements" in bad(text, b"\0" * 8)


@pytest.mark.parametrize("item, needle", [
    ({"name": "x", "datatype": "FP32", "shape": [-1], "data": [1.0]}, "ints >= 0"),
    ({"name": "x", "datatype": "FP32", "shape": [True], "data": [1.0]}, "ints >= 0"),
    ({"name": "x", "datatype": "FP32", "shape": "3", "data": [1.0]}, "ints >= 0"),
    ({"name": "x", "datatype": "FP33", "shape": [1], "data": [1.0]}, "unknown datatype"),
    ({"datatype": "FP32", "shape": [1], "data": [1.0]}, "no 'name'"),
    ({"name": "x", "datatype": "FP32", "shape": [1]}, "neither 'data'"),
    ({"name": "x", "datatype": "FP32", "shape": [2], "data": [[1.0], [2.0, 3.0]]}, "regular array"),
    ({"name": "x", "datatype": "FP32", "shape": [2], "data": [1.0, None]}, "must be numbers"),
    ({"name": "x", "datatype": "INT64", "shape": [2], "data": [1, 2.5]}, "must be integers"),
    ({"name": "x", "datatype": "UINT8", "shape": [2], "data": [1, 300]}, "out of range"),
    ({"name": "x", "datatype": "BOOL", "shape": [2], "data": [1, 0]}, "true/false"),
    ({"name": "x", "datatype": "BYTES", "shape": [2], "data": ["a", 1]}, "must be strings"),
    ({"name": "x", "datatype": "BF16", "shape": [1], "data": [1.0]}, "not supported"),
    ({"name": "x", "datatype": "FP32", "shape": [1], "parameters": {"binary_data_size": 4}},
     "runs past the end"),
])
def test_malformed_tensors_are_invalid_input(item, needle):
    assert needle in bad(item)


def test_nested_json_data_is_accepted():
    _, arr, _ = decode_tensor({"name": "x", "datatype": "INT32", "shape": [2, 2], "data": [[1, 2], [3, 4]]},
                              b"", 0)
    assert arr.dtype == np.int32 and arr.tolist() == [[1, 2], [3, 4]]
    _, arr, _ = decode_tensor({"name": "s", "datatype": "BYTES", "shape": [1, 2], "data": [["a", "b"]]},
                              b"", 0)
    assert arr.shape == (1, 2) and arr.tolist() == [["a", "b"]]


def test_binary_bytes_framing_is_checked():
    good = pack_bytes(np.array([b"ab", b""], dtype=object))
    assert unpack_bytes(good, 2).tolist() == [b"ab", b""]
    with pytest.raises(InvalidInput, match="left over"):
        unpack_bytes(good + b"x", 2)
    with pytest.raises(InvalidInput, match="claims 9 bytes"):
        unpack_bytes(struct.pack("<I", 9) + b"ab" + b"\0\0\0\0", 2)


def test_non_utf8_output_bytes_need_binary():
    arr = np.array([b"\xff"], dtype=object)
    with pytest.raises(InvalidInput, match="binary_data"):
        encode_tensor("t", arr, binary=False)
    assert roundtrip(arr, binary=True).tolist() == [b"\xff"]


def test_big_endian_and_strided_arrays_are_sent_little_endian_contiguous():
    arr = np.arange(8, dtype=">i4").reshape(2, 4)[:, ::2]
    np.testing.assert_array_equal(roundtrip(arr, binary=True), arr)
    np.testing.assert_array_equal(roundtrip(arr, binary=False), arr)


def test_json_uint64_beyond_int64_keeps_every_value_exact():
    """[0, 2**63] has no common numpy type but uint64: numpy reads it as float64 (found by
    hypothesis); it must arrive as UINT64, exact, and values past the type are refused."""
    item = {"name": "t", "datatype": "UINT64", "shape": [2, 1], "data": [[0], [2**64 - 1]]}
    _, out, _ = decode_tensor(item, b"", 0)
    assert out.dtype == np.uint64 and out.ravel().tolist() == [0, 2**64 - 1]
    for data, needle in (([0, 2**64], "out of range"), ([-1, 2**63], "out of range"), ([0.5, 2**63], "integers")):
        with pytest.raises(InvalidInput, match=needle):
            decode_tensor({"name": "t", "datatype": "UINT64", "shape": [2], "data": data}, b"", 0)
