"""The server's fast paths for the common v2 JSON request and answer agree with the full codec:
same arrays in (or the same refusal), the same bytes out."""

from __future__ import annotations

import json
from typing import Any

import numpy as np
import orjson
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from brickwork.engine import InferResult
from brickwork.errors import InvalidInput
from brickwork.protocol import _infer as codec
from brickwork.protocol import decode_request, encode_response
from brickwork.spec import TensorSpec

INPUTS = {"x": TensorSpec("x", "FP32", (-1, 4)), "h": TensorSpec("h", "FP16", (-1,)),
          "d": TensorSpec("d", "FP64", (2, -1))}
OUTPUTS = {"y": TensorSpec("y", "FP32", (-1, 4))}


def outcome(item: dict[str, Any]) -> Any:
    name = item.get("name")
    inputs = {name: INPUTS[name]} if name in INPUTS else {"x": INPUTS["x"]}  # one input a model
    try:
        req = decode_request(json.dumps({"inputs": [item]}).encode(), None, inputs, OUTPUTS, "m")
    except InvalidInput:
        return "refused"
    (arr,) = req.inputs.values()
    return arr.dtype.str, arr.shape, arr.tobytes()


def both(item: dict[str, Any]) -> tuple[Any, Any]:
    """(the fast path's outcome, the full path's): an empty ``parameters`` turns the fast path off."""
    return outcome(item), outcome({**item, "parameters": {}})


scalars = (st.none() | st.booleans() | st.integers(-2**70, 2**70) | st.text(max_size=3)
           | st.floats(allow_nan=False, allow_infinity=False) | st.lists(st.integers(), max_size=2))


@settings(max_examples=300, deadline=None)
@given(name=st.sampled_from(["x", "h", "d", "z"]), datatype=st.sampled_from(["FP32", "FP16", "FP64", "INT32"]),
       shape=st.lists(st.integers(-1, 5) | st.booleans(), max_size=3), data=st.lists(scalars, max_size=9))
def test_the_fast_decode_gives_what_the_full_decode_gives(name, datatype, shape, data):
    fast, full = both({"name": name, "datatype": datatype, "shape": shape, "data": data})
    assert fast == full


def test_the_fast_decode_takes_the_common_request_and_leaves_the_rest():
    item = {"name": "x", "datatype": "FP32", "shape": [2, 4], "data": [1.5, 2, 3, 4, 5, 6, 7, 8]}
    hit = codec._fast_item(item, INPUTS)
    assert outcome(item) == both(item)[1]
    assert hit is not None and hit[0] == "x" and hit[1].dtype == np.float32 and hit[1].shape == (2, 4)
    assert hit[1].tolist() == [[1.5, 2, 3, 4], [5, 6, 7, 8]]
    for other in ({**item, "parameters": {}}, {**item, "data": ["1", 2, 3, 4, 5, 6, 7, 8]},
                  {**item, "data": [None] * 8}, {**item, "shape": [8]}, {**item, "datatype": "FP64"},
                  {**item, "data": [[1, 2, 3, 4], [5, 6, 7, 8]]}, {**item, "data": [True] * 8}):
        assert codec._fast_item(other, INPUTS) is None
        assert both(other)[0] == both(other)[1]


def test_strings_and_nulls_in_float_data_are_still_a_400():
    for data in (["1", 2, 3, 4], [None, 2, 3, 4], [1, 2, 3, {}]):
        with pytest.raises(InvalidInput, match="'x'"):
            decode_request(orjson.dumps({"inputs": [{"name": "x", "datatype": "FP32", "shape": [1, 4],
                                                     "data": data}]}), None, {"x": INPUTS["x"]}, OUTPUTS, "m")


def full_body(model: str, result: dict[str, np.ndarray], names: tuple[str, ...]) -> bytes:
    from brickwork.spec import dtype_of

    return orjson.dumps({"model_name": model, "model_version": "1", "outputs": [
        {"name": n, "datatype": dtype_of(result[n].dtype), "shape": list(result[n].shape),
         "data": np.ascontiguousarray(result[n]).reshape(-1)} for n in names]},
        option=orjson.OPT_SERIALIZE_NUMPY)


@pytest.mark.parametrize("arr", [
    np.arange(8, dtype=np.float32).reshape(2, 4) / 7, np.array([[True, False]]),
    np.arange(3, dtype=np.int64), np.zeros((0, 4), np.float16), np.array(2.5), np.arange(4, dtype=np.uint8),
])
def test_the_fast_answer_is_the_bytes_of_the_full_document(arr):
    req = decode_request(b'{"inputs":[{"name":"x","datatype":"FP32","shape":[1,4],"data":[1,2,3,4]}]}',
                         None, {"x": INPUTS["x"]}, OUTPUTS, "m")
    result = InferResult({"y": arr, "z\"": arr}, {})
    headers, body = encode_response('m"1', req, result, ("y", "z\""), {})
    assert headers == codec.JSON_HEADERS
    assert body == full_body('m"1', result, ("y", "z\""))
    assert codec._fast_response('m"1', result, ("y", "z\"")) == body
    json.loads(body)


def test_answers_the_fast_path_leaves_to_the_full_codec():
    x = np.arange(4, dtype=np.float32).reshape(1, 4)
    for result in ({"y": x.astype(">f4")}, {"y": np.asfortranarray(np.ones((2, 3), np.float32))},
                   {"y": np.array([[b"a"]], dtype=object)}):
        assert codec._fast_response("m", result, ("y",)) is None
    deadline = InferResult({"y": x}, {})
    deadline.members = {"e": ("a",)}
    assert codec._fast_response("m", deadline, ("y",)) is None
    # an id, a rung or binary outputs: the full document, as before
    doc = {"id": "r7", "inputs": [{"name": "x", "datatype": "FP32", "shape": [1, 4], "data": [1, 2, 3, 4]}]}
    req = decode_request(orjson.dumps(doc), None, {"x": INPUTS["x"]}, OUTPUTS, "m")
    _, body = encode_response("m", req, InferResult({"y": x}, {"lad": "b"}), ("y",), {"lad": "b"})
    out = json.loads(body)
    assert out["id"] == "r7" and out["parameters"] == {"rung.lad": "b"}


def test_a_request_is_marked_checked_only_when_its_one_input_took_the_fast_path():
    x = {"name": "x", "datatype": "FP32", "shape": [1, 4], "data": [1, 2, 3, 4]}
    assert decode_request(orjson.dumps({"inputs": [x]}), None, {"x": INPUTS["x"]}, OUTPUTS, "m").checked
    slow = {**x, "parameters": {}}
    assert not decode_request(orjson.dumps({"inputs": [slow]}), None, {"x": INPUTS["x"]}, OUTPUTS, "m").checked
    two = {"x": INPUTS["x"], "d": INPUTS["d"]}
    d = {"name": "d", "datatype": "FP64", "shape": [2, 1], "data": [1.0, 2.0]}
    assert not decode_request(orjson.dumps({"inputs": [x, d]}), None, two, OUTPUTS, "m").checked
